"""The console: scripted conversations through the real binary and store."""
import csv
import io
import json
import re
import signal
import time

from conftest import replies

SCRIPT = ("/done Kafka\n@bob /done postgres\n@bob /start redis\n/progress\n/leaderboard\n"
          "/who postgres\n/undo\n/progress\n")


def test_the_issue_conversation_and_a_second_run_remembers(cohort):
    out = replies(cohort.console(SCRIPT, "--as", "ana"))
    heads = [h for h, _ in out]
    assert heads == ["ana> /done Kafka", "bob> /done postgres", "bob> /start redis",
                     "ana> /progress", "ana> /leaderboard", "ana> /who postgres",
                     "ana> /undo", "ana> /progress"]
    body = [b for _, b in out]
    assert body[0].startswith("\u2713 ana finished Kafka (Message Brokers)")
    assert "1/84 \u00b7 1%" in body[0]
    assert body[1].startswith("\u2713 bob finished PostgreSQL (Relational Databases)")
    assert "bob started Redis" in body[2]
    assert "ana's progress" in body[3] and "1/84 \u00b7 1%" in body[3]
    assert "Message Brokers" in body[3] and "Streak: 1 day" in body[3]
    assert "#1   ana" in body[4] and "#1   bob" in body[4]
    assert body[4].index("ana") < body[4].index("bob")  # ana got there first
    assert "Finished: bob (" in body[5]
    assert "Undone: Kafka is unmarked again" in body[6]
    assert "0/84 \u00b7 0%" in body[7]

    # A second run against the same store remembers everything.
    out = replies(cohort.console("/progress bob\n/who redis\n/leaderboard\n", "--as", "ana"))
    assert "1/84" in out[0][1] and "In progress: Redis" in out[0][1]
    assert "On it now: bob" in out[1][1]
    assert "#1   bob" in out[2][1] and "ana" not in out[2][1]


def export_json(cohort, *args):
    res = cohort.run("export", "--format", "json", *args)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["progress"]  # the records of the complete dump


def test_redis_is_marked_once(cohort):
    out = replies(cohort.console("/done Redis\n/done redis\n", "--as", "ana"))
    assert "ana finished Redis" in out[0][1]
    assert "You already finished Redis" in out[1][1]
    rows = export_json(cohort)
    assert [(r["member"], r["topic_id"], r["status"]) for r in rows] == [
        ("console:ana", "redis", "done")]


def test_an_unknown_topic_changes_nothing_and_suggests(cohort):
    out = replies(cohort.console("/done xyzzy\n/done re\n/start sql\n/done kafkaqqqq\n",
                                 "--as", "ana"))
    assert "\u201cxyzzy\u201d is not on the roadmap" in out[0][1]
    assert "Nothing was changed. /topics lists every topic." in out[0][1]
    assert "Nearest" not in out[0][1]  # nothing is near it
    assert out[1][1].startswith("? Did you mean") and "Redis" in out[1][1]
    assert out[2][1].startswith("? Did you mean")
    assert "Nearest: Kafka" in out[3][1]
    assert export_json(cohort) == []


def test_loose_typing_just_works(cohort):
    script = "".join(f"/done {t}\n" for t in ["postgres", "k8s", "rabbit mq", "jwt", "kafka"])
    cohort.console(script, "--as", "ana")
    assert sorted(r["topic_id"] for r in export_json(cohort)) == [
        "jwt", "kafka", "kubernetes", "postgresql", "rabbitmq"]


def test_export_csv_and_json_carry_every_field(cohort):
    cohort.console('/done Kafka built a "consumer", finally\n@bob /start docker\n',
                   "--as", "ana", "--group", "study")
    rows = export_json(cohort, "--group", "console:study")
    assert rows[0] == {
        "group": "console:study", "member": "console:ana", "member_name": "ana",
        "topic_id": "kafka", "topic": "Kafka", "status": "done",
        "updated_at": rows[0]["updated_at"], "note": 'built a "consumer", finally'}
    assert rows[1]["status"] == "in progress" and rows[1]["member_name"] == "bob"
    assert time.strptime(rows[0]["updated_at"], "%Y-%m-%dT%H:%M:%S.%fZ")  # with ms
    res = cohort.run("export", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(res.stdout)))
    assert list(table[0]) == ["group", "member", "member_name", "topic_id", "topic", "status",
                              "updated_at", "note"]
    assert table[0]["note"] == 'built a "consumer", finally'
    assert export_json(cohort, "--group", "console:other") == []
    assert cohort.run("export", "--format", "xml").returncode == 2
    assert cohort.run("export").returncode == 2


def test_sigkill_after_a_reply_loses_nothing_it_confirmed(cohort):
    """Each confirmation printed before a SIGKILL must be in the store afterwards."""
    topics = ["Kafka", "Redis", "Docker", "Nginx", "PostgreSQL", "MongoDB", "gRPC", "SOAP",
              "CORS", "HTTPS", "JWT", "OAuth", "SAML", "ACID", "CDN"]
    proc = cohort.popen("console", "--as", "ana")
    confirmed = []
    for i, topic in enumerate(topics):
        proc.stdin.write(f"/done {topic}\n")
        proc.stdin.flush()
        # Read this command's echo and confirmation.
        line = ""
        while "finished" not in line:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
        confirmed.append(topic)
        if i == 9:
            # Send more commands but kill without waiting for their replies.
            proc.stdin.write("/done Apollo\n/done Throttling\n")
            proc.stdin.flush()
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    done = {r["topic"] for r in export_json(cohort)}
    assert set(confirmed) <= done
    # Nothing counted twice: the maintained score (the leaderboard's points) equals the rows.
    board = replies(cohort.console("/leaderboard\n", "--as", "ana"))[0][1]
    (score,) = re.findall(r"ana +(\d+) pts", board)
    rows = [r for r in export_json(cohort) if r["status"] == "done"]
    assert int(score) == len(rows) == len(done), board


def test_hostile_lines_are_shown_safely(cohort):
    out = cohort.console("/done Kafka \x1b[2J\x1b]0;pwned\x07 note\n"
                         "/done Redis ping @everyone and @here\n"
                         "@x /done " + "A" * 20000 + "\nhello\n/dnoe kafka\n", "--as", "ana")
    assert "\x1b" not in out and "\x07" not in out
    assert "ana finished Redis" in out
    notes = {r["topic_id"]: r["note"] for r in export_json(cohort)}
    assert notes["redis"] == "ping @everyone and @here"  # stored verbatim, shown as text
    assert notes["kafka"] == "\x1b[2J\x1b]0;pwned\x07 note"
    assert "That line is too long" in out
    assert "Commands start with /" in out
    assert "Unknown command /dnoe" in out and "Did you mean /done?" in out


def test_console_owner_is_admin_other_speakers_are_not(cohort):
    out = replies(cohort.console("@bob /digest channel here\n/digest channel here\n"
                                 "/digest time 07:30 Mars/Olympus\n", "--as", "ana"))
    assert "Only admins can change the digest" in out[0][1]
    assert "The daily digest will be posted here" in out[1][1]
    assert "is not a time zone" in out[2][1]


def test_run_falls_back_to_the_console(cohort):
    res = cohort.run("run", input="/done kafka\n")
    assert res.returncode == 0
    assert "finished Kafka" in res.stdout
    assert "no chat platform is enabled" in res.stderr


def test_sigterm_stops_a_waiting_console(cohort):
    proc = cohort.popen("console", "--as", "ana")
    proc.stdin.write("/done kafka\n")
    proc.stdin.flush()
    assert "finished Kafka" in proc.stdout.readline() + proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert [r["topic_id"] for r in export_json(cohort)] == ["kafka"]


def test_digest_command_prints_the_groups_digest(cohort):
    cohort.console("/done kafka\n", "--as", "ana")
    res = cohort.run("digest", "--group", "console:local")
    assert res.returncode == 0, res.stderr
    assert "Daily digest" in res.stdout
    assert "ana joined the group and finished Kafka" in res.stdout
    assert cohort.run("digest").returncode == 2


def test_a_recorded_change_is_never_a_guess(cohort):
    """Issue 12 §1: what used to be recorded as a guess is asked about, and nothing changes."""
    out = replies(cohort.console("/done auth\n/done go\n/done database\n/done Caching\n"
                                 "/done java\n/done unit testing\n/done mo\n", "--as", "ana"))
    assert out[0][1].startswith("? Did you mean Cookie Based, Basic Auth or Token Auth?")
    assert out[1][1].startswith("? Did you mean GOF Design Patterns?")
    assert out[2][1].startswith("? Did you mean Database Indexes?")
    assert "also begins the sections Relational Databases" in out[2][1]
    assert out[3][1].startswith("? Caching is a section with 3 topics: Client Side, Redis and "
                                "CDN. Which one?")
    assert out[4][1] == ("\u2717 \u201cjava\u201d is not on the roadmap\n"
                         "  Nothing was changed. /topics lists every topic.")
    assert out[5][1].startswith("\u2717 \u201cunit testing\u201d is not on the roadmap\n")
    assert "Nearest" not in out[5][1]
    # A name holding commas stays one readable item in a list.
    assert ("\u201cInstrumentation, Monitoring, and Telemetry\u201d or Failure Modes?"
            in out[6][1])
    assert export_json(cohort) == []


def test_a_custom_roadmap_asks_instead_of_guessing(cohort):
    (cohort.workdir / "web.md").write_text(
        "- [ ] Frontend\n\t- [ ] Flexbox\n\t- [ ] Grid <!-- aliases: css grid -->\n"
        "- [ ] Languages\n\t- [ ] Go\n\t- [ ] Go Modules\n")
    (cohort.workdir / "web.toml").write_text('[roadmap]\nfile = "web.md"\n')
    out = replies(cohort.console("/done css\n/done go mod\n/done go | mod\n/done css grid\n",
                                 "-c", "web.toml", "--as", "ana"))
    assert out[0][1].startswith("? Did you mean Grid?")
    assert out[1][1].startswith("? Did you mean Go or Go Modules?")
    assert "For Go with the note \u201cmod\u201d: /done Go | mod" in out[1][1]
    assert "ana finished Go" in out[2][1]
    assert "ana finished Grid" in out[3][1]
    assert {(r["topic_id"], r["note"]) for r in export_json(cohort)} == {
        ("go", "mod"), ("grid", "")}


def test_several_topics_in_one_message(cohort):
    """Issue 12 §2: each unmistakable topic is a change; the rest is asked about."""
    out = replies(cohort.console("/done kafka, redis\n/done nginx and docker\n/done apollo k8s\n"
                                 "/done Kafka and SOAP were fun\n/done cors; java & re\n"
                                 "/done Instrumentation, Monitoring, and Telemetry\n",
                                 "--as", "ana"))
    assert out[0][1].startswith("\u2713 ana finished Kafka and Redis\n")
    assert "2/84" in out[0][1]
    assert out[1][1].startswith("\u2713 ana finished Nginx and Docker\n")
    assert out[2][1].startswith("\u2713 ana finished Apollo and Kubernetes\n")
    assert out[3][1].startswith("\u2713 ana finished SOAP\n")
    assert "Kafka was done already; nothing was counted twice." in out[3][1]
    assert out[4][1].startswith("\u2713 ana finished CORS\n")
    assert "\u201cjava\u201d is not on the roadmap" in out[4][1]
    assert "\u201cre\u201d: did you mean Redis, Data Replication or REST?" in out[4][1]
    assert "The rest was not changed." in out[4][1]
    assert "ana finished Instrumentation, Monitoring, and Telemetry" in out[5][1]
    rows = {r["topic_id"]: r["note"] for r in export_json(cohort)}
    assert rows == {"kafka": "", "redis": "", "nginx": "", "docker": "", "apollo": "",
                    "kubernetes": "", "soap": "were fun", "cors": "",
                    "instrumentation-monitoring-and-telemetry": ""}


def test_losing_a_point_is_said_and_undo_restores_it(cohort):
    out = replies(cohort.console("/done docker\n/start docker\n/undo\n/skip docker\n/undo\n"
                                 "/leaderboard\n", "--as", "ana"))
    assert out[1][1].startswith("\u2713 ana started Docker")
    assert ("Docker was done (since 2026-11-25): its point is gone. /undo restores it."
            in out[1][1])
    assert "Undone: Docker is done again" in out[2][1]
    assert "its point is gone. /undo restores it." in out[3][1]
    assert "Undone: Docker is done again" in out[4][1]
    assert "#1   ana     1 pt" in out[5][1]
    assert [(r["topic_id"], r["status"]) for r in export_json(cohort)] == [("docker", "done")]


def test_undo_after_several_topics_reverts_the_last_first(cohort):
    out = replies(cohort.console("/done kafka, redis\n/undo\n/progress\n/undo\n",
                                 "--as", "ana"))
    assert "/undo reverts one of these at a time, the last first." in out[0][1]
    assert "Undone: Redis is unmarked again" in out[1][1]
    assert "1/84" in out[2][1]
    assert "Undone: Kafka is unmarked again" in out[3][1]
    assert export_json(cohort) == []


def test_notes_are_shown_in_who_and_progress(cohort):
    out = replies(cohort.console("/done kafka built a consumer\n"
                                 "@bob /start kafka reading **the book** @everyone\n"
                                 "/who kafka\n/progress\n", "--as", "ana"))
    assert ("Finished: ana (2026-11-25: \u201cbuilt a consumer\u201d)" in out[2][1])
    assert "On it now: bob (\u201creading **the book** @everyone\u201d)" in out[2][1]
    assert "Notes:\n  Kafka: \u201cbuilt a consumer\u201d" in out[3][1]
