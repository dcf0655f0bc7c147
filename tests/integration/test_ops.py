"""Running cohort for months: backups, export/import, shutdown, logs, status, SIGHUP."""
import json
import signal
import sqlite3
import time

import pytest

from conftest import Running
from fake_discord import TOKEN, FakeDiscord, interaction

SCRIPT = """/done Kafka built a consumer, "quoted", and a comma
@bob /start Redis | notes
with a second line? no: one line per message
@bob /skip Docker
/done PostgreSQL ünïcödé ✓ note
@carol /done Kubernetes
"""


def write(cohort, name, text):
    path = cohort.workdir / name
    path.write_text(text)
    return str(path)


def export(cohort, fmt, *args):
    res = cohort.run("export", "--format", fmt, *args)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_import_round_trip(cohort, fmt):
    cohort.console(SCRIPT, "--as", "ana")
    before = export(cohort, fmt)
    assert "Kafka" in before and "Kubernetes" in before
    path = write(cohort, f"out.{fmt}", before)
    cfg = write(cohort, "new.toml", '[store]\npath = "restored.db"\n')
    res = cohort.run("import", "-c", cfg, "--format", fmt, path)
    assert res.returncode == 0, res.stderr
    assert "imported 5 records" in res.stdout
    assert export(cohort, fmt, "-c", cfg) == before
    # The restored store works: scores and the leaderboard are rebuilt from the records.
    out = cohort.console("/leaderboard\n", "-c", cfg, "--as", "ana")
    assert "ana" in out and "carol" in out


def test_import_refuses_a_store_with_progress_and_bad_records(cohort):
    cohort.console("/done Kafka\n", "--as", "ana")
    good = write(cohort, "good.json", export(cohort, "json"))
    res = cohort.run("import", "--format", "json", good)
    assert res.returncode == 2 and "empty store" in res.stderr
    cfg = write(cohort, "new.toml", '[store]\npath = "fresh.db"\n')
    records = json.loads(open(good).read())
    bad = dict(records[0], topic_id="not-a-topic")
    path = write(cohort, "bad.json", json.dumps(records + [bad]))
    res = cohort.run("import", "-c", cfg, "--format", "json", path)
    assert res.returncode == 2
    assert "bad.json:2" in res.stderr and "not-a-topic" in res.stderr
    assert export(cohort, "json", "-c", cfg) == "[]\n"   # nothing was written
    dup = write(cohort, "dup.json", json.dumps(records + records))
    res = cohort.run("import", "-c", cfg, "--format", "json", dup)
    assert res.returncode == 2 and "second record" in res.stderr
    broken = write(cohort, "broken.csv", 'group,member,member_name,topic_id,topic,status,'
                   'updated_at,note\r\nconsole:local,console:ana,ana,kafka,Kafka,done,'
                   '2026-11-25T09:00:00Z,"unclosed\r\n')
    res = cohort.run("import", "-c", cfg, "--format", "csv", broken)
    assert res.returncode == 2 and "broken.csv:2" in res.stderr


def test_backup_while_running_and_restore(cohort):
    cohort.console("/done Kafka\n/done Docker\n", "--as", "ana")
    proc = cohort.popen("console", "--as", "bob")     # holds the store open
    try:
        proc.stdin.write("/done Redis\n")
        proc.stdin.flush()
        assert "bob finished Redis" in proc.stdout.readline() + proc.stdout.readline()
        res = cohort.run("backup", str(cohort.workdir / "copy.db"))
        assert res.returncode == 0, res.stderr
    finally:
        proc.stdin.close()
        proc.wait(10)
    assert not (cohort.workdir / "copy.db.partial").exists()
    cfg = write(cohort, "copy.toml", '[store]\npath = "copy.db"\n')
    assert export(cohort, "json", "-c", cfg) == export(cohort, "json")
    res = cohort.run("backup", "/nonexistent/dir/copy.db")
    assert res.returncode == 1 and "/nonexistent/dir/copy.db" in res.stderr


@pytest.fixture
def fake():
    f = FakeDiscord(heartbeat_interval=5000)
    f.start()
    yield f
    f.stop()


def start_discord(cohort, fake, extra=""):
    write(cohort, "cohort.toml", f'[discord]\nenabled = true\ntoken = "{TOKEN}"\n'
          f'api_url = "{fake.api_url}"\n{extra}')
    proc = Running(cohort).start().proc
    fake.ready_connection()
    return proc


def stored_sources(db):
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute("SELECT source_id FROM events")}
    finally:
        con.close()


def test_sigterm_in_a_burst_loses_nothing_that_was_answered(cohort, fake):
    proc = start_discord(cohort, fake)
    topics = ["Kafka", "Docker", "Redis", "PostgreSQL", "GraphQL", "Kubernetes", "MongoDB",
              "RabbitMQ"]
    for i in range(400):
        fake.dispatch("INTERACTION_CREATE", interaction(
            5000 + i, "done", [{"name": "topic", "value": topics[i % len(topics)]}],
            user=str(700 + i // len(topics))))
    # Mid-burst: some answered, more on their way.
    fake.wait_for(lambda: len(fake.rest("POST", r"/interactions/")) >= 30, 10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, (cohort.workdir / "cohort.log").read_text()
    answered = {r["path"].split("/")[4] for r in fake.rest("POST", r"/interactions/")
                if r["status"] == 204}
    stored = {s.split(":")[1] for s in stored_sources(cohort.db)}
    assert answered, "nothing was answered before the stop"
    assert answered <= stored          # every answer the fake saw is in the store
    log = (cohort.workdir / "cohort.log").read_text()
    assert "stopping (signal)" in log and "stopped" in log
    # The gateway was closed resumably, and the session saved for a quick restart.
    assert fake.connections[0].closed_by_client not in (1000, 1001)


def test_a_second_signal_exits_at_once(cohort, fake):
    fake.fault("POST", r"/interactions/", delay=20, times=5)   # answers that hang
    proc = start_discord(cohort, fake)
    fake.dispatch("INTERACTION_CREATE", interaction(1, "help"))
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 1
    assert time.monotonic() - t < 1.0
    assert "second signal" in (cohort.workdir / "cohort.log").read_text()


def test_status_reports_the_running_adapters(cohort, fake):
    res = cohort.run("status")
    assert res.returncode == 1 and "has not run" in res.stdout
    proc = start_discord(cohort, fake)
    try:
        fake.dispatch("INTERACTION_CREATE", interaction(1, "help"))
        fake.wait_rest("POST", r"/interactions/1/")
        deadline = time.monotonic() + 15
        while True:
            res = cohort.run("status")
            if res.returncode == 0 and "commands           1" in res.stdout:
                break
            assert time.monotonic() < deadline, res.stdout
            time.sleep(0.5)
        assert "discord: connected" in res.stdout and "running" in res.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    res = cohort.run("status")
    assert res.returncode == 1 and "not running" in res.stdout


def test_json_logs_redacted_and_reopened_on_sighup(cohort, fake):
    rm = write(cohort, "rm.md", "- [ ] Basics\n  - [ ] Ownership\n")
    proc = start_discord(cohort, fake, f'[log]\nformat = "json"\nlevel = "debug"\n'
                                       f'file = "cohort.jsonl"\n[roadmap]\nfile = "{rm}"\n')
    try:
        fake.dispatch("INTERACTION_CREATE", interaction(
            1, "done", [{"name": "topic", "value": "Traits"}]))
        body = fake.wait_rest("POST", r"/interactions/1/")[0]["json"]
        assert "not on the roadmap" in json.dumps(body)
        (cohort.workdir / "cohort.jsonl").rename(cohort.workdir / "cohort.jsonl.1")
        write(cohort, "rm.md", "- [ ] Basics\n  - [ ] Ownership\n  - [ ] Traits\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        fake.dispatch("INTERACTION_CREATE", interaction(
            2, "done", [{"name": "topic", "value": "Traits"}]))
        body = fake.wait_rest("POST", r"/interactions/2/")[0]["json"]
        assert "finished Traits" in json.dumps(body)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    old = (cohort.workdir / "cohort.jsonl.1").read_text()
    new = (cohort.workdir / "cohort.jsonl").read_text()
    assert "reloaded: 2 topics" in new
    for line in (old + new).splitlines():
        rec = json.loads(line)
        assert set(rec) == {"time", "level", "module", "msg"}
    assert TOKEN not in old + new + (cohort.workdir / "cohort.log").read_text()
