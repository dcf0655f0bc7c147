"""Issue 15 §2: goals with a pace, through the real binary.

A member's goal and the group's (admins), a topic or a section by a date;
the pace across days on the test clock; a goal reached is celebrated once,
a goal passed is reported in the digest; every bad input is a clear answer
that changes nothing. On the console and on Matrix, on SQLite and, when
COHORT_TEST_PG_URL is set (make test), on PostgreSQL.
"""
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import Running, replies
from fake_matrix import BOT, TOKEN, FakeMatrix

BASE = os.environ.get("COHORT_TEST_PG_URL", "")
ROOM = "!study:fake.test"
ANA, ADMIN = "@ana:fake.test", "@boss:fake.test"


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
    schema = "goals_" + uuid.uuid4().hex[:12]
    psql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in BASE else "?"
    cohort.env["COHORT_STORE_URL"] = f"{BASE}{sep}options=-csearch_path%3D{schema}"
    yield request.param
    psql(f"DROP SCHEMA {schema} CASCADE")


def say(cohort, script, who="ana"):
    return [body for _, body in replies(cohort.console(script, "--as", who))]


def goals(cohort):
    res = cohort.run("export", "--format", "json")
    assert res.returncode == 0, res.stderr
    dump = json.loads(res.stdout)
    return dump["goals"], dump["goals_reached"]


def test_a_goal_across_days_is_paced_and_celebrated_once(cohort, backend):
    cohort.at("2026-11-25T09:00:00Z")
    out = say(cohort, "/goal Caching by 27 November\n")
    assert out[0].startswith("\u2713 Goal set: Caching by 2026-11-27"), out[0]
    assert "3 of 3 topics left, 3 days to go: on track (1 more today keeps it so). " \
        "Next: Redis" in out[0], out[0]
    # A day later, nothing done: behind the plan, and what to do to catch up.
    cohort.at("2026-11-26T09:00:00Z")
    out = say(cohort, "/progress\n/done Redis, Client Side\n/goal\n")
    assert "Goal: Caching by 2026-11-27 \u2014 3 of 3 topics left, 2 days to go: 1 topic " \
        "behind. Next, to catch up: Redis" in out[0], out[0]
    assert "reached" not in out[1]
    assert "Goal: Caching by 2026-11-27 \u2014 1 of 3 topics left, 2 days to go: on track. " \
        "Next: CDN" in out[2], out[2]
    # The due day: what is left; the answer that reaches it celebrates, once.
    cohort.at("2026-11-27T12:00:00Z")    # before the digest time (18:00)
    out = say(cohort, "/goal\n/done CDN\n/undo\n/done CDN\n/progress\n")
    assert "1 of 3 topics left, due today: finish them today. Next: CDN" in out[0], out[0]
    assert "\U0001F389 ana reached their goal: Caching, on the due date!" in out[1], out[1]
    assert "reached" not in out[3], out[3]
    assert "Goal: Caching by 2026-11-27 \u2014 reached on 2026-11-27" in out[4], out[4]
    mine, reached = goals(cohort)
    assert [(g["member"], g["target_kind"], g["target_id"]) for g in mine] == [
        ("console:ana", "section", "caching")]
    assert [(m["goal_member"], m["member"]) for m in reached] == [
        ("console:ana", "console:ana")]


def test_every_bad_input_is_answered_and_changes_nothing(cohort, backend):
    cohort.at("2026-11-25T09:00:00Z")
    say(cohort, "/goal Kafka by 31 March\n/done Redis\n")
    before = goals(cohort)
    bad = [
        ("/goal Kafka", "By when?"),
        ("/goal by 31 March", "Which topic or section?"),
        ("/goal Kafka by 2026-11-24", "2026-11-24 has passed"),
        ("/goal Kafka by 12/31", "could be day/month or month/day"),
        ("/goal Kafka by 31 Febuary", "did you mean February?"),
        ("/goal Kafka by 30 February 2028", "February 2028 has 29 days"),
        ("/goal Kafka by 2099-01-01", "more than ten years away"),
        ("/goal Underwater Basket Weaving by 31 March", "is not on the roadmap"),
        ("/goal Redis by 31 March", "You have finished Redis already"),
        ("@bob /goal group Caching by 31 March", "Only admins can set the group's goal"),
        ("@bob /goal group off", "Only admins can set the group's goal"),
        ("@bob /goal off", "You have no goal"),
    ]
    out = say(cohort, "".join(line + "\n" for line, _ in bad))
    for (line, why), answer in zip(bad, out):
        assert why in answer, (line, answer)
        assert "Nothing was changed" in answer, (line, answer)
    assert goals(cohort) == before


def test_the_groups_goal_and_a_missed_goal_in_the_digest(cohort, backend):
    cohort.at("2026-11-25T09:00:00Z")
    out = say(cohort, "/goal group Message Brokers by 2026-12-31\n@bob /goal Caching by "
              "26 November\n@bob /done Redis\n@cy /done Kafka\n")
    assert out[0].startswith("\u2713 Group goal: Message Brokers by 2026-12-31"), out[0]
    assert "Set by ana for everyone: 2 topics, 37 days." in out[0]
    cohort.at("2026-11-27T09:00:00Z")
    out = say(cohort, "/done RabbitMQ\n@bob /progress\n", "cy")
    assert "\U0001F389 cy reached the group's goal: Message Brokers, 34 days before the due " \
        "date!" in out[0], out[0]
    assert "Goal: Caching by 2026-11-26 \u2014 missed by 2 topics on 2026-11-26" in out[1]
    assert "Group goal: Message Brokers by 2026-12-31 \u2014 2 of 2 topics left" in out[1]
    cohort.at("2026-11-27T18:00:00Z")
    res = cohort.run("digest", "--group", "console:local")
    assert res.returncode == 0, res.stderr
    assert "Goals:" in res.stdout
    assert "\U0001F389 cy reached the group's goal: Message Brokers (due 2026-12-31)." \
        in res.stdout, res.stdout
    assert "bob missed their goal Caching by 2 topics on 2026-11-26." in res.stdout
    # Members with a record: cy reached it, bob is at the plan (ana has no record yet).
    assert "Group goal: Message Brokers by 2026-12-31, 35 days left: 1 reached, 1 on track " \
        "or ahead, 0 behind." in res.stdout, res.stdout


@pytest.fixture
def hs():
    f = FakeMatrix()
    f.start()
    yield f
    f.stop()


def reply_to(hs, event_id, timeout=5):
    def find():
        return [r for r in hs.sends() if r["json"].get("m.relates_to", {})
                .get("m.in_reply_to", {}).get("event_id") == event_id]
    return hs.wait_for(find, timeout, f"a reply to {event_id}")[0]["json"]["body"]


def test_goals_on_matrix_follow_power_levels(hs, cohort, backend):
    hs.create_room(ROOM, members=[ANA, ADMIN], levels={ADMIN: 50})
    (cohort.workdir / "cohort.toml").write_text(f"""
[matrix]
enabled = true
homeserver = "{hs.url}"
user_id = "{BOT}"
access_token = "{TOKEN}"
""")
    bot = Running(cohort).start()
    try:
        hs.wait_for(hs.synced_to_end, 10, "the bot to catch up")
        time.sleep(0.3)
        body = reply_to(hs, hs.say(ROOM, ANA, "!goal group Caching by 31 December"))
        assert "Only admins can set the group's goal" in body, body
        body = reply_to(hs, hs.say(ROOM, ADMIN, "!goal group Message Brokers by 31 December"))
        assert "Group goal: Message Brokers by 2026-12-31" in body, body
        body = reply_to(hs, hs.say(ROOM, ANA, "/goal Kafka by December 1st"))
        assert "Goal set: Kafka by 2026-12-01" in body, body
        body = reply_to(hs, hs.say(ROOM, ANA, "!done Kafka"))
        assert "reached their goal: Kafka, 6 days before the due date!" in body, body
        body = reply_to(hs, hs.say(ROOM, ANA, "!done RabbitMQ"))
        assert "reached the group's goal: Message Brokers" in body, body
        body = reply_to(hs, hs.say(ROOM, ANA, "!goal"))
        assert "Group goal: Message Brokers by 2026-12-31 \u2014 reached on 2026-11-25" in body
        assert "Goal: Kafka by 2026-12-01 \u2014 reached on 2026-11-25" in body, body
    finally:
        bot.stop()


def test_goals_on_discord_by_slash_options(cohort, backend):
    from fake_discord import TOKEN as DTOKEN, FakeDiscord, interaction
    fake = FakeDiscord(heartbeat_interval=1000)
    fake.start()
    (cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "{DTOKEN}"
api_url = "{fake.api_url}"
""")
    bot = Running(cohort).start()

    def ask(ix, name, value=None, permissions="0"):
        opts = [{"type": 3, "name": "goal", "value": value}] if value is not None else []
        fake.dispatch("INTERACTION_CREATE", interaction(ix, name, opts, permissions=permissions))
        cb = fake.wait_rest("POST", rf"/interactions/{ix}/tok-{ix}/callback", 1, 5.0)[0]
        data = cb["json"]["data"]
        e = data["embeds"][0]
        return (e.get("title", "") + "\n" + e.get("description", "")).replace("\\", ""), data

    try:
        fake.ready_connection()
        # The registration: /goal with one text option, /goal-group for Manage Server only.
        put = fake.wait_rest("PUT", r"/applications/.*/commands", 1, 10.0)[0]["json"]
        by_name = {c["name"]: c for c in put}
        assert [o["name"] for o in by_name["goal"]["options"]] == ["goal"]
        assert by_name["goal-group"]["default_member_permissions"] == "32"
        text, data = ask(2001, "goal", "Caching by 31 December")
        assert "Goal set: Caching by 2026-12-31" in text, text
        assert data["flags"] == 64                     # personal
        text, _ = ask(2002, "goal-group", "Message Brokers by 31 December")
        assert "Only admins can set the group's goal" in text, text
        text, data = ask(2003, "goal-group", "Message Brokers by 31 December", permissions="32")
        assert "Group goal: Message Brokers by 2026-12-31" in text, text
        assert "flags" not in data                     # the group sees it
        text, _ = ask(2004, "goal")
        assert "Goal: Caching by 2026-12-31" in text and "Group goal: Message Brokers" in text
        text, _ = ask(2005, "goal", "off")
        assert "Removed your goal: Caching by 2026-12-31" in text, text
    finally:
        bot.stop()
        fake.stop()
