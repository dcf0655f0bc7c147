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


def on_time(attempt, wait):
    """Runs attempt() (it returns how long the client waited) until a retry comes on time.
    A retry is never early; one late by more than LATE is tried once more, since a loaded
    machine can hold any process up once, while a client that sleeps a second or ignores
    retry_after is late every time."""
    waited = []
    for _ in range(2):
        got = attempt()
        assert got >= wait, f"retried after {got:.3f} s, asked to wait {wait} s"
        waited.append(round(got, 3))
        if got <= wait + LATE:
            return
    raise AssertionError(f"asked to wait {wait} s, retried after {waited} s")


def test_discord_per_route_429_waits_exactly_retry_after(discord):
    ids = iter(range(2001, 2100))
    for wait in (2.35, 1.27, 0.45):
        def attempt():
            ix = next(ids)
            discord.fault("POST", rf"/interactions/{ix}/", status=429,
                          body={"message": "You are being rate limited.", "retry_after": wait,
                                "global": False})
            discord.dispatch("INTERACTION_CREATE", interaction(ix, "help"))
            first, second = discord.wait_rest("POST", rf"/interactions/{ix}/", count=2,
                                              timeout=wait + 5)
            return gap(first, second)
        on_time(attempt, wait)


def test_discord_global_429_holds_every_route_exactly_retry_after(discord):
    wait = 2.6
    ids = iter(range(2101, 2200, 2))

    def attempt():
        ix = next(ids)
        discord.fault("POST", rf"/interactions/{ix}/", status=429,
                      body={"message": "global", "retry_after": wait, "global": True})
        discord.dispatch("INTERACTION_CREATE", interaction(ix, "help"))
        limited = discord.wait_rest("POST", rf"/interactions/{ix}/")[0]
        discord.dispatch("INTERACTION_CREATE", interaction(ix + 1, "help"))
        other = discord.wait_rest("POST", rf"/interactions/{ix + 1}/", timeout=wait + 5)[0]
        first, second = discord.wait_rest("POST", rf"/interactions/{ix}/", count=2)
        # Another route waited for the global limit as well: both are measured.
        waited = (other["t"] - limited["t"], gap(first, second))
        assert min(waited) >= wait, waited
        return max(waited)
    on_time(attempt, wait)


def test_matrix_429_waits_exactly_retry_after_ms(matrix):
    def sends():
        return matrix.reqs("PUT", r"/send/m\.room\.message/")
    for wait_ms in (2150, 1330, 620):
        def attempt():
            before = len(sends())
            matrix.fault("PUT", r"/send/m\.room\.message/", 429,
                         {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests",
                          "retry_after_ms": wait_ms})
            matrix.say("!study:fake.test", "@ana:fake.test", "!help")
            got = matrix.wait_for(lambda: len(sends()) >= before + 2 and sends(),
                                  wait_ms / 1000 + 5, "the retried send")
            time.sleep(0.2)
            return gap(got[before], got[before + 1])
        on_time(attempt, wait_ms / 1000)
