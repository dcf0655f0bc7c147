"""Running cohort for months: backups, export/import, shutdown, logs, status, SIGHUP."""
import json
import os
import pathlib
import signal
import socket
import sqlite3
import stat
import subprocess
import time

import pytest

from conftest import Running
from fake_discord import TOKEN, FakeDiscord, interaction
from store_view import events

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
    # Its records, as the array of records the previous version wrote (still imported).
    records = json.loads(open(good).read())["progress"]
    bad = dict(records[0], topic_id="not-a-topic")
    path = write(cohort, "bad.json", json.dumps(records + [bad]))
    res = cohort.run("import", "-c", cfg, "--format", "json", path)
    assert res.returncode == 2
    assert "bad.json:2" in res.stderr and "not-a-topic" in res.stderr
    assert json.loads(export(cohort, "json", "-c", cfg))["progress"] == []  # nothing written
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


def stored_sources(cohort):
    return {e["source_id"] for e in events(cohort)}


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
    stored = {s.split(":")[1] for s in stored_sources(cohort)}
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
    res = cohort.run("status")   # no store yet: says where it looked, creates none
    assert res.returncode == 1 and f"no store at {cohort.db} " in res.stderr
    assert not cohort.db.exists()
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


def test_backup_refuses_the_live_store_an_existing_file_and_a_damaged_store(cohort):
    cohort.console("/done Kafka\n", "--as", "ana")
    before = cohort.db.read_bytes()
    for target in ("cohort.db", str(cohort.db), "./cohort.db"):
        res = cohort.run("backup", target, "--force")
        assert res.returncode == 2 and "the live store itself" in res.stderr, res.stderr
    os.symlink("cohort.db", cohort.workdir / "link.db")
    res = cohort.run("backup", "link.db", "--force")
    assert res.returncode == 2 and "the live store itself" in res.stderr
    assert cohort.db.read_bytes() == before
    # An unrelated PATH.partial is left alone; an existing PATH only with --force.
    (cohort.workdir / "copy.db.partial").write_text("someone else's")
    (cohort.workdir / "copy.db").write_text("an older file")
    res = cohort.run("backup", "copy.db")
    assert res.returncode == 2 and "copy.db: the file exists already" in res.stderr
    assert "--force" in res.stderr
    assert (cohort.workdir / "copy.db").read_text() == "an older file"
    res = cohort.run("backup", "copy.db", "--force")
    assert res.returncode == 0, res.stderr
    assert (cohort.workdir / "copy.db.partial").read_text() == "someone else's"
    # One self-contained file, nothing else left beside it.
    names = sorted(p.name for p in cohort.workdir.iterdir())
    assert [n for n in names if n.startswith("copy.db")] == ["copy.db", "copy.db.partial"]
    # About the backup file itself (its journal mode): read as a SQLite file.
    con = sqlite3.connect(f"file:{cohort.workdir / 'copy.db'}?mode=ro", uri=True)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert con.execute("SELECT count(*) FROM progress").fetchone()[0] == 1
    con.close()
    (cohort.workdir / "backups").mkdir()
    res = cohort.run("backup", "backups", "--force")
    assert res.returncode == 2 and "backups: that is a folder" in res.stderr
    assert list((cohort.workdir / "backups").iterdir()) == []
    # A damaged store is refused: nothing is written. (The damage is done to the file.)
    con = sqlite3.connect(cohort.db)
    with con:
        con.execute("CREATE TABLE filler (x)")
        con.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,)] * 400)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # The filler's pages, not the schema's (which may take more than one page).
    filler = [r[0] for r in con.execute("SELECT pageno FROM dbstat WHERE name = 'filler'")]
    con.close()
    data = bytearray(cohort.db.read_bytes())
    page = 4096
    assert len(filler) > 10
    for p in (n - 1 for n in filler):          # garbage over every page of the filler
        data[p * page + 8:p * page + 64] = b"\xff" * 56
    cohort.db.write_bytes(bytes(data))
    res = cohort.run("backup", "damaged-copy.db")
    assert res.returncode == 1, res.stderr
    assert "the store is damaged" in res.stderr and "no backup was written" in res.stderr
    assert not any(p.name.startswith("damaged-copy") for p in cohort.workdir.iterdir())


def test_files_cohort_makes_are_for_its_user_only(cohort):
    old = os.umask(0o022)
    try:
        write(cohort, "c.toml", '[log]\nfile = "cohort.log.txt"\n')
        proc = cohort.popen("console", "-c", "c.toml", "--as", "ana")
        try:
            proc.stdin.write("/done Redis\n")
            proc.stdin.flush()
            assert "ana finished Redis" in proc.stdout.readline() + proc.stdout.readline()
            for name in ("cohort.db", "cohort.db-wal", "cohort.db-shm", "cohort.log.txt"):
                mode = stat.S_IMODE(os.stat(cohort.workdir / name).st_mode)
                assert mode == 0o600, (name, oct(mode))
        finally:
            proc.stdin.close()
            proc.wait(10)
        res = cohort.run("backup", "-c", "c.toml", "b.db")
        assert res.returncode == 0, res.stderr
        assert stat.S_IMODE(os.stat(cohort.workdir / "b.db").st_mode) == 0o600
        assert "readable by other users" not in (cohort.workdir / "cohort.log.txt").read_text()
        # A store an older cohort made world-readable is pointed out (and left as it is).
        os.chmod(cohort.db, 0o644)
        res = cohort.run("export", "--format", "csv")
        assert res.returncode == 0, res.stderr
        assert f"{cohort.db.name} is readable by other users (mode 644)" in res.stderr
        assert "chmod 600" in res.stderr
    finally:
        os.umask(old)


def test_eight_processes_starting_at_once_on_a_new_store_all_succeed(cohort):
    cohort.console("/help\n")   # one process alone: the schema version to expect
    # About creating the SQLite file (its schema version, its integrity): read as a file.
    con = sqlite3.connect(cohort.db)
    latest = con.execute("PRAGMA user_version").fetchone()[0]
    con.close()
    for round in range(3):
        cfg = write(cohort, f"r{round}.toml", f'[store]\npath = "r{round}.db"\n')
        procs = [subprocess.Popen(
            [cohort_bin(), "console", "-c", cfg, "--as", f"m{i}", "--group", "g"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=cohort.workdir, env=cohort.env) for i in range(8)]
        outs = [p.communicate("/done Kafka\n", timeout=60) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert "finished Kafka" in out, out + err
        con = sqlite3.connect(cohort.workdir / f"r{round}.db")
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA user_version").fetchone()[0] == latest
        assert con.execute("SELECT count(*) FROM progress").fetchone()[0] == 8
        con.close()


def cohort_bin():
    from conftest import BIN
    return BIN


def test_sigterm_while_starting_is_a_clean_stop(cohort):
    """A stop asked for while cohort still sets up (here: the store is locked by another
    process) ends cleanly, exit 0, without connecting anywhere."""
    (cohort.workdir / "cohort.toml").write_text(
        '[discord]\nenabled = true\ntoken = "a-test-token"\napi_url = "http://127.0.0.1:9"\n')
    con = sqlite3.connect(cohort.db, isolation_level=None)    # SQLite's own file lock
    con.execute("BEGIN EXCLUSIVE")      # cohort waits for it to set the store up
    run = Running(cohort).start()

    def catches_sigterm():
        try:
            status = pathlib.Path(f"/proc/{run.proc.pid}/status").read_text()
        except OSError:
            return False
        caught = int(next(ln for ln in status.splitlines() if ln.startswith("SigCgt:"))
                     .split()[1], 16)
        return caught & (1 << (signal.SIGTERM - 1))
    deadline = time.monotonic() + 10
    while not catches_sigterm():
        assert time.monotonic() < deadline and run.proc.poll() is None, run.stderr()
        time.sleep(0.01)
    time.sleep(0.3)                     # it is waiting for the store now
    run.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    con.execute("ROLLBACK")
    con.close()
    assert run.wait_exit(15) == 0, run.stderr()
    assert "stopping (signal) before connecting" in run.stderr()
    assert "connected" not in run.stderr()
