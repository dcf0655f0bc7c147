"""Retries wait exactly as long as the platform asks: neither early nor more than 50 ms late.

The waits are seconds long and not whole seconds, and one is under a second, so a client
that ignored retry_after, rounded it to a second, or only looked at its queues once a
second fails."""
import time

import pytest

from conftest import Running
from fake_discord import TOKEN as DISCORD_TOKEN
from fake_discord import FakeDiscord, interaction
from fake_matrix import BOT, TOKEN as MATRIX_TOKEN, FakeMatrix

LATE = 0.050   # the most a retry may come after it is due


class Bot(Running):
    def __init__(self, cohort, toml):
        super().__init__(cohort)
        (cohort.workdir / "cohort.toml").write_text(toml)


@pytest.fixture
def discord(cohort):
    fake = FakeDiscord(heartbeat_interval=1000)
    fake.start()
    bot = Bot(cohort, f"""
[discord]
enabled = true
token = "{DISCORD_TOKEN}"
api_url = "{fake.api_url}"
""").start()
    fake.ready_connection()
    yield fake
    bot.stop()
    fake.stop()


@pytest.fixture
def matrix(cohort):
    hs = FakeMatrix()
    hs.start()
    hs.create_room("!study:fake.test", members=["@ana:fake.test"])
    bot = Bot(cohort, f"""
[matrix]
enabled = true
homeserver = "{hs.url}"
user_id = "{BOT}"
access_token = "{MATRIX_TOKEN}"
""").start()
    hs.wait_for(hs.synced_to_end, 10, "the bot to catch up")
    yield hs
    bot.stop()
    hs.stop()


def gap(first, second):
    assert first["status"] == 429 and second["status"] in (200, 204), (first, second)
    return second["t"] - first["t"]


def test_discord_per_route_429_waits_exactly_retry_after(discord):
    for ix, wait in ((2001, 2.35), (2002, 1.27), (2003, 0.45)):
        discord.fault("POST", rf"/interactions/{ix}/", status=429,
                      body={"message": "You are being rate limited.", "retry_after": wait,
                            "global": False})
        discord.dispatch("INTERACTION_CREATE", interaction(ix, "help"))
        first, second = discord.wait_rest("POST", rf"/interactions/{ix}/", count=2,
                                          timeout=wait + 5)
        assert wait <= gap(first, second) <= wait + LATE


def test_discord_global_429_holds_every_route_exactly_retry_after(discord):
    wait = 2.6
    discord.fault("POST", r"/interactions/2101/", status=429,
                  body={"message": "global", "retry_after": wait, "global": True})
    discord.dispatch("INTERACTION_CREATE", interaction(2101, "help"))
    limited = discord.wait_rest("POST", r"/interactions/2101/")[0]
    discord.dispatch("INTERACTION_CREATE", interaction(2102, "help"))
    other = discord.wait_rest("POST", r"/interactions/2102/", timeout=wait + 5)[0]
    assert wait <= other["t"] - limited["t"] <= wait + LATE
    first, second = discord.wait_rest("POST", r"/interactions/2101/", count=2)
    assert wait <= gap(first, second) <= wait + LATE


def test_matrix_429_waits_exactly_retry_after_ms(matrix):
    for n, wait_ms in enumerate((2150, 1330, 620)):
        matrix.fault("PUT", r"/send/m\.room\.message/", 429,
                     {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests",
                      "retry_after_ms": wait_ms})
        matrix.say("!study:fake.test", "@ana:fake.test", "!help")
        sends = matrix.wait_for(
            lambda: len(matrix.reqs("PUT", r"/send/m\.room\.message/")) >= 2 * (n + 1) and
            matrix.reqs("PUT", r"/send/m\.room\.message/"), wait_ms / 1000 + 5,
            "the retried send")
        first, second = sends[2 * n], sends[2 * n + 1]
        assert wait_ms / 1000 <= gap(first, second) <= wait_ms / 1000 + LATE
        time.sleep(0.2)
