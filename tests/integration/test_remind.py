"""Issue 15 §3: reminders people ask for, through the real binary.

/remind HH:MM is opt-in: only a member who asked gets one, only on a day their
streak would break tonight (a streak ending yesterday, nothing done today), at
most once a local day, also across a restart. Every bad input is a clear
answer that changes nothing. On the console, on SQLite and, when
COHORT_TEST_PG_URL is set (make test), on PostgreSQL.
"""
import os
import subprocess
import time
import uuid

import pytest

from conftest import replies
from test_digest import Session

BASE = os.environ.get("COHORT_TEST_PG_URL", "")
TITLE = "your {}-day streak ends tonight"


def psql(sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", BASE, "-c", sql],
                   check=True, capture_output=True, text=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, cohort):
    if request.param == "sqlite":
        yield request.param
        return
    if not BASE:
        pytest.skip("COHORT_TEST_PG_URL is not set (make test starts a PostgreSQL)")
    schema = "remind_" + uuid.uuid4().hex[:12]
    psql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in BASE else "?"
    cohort.env["COHORT_STORE_URL"] = f"{BASE}{sep}options=-csearch_path%3D{schema}"
    yield request.param
    psql(f"DROP SCHEMA {schema} CASCADE")


def say(cohort, script, who="ana"):
    return [body for _, body in replies(cohort.console(script, "--as", who))]


def evening(cohort, start, seconds=1.5, rate=600, lines=()):
    """A console session from `start` at `rate` clock seconds per second; its output."""
    s = Session(cohort, start, rate)
    for line in lines:
        s.say(line)
    s.say("/help remind")
    s.wait_for("/remind")
    time.sleep(seconds)
    return s.close()


def test_only_those_who_asked_only_at_risk_once_a_day(cohort, backend):
    # Monday 23 Nov: ana and bob each finish a topic; only ana asks for a reminder.
    cohort.at("2026-11-23T09:00:00Z")
    out = say(cohort, "/done kafka\n/remind 20:00\n/remind\n")
    assert out[1].startswith("\u2713 Reminder set: 20:00 (UTC)"), out[1]
    assert out[2].startswith("Your reminder: 20:00 (UTC)"), out[2]
    say(cohort, "/done docker\n", who="bob")
    # Monday evening: ana did something today, so no reminder.
    out = evening(cohort, "2026-11-23T19:59:00Z")
    assert "streak ends tonight" not in out, out
    # Tuesday evening, nothing done today: ana (who asked) is reminded, once, at 20:00
    # with her next topic; bob (who did not ask) gets nothing.
    out = evening(cohort, "2026-11-24T19:58:00Z", seconds=2.5)
    assert out.count("streak ends tonight") == 1, out
    assert "\u23f0 ana, " + TITLE.format(1) in out, out
    assert "Next for you: Node.js" in out, out
    assert "bob" not in out, out
    # A restart the same evening sends no second one.
    out = evening(cohort, "2026-11-24T21:00:00Z")
    assert "streak ends tonight" not in out, out
    # Wednesday: the streak broke on Tuesday (nothing to save): no reminder.
    out = evening(cohort, "2026-11-25T19:59:00Z")
    assert "streak ends tonight" not in out, out
    # Done on Thursday and Friday, nothing on Saturday: on Saturday evening the 2-day
    # streak is at risk, and ana is reminded again.
    cohort.at("2026-11-26T09:00:00Z")
    say(cohort, "/done redis\n")
    cohort.at("2026-11-27T09:00:00Z")
    say(cohort, "/done docker\n")
    out = evening(cohort, "2026-11-28T19:59:00Z")
    assert out.count(TITLE.format(2)) == 1, out


def test_off_stops_them_and_a_time_set_late_starts_tomorrow(cohort, backend):
    cohort.at("2026-11-23T09:00:00Z")
    say(cohort, "/digest channel off\n/done kafka\n")  # no digest among the answers
    # Set at 21:00 on Tuesday, for 20:00: today's time has passed, so none tonight.
    cohort.at("2026-11-24T21:00:00Z")
    assert say(cohort, "/remind 20:00\n")[0].startswith("\u2713 Reminder set: 20:00")
    out = evening(cohort, "2026-11-24T21:01:00Z")
    assert "streak ends tonight" not in out, out
    # Off: nothing on a day at risk.
    cohort.at("2026-11-25T09:00:00Z")
    say(cohort, "/done docker\n")
    out = say(cohort, "/remind off\n/remind\n/remind off\n")
    assert out[0].startswith("\u2713 Reminder off"), out[0]
    assert out[1].startswith("You have no reminder"), out[1]
    assert out[2].startswith("You had no reminder; nothing was changed"), out[2]
    out = evening(cohort, "2026-11-26T19:59:00Z")
    assert "streak ends tonight" not in out, out


def test_the_group_time_zone_is_used_and_said(cohort, backend):
    cohort.at("2026-11-23T09:00:00Z")
    out = say(cohort, "/digest time 18:00 Europe/Berlin\n/done kafka\n/remind 7:30\n")
    assert out[2].startswith("\u2713 Reminder set: 07:30 (Europe/Berlin)"), out[2]
    # 07:30 in Berlin is 06:30 UTC on the 24th.
    out = evening(cohort, "2026-11-24T06:29:00Z")
    assert out.count(TITLE.format(1)) == 1, out
    assert "(Europe/Berlin)" in out


@pytest.mark.parametrize("bad", ["25:00", "20:60", "8pm", "tomorrow", "20:00 daily", "20.00",
                                 "\u00e9" * 60])
def test_every_bad_input_is_a_clear_answer_that_changes_nothing(cohort, backend, bad):
    cohort.at("2026-11-23T09:00:00Z")
    out = say(cohort, f"/remind 21:15\n/remind {bad}\n/remind\n")
    assert "is not a time of day" in out[1], out[1]
    assert "/remind 20:00" in out[1] and "Nothing was changed." in out[1], out[1]
    assert out[2].startswith("Your reminder: 21:15 (UTC)"), out[2]


def test_on_discord_a_dm_and_a_member_who_blocks_them(cohort, backend):
    from conftest import Running
    from fake_discord import TOKEN as DTOKEN, FakeDiscord, interaction
    fake = FakeDiscord(heartbeat_interval=1000)
    fake.start()
    (cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "{DTOKEN}"
api_url = "{fake.api_url}"
""")
    ids = iter(range(3001, 3100))

    def ask(name, opt, value, user):
        ix = next(ids)
        opts = [{"type": 3, "name": opt, "value": value}] if value is not None else []
        fake.dispatch("INTERACTION_CREATE", interaction(ix, name, opts, user=user,
                                                        username=f"u{user}"))
        cb = fake.wait_rest("POST", rf"/interactions/{ix}/tok-{ix}/callback", 1, 5.0)[0]
        e = cb["json"]["data"]["embeds"][0]
        return (e.get("title", "") + "\n" + e.get("description", "")).replace("\\", "")

    # Monday: ana (300) and bob (301) ask for 20:00, carl (302) does not; all finish one.
    cohort.at("2026-11-23T09:00:00Z")
    bot = Running(cohort).start()
    try:
        fake.ready_connection()
        for user, topic in (("300", "kafka"), ("301", "docker"), ("302", "redis")):
            assert "finished" in ask("done", "topic", topic, user)
        assert "Reminder set: 20:00 (UTC)" in ask("remind", "time", "20:00", "300")
        assert "Reminder set: 20:00 (UTC)" in ask("remind", "time", "20:00", "301")
        assert "is not a time of day" in ask("remind", "time", "8pm", "302")
    finally:
        bot.stop()
    assert fake.rest("POST", r"/users/@me/channels") == []
    # Tuesday evening, nothing done: at 20:00 a DM channel is opened for each who asked
    # and the reminder posted there; bob's DMs are closed (403 50007): logged quietly,
    # not retried, his setting kept.
    fake.dm_blocked = {"301"}
    cohort.at("2026-11-24T19:59:00Z", 60)
    bot = Running(cohort).start()
    try:
        fake.wait_rest("POST", r"/channels/9301/messages", 1, 15.0)
        posts = fake.wait_rest("POST", r"/channels/9300/messages", 1, 15.0)
        time.sleep(1.5)  # a clock-minute and more: nothing is retried or added
    finally:
        bot.stop()
    opened = sorted(r["json"]["recipient_id"] for r in fake.rest("POST", r"/users/@me/channels"))
    assert opened == ["300", "301"]
    assert len(fake.rest("POST", r"/channels/9301/messages")) == 1
    assert len(fake.rest("POST", r"/channels/93\d\d/messages")) == 2
    e = posts[0]["json"]["embeds"][0]
    assert "your 1-day streak ends tonight" in e["title"], e
    assert posts[0]["json"]["nonce"].startswith("cr-")
    log = (cohort.workdir / "cohort.log").read_text()
    assert log.count("does not accept direct messages") == 1, log
    assert " warn " not in log.split("does not accept")[0].splitlines()[-1]
    # The same evening after a restart: nothing again.
    cohort.at("2026-11-24T21:00:00Z", 60)
    before = len(fake.connections)
    bot = Running(cohort).start()
    try:
        fake.wait_for(lambda: len(fake.connections) > before, 10.0, "a new connection")
        fake.ready_connection()
        assert "Your reminder: 20:00 (UTC)" in ask("remind", "time", None, "301")
        time.sleep(1.0)
    finally:
        bot.stop()
        fake.stop()
    assert len(fake.rest("POST", r"/users/@me/channels")) == 2


def test_on_matrix_a_direct_room_made_once_and_reused(cohort, backend):
    from conftest import Running
    from fake_matrix import BOT, TOKEN, FakeMatrix
    room, ana, bob = "!study:fake.test", "@ana:fake.test", "@bob:fake.test"
    hs = FakeMatrix()
    hs.start()
    hs.create_room(room, members=[ana, bob])
    (cohort.workdir / "cohort.toml").write_text(f"""
[matrix]
enabled = true
homeserver = "{hs.url}"
user_id = "{BOT}"
access_token = "{TOKEN}"
""")

    def run(at, rate, script=(), until=None):
        cohort.at(at, rate)
        bot = Running(cohort).start()
        try:
            hs.wait_for(hs.synced_to_end, 10, "the bot to catch up")
            for who, line in script:
                n = len(hs.sends())
                hs.say(room, who, line)
                hs.wait_for(lambda: len(hs.sends()) > n, 5, f"an answer to {line}")
            if until:
                hs.wait_for(until, 15, "the reminder")
            time.sleep(1.0)
        finally:
            bot.stop()

    def dm_sends():
        return [r for r in hs.sends() if r["room"] != room]

    try:
        run("2026-11-23T09:00:00Z", 1, [(ana, "!done kafka"), (ana, "!remind 20:00"),
                                        (bob, "!done docker")])
        assert "Reminder set: 20:00 (UTC)" in hs.sends()[-2]["json"]["body"]
        assert hs.created == []
        # Tuesday 20:00, nothing done: a direct room with ana (is_direct, invited), the
        # reminder in it; none for bob, who did not ask.
        run("2026-11-24T19:59:00Z", 60, until=lambda: dm_sends())
        assert len(hs.created) == 1, hs.created
        dm, body = hs.created[0]
        assert body["is_direct"] is True and body["invite"] == [ana], body
        sent = dm_sends()
        assert [r["room"] for r in sent] == [dm]
        assert "ana, your 1-day streak ends tonight" in sent[0]["json"]["body"]
        assert "Next for you: Node.js" in sent[0]["json"]["body"]
        # Wednesday she finishes one; Thursday at 20:00 the same room is used again.
        run("2026-11-25T09:00:00Z", 1, [(ana, "!done redis")])
        run("2026-11-26T19:59:00Z", 60, until=lambda: len(dm_sends()) >= 2)
        assert len(hs.created) == 1
        assert [r["room"] for r in dm_sends()] == [dm, dm]
        assert not [r for r in hs.sends() if "bob, your" in r["json"].get("body", "")]
    finally:
        hs.stop()
