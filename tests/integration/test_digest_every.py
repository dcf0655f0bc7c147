"""Issue 15 §3: how often the digest is posted (daily, weekdays, weekly DAY).

Through the real binary on the test clock, on SQLite and, when
COHORT_TEST_PG_URL is set (make test), on PostgreSQL: weekdays skip Saturday
and Sunday (no catch-up on them either), a weekly digest comes only on its day
and covers the week, switching, every bad input answered with nothing changed,
members refused, and Discord's /digest-setup every/day options.
"""
import os
import subprocess
import time
import uuid

import pytest

from conftest import Running, replies
from store_view import digests, dump
from test_digest import Session

BASE = os.environ.get("COHORT_TEST_PG_URL", "")


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
    schema = "every_" + uuid.uuid4().hex[:12]
    psql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in BASE else "?"
    cohort.env["COHORT_STORE_URL"] = f"{BASE}{sep}options=-csearch_path%3D{schema}"
    yield request.param
    psql(f"DROP SCHEMA {schema} CASCADE")


def say(cohort, script, who="ana"):
    return [body for _, body in replies(cohort.console(script, "--as", who))]


def every(cohort, group="console:local"):
    return [g.get("digest_every") for g in dump(cohort)["groups"] if g["group"] == group]


def quiet_run(cohort, start, seconds=2.0, rate=600):
    """A console session from `start` that must post no digest; its output."""
    s = Session(cohort, start, rate)
    time.sleep(seconds)
    s.say("/help")
    s.wait_for("/done TOPIC")
    out = s.close()
    assert " digest \u2014 " not in out, out
    return out


def test_weekdays_skip_saturday_and_sunday(cohort, backend):
    cohort.at("2026-11-27T09:00:00Z")  # Friday
    out = say(cohort, "/digest every weekdays\n/done kafka\n")
    assert out[0].startswith("\u2713 The digest is now posted Monday to Friday"), out[0]
    assert "Next digest: Friday 27 November, 18:00 (UTC)." in out[0], out[0]
    s = Session(cohort, "2026-11-27T17:59:00Z", 600)
    s.wait_for("Weekday digest \u2014 Friday 27 November")
    assert s.close().count(" digest \u2014 ") == 1
    # Saturday: news, but no digest at 18:00 (20 clock minutes after it, nothing).
    cohort.at("2026-11-28T09:00:00Z")
    say(cohort, "/done redis\n", who="bob")
    quiet_run(cohort, "2026-11-28T17:59:00Z")
    # Sunday evening, cohort just started: no "missed" digest is caught up.
    quiet_run(cohort, "2026-11-29T21:00:00Z", seconds=1.0, rate=1)
    cohort.at("2026-11-29T21:05:00Z")
    preview = say(cohort, "/digest\n")[0]
    assert "Posted Monday to Friday at 18:00 (UTC) in this channel." in preview, preview
    assert "Next digest: Monday 30 November, 18:00 (UTC)." in preview, preview
    # Monday: the weekend's news, since Friday's digest.
    s = Session(cohort, "2026-11-30T17:59:00Z", 600)
    s.wait_for("Weekday digest \u2014 Monday 30 November")
    out = s.close()
    assert out.count(" digest \u2014 ") == 1
    assert "Since the last digest (Friday 27 November):" in out, out
    assert "bob joined the group and finished Redis" in out, out
    assert "ana finished" not in out.split("Monday 30 November")[1], out
    assert digests(cohort) == [("2026-11-27", 1), ("2026-11-30", 1)]


def test_weekly_posts_only_on_its_day_and_covers_the_week(cohort, backend):
    cohort.at("2026-11-23T09:00:00Z")  # Monday
    out = say(cohort, "/digest every weekly Mon\n/done kafka\n")
    assert out[0].startswith("\u2713 The digest is now posted every Monday"), out[0]
    s = Session(cohort, "2026-11-23T17:59:00Z", 600)
    s.wait_for("Weekly digest \u2014 Monday 23 November")
    assert s.close().count(" digest \u2014 ") == 1
    cohort.at("2026-11-24T09:00:00Z")
    say(cohort, "/done redis\n")
    cohort.at("2026-11-26T09:00:00Z")
    say(cohort, "/done docker\n", who="bob")
    # Tuesday 18:00 to Monday 18:00 at 20 clock hours a second: one digest, Monday's.
    s = Session(cohort, "2026-11-24T17:00:00Z", 72000)
    s.wait_for("Weekly digest \u2014 Monday 30 November", timeout=30)
    out = s.close()
    assert out.count(" digest \u2014 ") == 1, out
    week = out[out.index("Weekly digest"):]
    assert "Since the last digest (Monday 23 November):" in week, week
    assert "ana finished Redis" in week and "bob joined the group and finished Docker" in week
    assert "Leaderboard:" in week and "#1 ana \u2014 2 pts" in week, week
    assert digests(cohort)[:2] == [("2026-11-23", 1), ("2026-11-30", 1)]
    assert every(cohort) == ["weekly monday"]


def test_switching_frequency_takes_effect_the_next_digest_day(cohort, backend):
    cohort.at("2026-11-25T09:00:00Z")  # Wednesday
    out = say(cohort, "/done kafka\n/digest every weekly friday\n/digest\n")
    assert "Posted every Friday at 18:00 (UTC) in this channel." in out[2], out[2]
    assert "Next digest: Friday 27 November, 18:00 (UTC)." in out[2], out[2]
    quiet_run(cohort, "2026-11-25T17:59:00Z")  # Wednesday: not Friday
    cohort.at("2026-11-26T09:00:00Z")
    out = say(cohort, "/digest every daily\n")
    assert out[0].startswith("\u2713 The digest is now posted every day"), out[0]
    assert "Next digest: Thursday 26 November, 18:00 (UTC)." in out[0], out[0]
    s = Session(cohort, "2026-11-26T17:59:00Z", 600)
    s.wait_for("Daily digest \u2014 Thursday 26 November")
    assert s.close().count(" digest \u2014 ") == 1
    assert every(cohort) == ["daily"]
    assert digests(cohort) == [("2026-11-26", 1)]


@pytest.mark.parametrize("bad,said", [
    ("weekly", "\u201cweekly\u201d needs a day"),
    ("weekly funday", "\u201cfunday\u201d is not a day of the week"),
    ("hourly", "\u201chourly\u201d is not how often a digest can be posted"),
    ("daily monday", "\u201cdaily\u201d takes no day"),
    ("", "Say how often the digest is posted"),
])
def test_bad_input_is_answered_and_changes_nothing(cohort, backend, bad, said):
    out = say(cohort, f"/digest every weekdays\n/digest every {bad}\n/digest\n")
    assert said in out[1], out[1]
    assert "/digest every weekly monday. Nothing was changed." in out[1], out[1]
    assert "Posted Monday to Friday at 18:00 (UTC)" in out[2], out[2]
    assert every(cohort) == ["weekdays"]


def test_members_cannot_change_it(cohort, backend):
    out = say(cohort, "@bob /digest every weekly sunday\n")
    assert out[0].startswith("\u2717 Only admins can change the digest"), out[0]
    assert "Nothing was changed." in out[0]
    assert every(cohort) in ([], [None])


def test_discord_digest_setup_every_and_day(cohort, backend):
    from fake_discord import TOKEN, FakeDiscord, interaction
    fake = FakeDiscord(heartbeat_interval=1000)
    fake.start()
    (cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "{TOKEN}"
api_url = "{fake.api_url}"
""")
    admin = str(1 << 5)
    ids = iter(range(4001, 4100))

    def setup(opts, permissions=admin):
        ix = next(ids)
        fake.dispatch("INTERACTION_CREATE", interaction(
            ix, "digest-setup", [{"type": 3, "name": k, "value": v} for k, v in opts],
            channel="555", permissions=permissions))
        cb = fake.wait_rest("POST", rf"/interactions/{ix}/tok-{ix}/callback", 1, 5.0)[0]
        e = cb["json"]["data"]["embeds"][0]
        return (e.get("title", "") + "\n" + e.get("description", "")).replace("\\", "")

    cohort.at("2026-11-25T09:00:00Z")  # Wednesday
    bot = Running(cohort).start()
    try:
        fake.ready_connection()
        text = setup([("channel", "here"), ("every", "weekly"), ("day", "monday")])
        assert "The weekly digest will be posted here" in text, text
        assert "The digest is now posted every Monday" in text, text
        assert "Next digest: Monday 30 November, 18:00 (UTC)." in text, text
        # weekly without a day: the error alone, nothing changed (not even the channel).
        text = setup([("channel", "off"), ("every", "weekly")])
        assert "\u201cweekly\u201d needs a day" in text and "Nothing was changed." in text
        assert "digest is off" not in text, text
        # A refused time stops what comes after it: the channel and frequency stay.
        text = setup([("channel", "off"), ("time", "25:99"), ("every", "weekdays")])
        assert "Nothing else was changed." in text, text
        assert "digest is off" not in text and "Monday to Friday" not in text, text
        text = setup([("channel", "off"), ("timezone", "Mars/Olympus")])
        assert "Nothing else was changed." in text and "digest is off" not in text, text
        text = setup([("every", "daily"), ("day", "friday")])
        assert "\u201cdaily\u201d takes no day" in text, text
        # A day alone is weekly on that day.
        text = setup([("day", "friday")])
        assert "The digest is now posted every Friday" in text, text
        text = setup([("every", "weekdays")], permissions="0")
        assert "admin" in text or "Manage Server" in text, text
    finally:
        bot.stop()
        fake.stop()
    g = [g for g in dump(cohort)["groups"] if g["group"] == "discord:100"]
    assert [(x["digest_channel"], x["digest_every"]) for x in g] == [("555", "weekly friday")]
