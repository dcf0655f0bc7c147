"""Discord HTTP interactions: POST /interactions signed by the fake Discord's key, and
discord.gateway = false (no gateway connection at all)."""
import time

import pytest

from conftest import Running
from fake_discord import TOKEN, FakeDiscord, InteractionSender


@pytest.fixture
def fake():
    f = FakeDiscord(heartbeat_interval=1000)
    f.start()
    yield f
    f.stop()


@pytest.fixture
def discord_app():
    return InteractionSender()


class Bot(Running):
    """cohort run with Discord enabled against the fake, taking HTTP interactions."""

    def __init__(self, cohort, fake, app, extra=""):
        super().__init__(cohort)
        (cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "{TOKEN}"
api_url = "{fake.api_url}"
public_key = "{app.public_key}"
{extra}
""")


@pytest.fixture
def bot(cohort, fake, discord_app):
    made = []

    def make(extra="", start=True):
        b = Bot(cohort, fake, discord_app, extra)
        made.append(b)
        return b.start() if start else b
    yield make
    for b in made:
        b.stop()


def wait_status(cohort, pred, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        res = cohort.run("status")
        if pred(res):
            return res
        assert time.monotonic() < deadline, res.stdout + res.stderr
        time.sleep(0.3)


def test_without_the_gateway_no_gateway_connection_is_made(fake, bot, cohort):
    b = bot("gateway = false")
    res = wait_status(cohort, lambda r: r.returncode == 0)
    assert "discord: connected" in res.stdout
    time.sleep(1.5)   # a gateway start would have asked for /gateway/bot by now
    assert fake.rest("GET", r"/gateway/bot") == []
    assert fake.connections == []
    assert "no gateway connection (discord.gateway = false)" in b.stderr()


def test_gateway_false_needs_the_public_key(cohort, fake):
    (cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "{TOKEN}"
api_url = "{fake.api_url}"
gateway = false
""")
    res = cohort.run("run", "-c", "cohort.toml", timeout=10)
    assert res.returncode == 2
    assert "cohort.toml:6: discord.gateway: false (HTTP interactions only) needs " \
           "discord.public_key" in res.stderr
    assert fake.rest("GET", r"/gateway/bot") == []
