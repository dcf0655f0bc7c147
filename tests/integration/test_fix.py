"""Issue 15 §5: admin corrections (/fix), through the real binary.

An admin sets or clears a member's status for a topic, or removes a
member's records; each is logged as the admin's (the dump's "by"), shows in
the digest ("set by ADMIN") and the leaderboard, and the admin's /undo
reverts it while the member's own /undo leaves it alone. Every bad input is
a clear answer that changes nothing. On the console, on SQLite and, when
COHORT_TEST_PG_URL is set (make test), on PostgreSQL.
"""
import json
import os
import subprocess
import uuid

import pytest

from conftest import replies

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
    schema = "fix_" + uuid.uuid4().hex[:12]
    psql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in BASE else "?"
    cohort.env["COHORT_STORE_URL"] = f"{BASE}{sep}options=-csearch_path%3D{schema}"
    yield request.param
    psql(f"DROP SCHEMA {schema} CASCADE")


def say(cohort, script, who="boss"):
    """The console's speaker (--as) is the group's admin; "@ana ..." lines are members."""
    return [body for _, body in replies(cohort.console(script, "--as", who))]


def dump(cohort, *args):
    res = cohort.run("export", *args, "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def records(cohort):
    return [(p["member"], p["topic_id"], p["status"]) for p in dump(cohort)["progress"]]


def start(cohort):
    say(cohort, "@ana /done Kafka built a consumer\n@ana /start Redis\n@bob /done Docker\n")


def test_a_member_who_is_not_an_admin_is_refused_and_nothing_changes(cohort, backend):
    start(cohort)
    before = dump(cohort)
    out = say(cohort, "@bob /fix ana Kafka none\n@bob /fix ana remove confirm\n")
    for answer in out:
        assert "Only admins can correct records" in answer, answer
        assert "Nothing was changed" in answer, answer
    assert dump(cohort) == before


def test_set_and_clear_are_logged_as_the_admins_and_move_the_leaderboard(cohort, backend):
    start(cohort)
    out = say(cohort, "/fix ana Redis done\n/fix bob Docker none\n/leaderboard\n"
              "/fix ana Redis done\n")
    assert out[0].startswith("\u2713 Fixed: Redis is done for ana"), out[0]
    assert "It was in progress. Set by boss; /undo by boss reverts it." in out[0]
    assert out[1].startswith("\u2713 Fixed: Docker is unmarked for bob"), out[1]
    board = out[2].splitlines()
    assert "ana" in board[1] and "2 pts" in board[1], out[2]
    assert "bob" not in out[2]
    assert "Redis is done for ana already" in out[3] and "Nothing was changed" in out[3]
    assert ("console:ana", "redis", "done") in records(cohort)
    assert not [r for r in records(cohort) if r[0] == "console:bob"]
    fixes = [e for e in dump(cohort)["events"] if e.get("by")]
    assert [(e["member"], e["topic_id"], e["from"], e["to"], e["by"], e["by_name"])
            for e in fixes] == [
        ("console:ana", "redis", "in progress", "done", "console:boss", "boss"),
        ("console:bob", "docker", "done", "none", "console:boss", "boss")]
    # The digest says who set it; the member's own finish has no such mark.
    out = say(cohort, "/digest\n")
    assert "ana joined the group and finished Kafka (\u201cbuilt a consumer\u201d), Redis " \
        "(set by boss)" in out[0], out[0]


def test_the_admins_undo_reverts_the_correction_and_the_members_does_not(cohort, backend):
    start(cohort)
    out = say(cohort, "/fix ana Redis done\n@ana /undo\n/leaderboard\n/undo\n/undo\n")
    # Her own undo skips the corrected topic: it reverts her Kafka, not the admin's Redis.
    assert out[1].startswith("\u2713 Undone: Kafka is unmarked again"), out[1]
    assert "ana" in out[2] and "1 pt" in out[2], out[2]
    assert out[3].startswith("\u2713 Undone: your correction of ana"), out[3]
    assert "Redis is in progress again for ana (it was done)." in out[3]
    assert "Nothing to undo" in out[4], out[4]
    assert ("console:ana", "redis", "in progress") in records(cohort)
    assert ("console:ana", "kafka", "done") not in records(cohort)


def test_who_and_progress_say_who_set_a_record(cohort, backend):
    start(cohort)
    say(cohort, "@bob /start Redis\n")
    out = say(cohort, "/fix ana Redis done\n/who Redis\n/progress ana\n@bob /progress\n"
              "/undo\n/who Redis\n/progress ana\n")
    assert "Finished: ana [set by boss] (2026-11-25)" in out[1], out[1]
    assert "On it now: bob\n" in out[1] + "\n", out[1]
    assert "Set by an admin: Redis (boss)" in out[2], out[2]
    assert "Set by an admin" not in out[3], out[3]
    # Once the correction is undone, nothing says so any more.
    assert "Redis is in progress again for ana (it was done)." in out[4], out[4]
    assert "set by" not in out[5] and "Set by" not in out[6], (out[5], out[6])


def test_the_admins_undo_never_overwrites_a_newer_change_of_the_member(cohort, backend):
    start(cohort)
    out = say(cohort, "/fix ana Redis done\n/fix ana remove confirm\n@ana /done Kafka\n"
              "/undo\n/undo\n")
    # The removal is undone for Redis only: Kafka is hers again since, and stays so.
    assert out[3].startswith("\u2713 Undone: your correction of ana"), out[3]
    assert "Redis is done again for ana (it was unmarked)." in out[3], out[3]
    # The Redis fix came before the removal; the removal's Redis part is undone, the fix
    # itself is next.
    assert out[4].startswith("\u2713 Undone: your correction of ana"), out[4]
    assert "Redis is in progress again" in out[4], out[4]
    assert sorted(r for r in records(cohort) if r[0] == "console:ana") == [
        ("console:ana", "kafka", "done"), ("console:ana", "redis", "in progress")]
    out = say(cohort, "/fix ana Redis skip\n@ana /start Redis\n/undo\n")
    assert "Nothing to undo" in out[2], out[2]
    assert ("console:ana", "redis", "in progress") in records(cohort)


def test_a_members_undo_leaves_a_correction_alone(cohort, backend):
    say(cohort, "@ana /start Redis\n")
    out = say(cohort, "/fix ana Redis done\n@ana /undo\n")
    assert "Nothing to undo" in out[1], out[1]
    assert records(cohort) == [("console:ana", "redis", "done")]


def test_remove_asks_first_then_clears_everything_and_undo_brings_it_back(cohort, backend):
    start(cohort)
    before = dump(cohort)
    out = say(cohort, "/fix ana remove\n")
    assert out[0].startswith("? Remove all 2 records of ana?"), out[0]
    assert "/fix console:ana remove confirm" in out[0]
    assert dump(cohort) == before
    out = say(cohort, "/fix ana remove confirm\n/leaderboard\n@ana /progress\n")
    assert out[0].startswith("\u2713 Removed 2 records of ana"), out[0]
    assert "ana" not in out[1] and "bob" in out[1], out[1]
    assert "0/84" in out[2], out[2]
    assert [r for r in records(cohort) if r[0] == "console:ana"] == []
    removal = [e for e in dump(cohort)["events"] if e.get("removal")]
    assert sorted(e["topic_id"] for e in removal) == ["kafka", "redis"]
    assert {e["by"] for e in removal} == {"console:boss"}
    out = say(cohort, "/undo\n/leaderboard\n")
    assert out[0].startswith("\u2713 Undone: your correction of ana"), out[0]
    assert "2 records of ana are back." in out[0]
    assert "ana" in out[1], out[1]
    # Every record is back as it was: status, note and time.
    assert dump(cohort)["progress"] == before["progress"]


def test_bad_input_is_a_clear_answer_and_changes_nothing(cohort, backend):
    start(cohort)
    before = dump(cohort)
    bad = [
        ("/fix nobody Kafka done", "No member called \u201cnobody\u201d here"),
        ("/fix ana Kafak done", "Did you mean Kafka?"),
        ("/fix ana Underwater Basket Weaving done", "is not on the roadmap"),
        ("/fix ana Kafka donee", "\u201cdonee\u201d is not a status"),
        ("/fix ana Kafka", "/fix needs a member, a topic and a status"),
        ("/fix ana", "/fix needs a member, a topic and a status"),
        ("/fix cy remove confirm", "No member called \u201ccy\u201d here"),
    ]
    out = say(cohort, "".join(line + "\n" for line, _ in bad))
    for (line, why), answer in zip(bad, out):
        assert why in answer, (line, answer)
        assert "Nothing was changed" in answer, (line, answer)
    assert dump(cohort) == before


def test_corrections_survive_export_import_export(cohort, backend):
    start(cohort)
    say(cohort, "/fix ana Redis done\n/fix bob remove confirm\n/fix ana Kafka none\n/undo\n")
    first = cohort.run("export", "--format", "json")
    assert first.returncode == 0, first.stderr
    path = cohort.workdir / "dump.json"
    path.write_text(first.stdout)
    (cohort.workdir / "new.toml").write_text('[store]\npath = "restored.db"\n')
    env = dict(cohort.env)
    cohort.env.pop("COHORT_STORE_URL", None)
    res = cohort.run("import", "-c", "new.toml", "--format", "json", str(path))
    assert res.returncode == 0, res.stderr
    second = cohort.run("export", "-c", "new.toml", "--format", "json")
    assert second.stdout == first.stdout
    events = json.loads(second.stdout)["events"]
    assert [e["by"] for e in events if e.get("removal")] == ["console:boss"]
    # The restored store knows whose correction is whose: the admin's undo still works.
    out = [body for _, body in replies(cohort.console("/undo\n", "-c", "new.toml",
                                                      "--as", "boss"))]
    assert "your correction of bob" in out[0], out[0]
    cohort.env = env


def test_on_discord_fix_is_a_slash_command_with_a_member_option(cohort):
    from fake_discord import TOKEN, FakeDiscord, interaction
    from conftest import Running

    fake = FakeDiscord(heartbeat_interval=1000)
    fake.start()
    (cohort.workdir / "cohort.toml").write_text(
        f'[discord]\nenabled = true\ntoken = "{TOKEN}"\napi_url = "{fake.api_url}"\n')
    bot = Running(cohort).start()
    try:
        fake.ready_connection()

        def ask(ix, name, options, user, permissions="0"):
            fake.dispatch("INTERACTION_CREATE", interaction(
                ix, name, options, user=user, username={"300": "ana", "400": "boss"}[user],
                permissions=permissions))
            req = fake.wait_rest("POST", rf"/interactions/{ix}/tok-{ix}/callback", 1, 10)[0]
            e = req["json"]["data"]["embeds"][0]
            return (e.get("title", "") + "\n" + e.get("description", "")).replace("\\", "")

        admin = str(1 << 5)
        assert "ana finished Kafka" in ask(1, "done", [{"name": "topic", "value": "Kafka"}],
                                           "300")
        fix = [{"type": 6, "name": "member", "value": "300"},
               {"type": 3, "name": "status", "value": "none"},
               {"type": 3, "name": "topic", "value": "Kafka"}]
        refused = ask(2, "fix", fix, "300")
        assert "Only admins can correct records" in refused, refused
        fixed = ask(3, "fix", fix, "400", admin)
        assert "Fixed: Kafka is unmarked for ana" in fixed, fixed
        remove = [{"type": 6, "name": "member", "value": "300"},
                  {"type": 3, "name": "status", "value": "remove"}]
        assert "ana has no records here" in ask(4, "fix", remove, "400", admin)
        undone = ask(5, "undo", [], "400", admin)
        assert "Undone: your correction of ana" in undone, undone
    finally:
        bot.stop()
        fake.stop()
    evs = [(e["member"], e["topic_id"], e["to"], e.get("by")) for e in dump(cohort)["events"]]
    assert evs[1] == ("discord:300", "kafka", "none", "discord:400"), evs
