"""The real binary on PostgreSQL (store.url / COHORT_STORE_URL).

Needs the throwaway server `make test` starts (scripts/pg-test.sh): its URL in
COHORT_TEST_PG_URL. Each test gets a schema of its own.
"""
import json
import re
import os
import subprocess
import uuid

import pytest

from conftest import replies

BASE = os.environ.get("COHORT_TEST_PG_URL", "")
pytestmark = pytest.mark.skipif(not BASE, reason="COHORT_TEST_PG_URL is not set (make test "
                                "starts a PostgreSQL: scripts/pg-test.sh)")


def psql(sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", BASE, "-c", sql],
                   check=True, capture_output=True, text=True)


@pytest.fixture
def pg(cohort):
    schema = "it_" + uuid.uuid4().hex[:12]
    psql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in BASE else "?"
    url = f"{BASE}{sep}options=-csearch_path%3D{schema}"
    cohort.env["COHORT_STORE_URL"] = url
    yield url
    psql(f"DROP SCHEMA {schema} CASCADE")


def export(cohort):
    res = cohort.run("export", "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_the_console_records_on_postgresql_and_export_reads_it(cohort, pg):
    out = replies(cohort.console("/done Kafka\n@bob /start redis\n", "--as", "ana"))
    assert out[0][1].startswith("\u2713 ana finished Kafka")
    rows = [(r["member"], r["topic_id"], r["status"]) for r in export(cohort)["progress"]]
    assert rows == [("console:ana", "kafka", "done"), ("console:bob", "redis", "in progress")]
    # No SQLite file was made: the store is the database.
    assert not (cohort.workdir / "cohort.db").exists()
    # A second run against the same database remembers.
    out = replies(cohort.console("/done kafka\n", "--as", "ana"))
    assert "You already finished Kafka" in out[0][1]


def test_backup_on_postgresql_names_pg_dump(cohort, pg):
    replies(cohort.console("/done Kafka\n", "--as", "ana"))
    res = cohort.run("backup", "copy.db")
    assert res.returncode == 2
    assert "pg_dump" in res.stderr
    assert not (cohort.workdir / "copy.db").exists()


def test_a_password_in_the_url_is_never_shown(cohort, pg):
    # The test server trusts local connections, so the password is sent and ignored.
    url = pg.replace("postgresql://cohort@", "postgresql://cohort:hunter2sekrit@")
    assert "hunter2sekrit" in url
    cohort.env["COHORT_STORE_URL"] = url
    res = cohort.run("check-config")
    assert res.returncode == 0, res.stderr
    assert "hunter2sekrit" not in res.stdout + res.stderr
    assert "store.url" in res.stdout and "[redacted]" in res.stdout
    res = cohort.run("console", "--as", "ana", input="/done Kafka\n")
    assert res.returncode == 0, res.stderr
    assert "hunter2sekrit" not in res.stdout + res.stderr
    # A server that cannot be reached: the message names the URL, without the password.
    cohort.env["COHORT_STORE_URL"] = url.replace("host=", "host=/nonexistent")
    res = cohort.run("export", "--format", "json")
    assert res.returncode != 0
    assert "cannot connect to PostgreSQL" in res.stderr
    assert "hunter2sekrit" not in res.stderr


def test_migrate_copies_a_sqlite_store_exactly(cohort, pg):
    url = cohort.env.pop("COHORT_STORE_URL")  # the session runs on the SQLite file
    script = ("/done Kafka note: finally\n@bob /done postgres\n@bob /start redis\n"
              "@carol /done redis\n@carol /skip kafka\n/undo\n/done Redis\n")
    replies(cohort.console(script, "--as", "ana"))
    before = export(cohort)
    board = replies(cohort.console("/leaderboard\n/topics\n", "--as", "ana"))
    assert len(before["progress"]) >= 4 and len(before["events"]) >= 6

    res = cohort.run("migrate", "--to", url)
    assert res.returncode == 0, res.stderr
    assert "copied" in res.stdout

    cohort.env["COHORT_STORE_URL"] = url
    after = export(cohort)
    assert after == before  # exactly: every table of the dump, event ids included
    assert replies(cohort.console("/leaderboard\n/topics\n", "--as", "ana")) == board

    # A database that holds progress already is refused, and keeps what it had.
    cohort.env.pop("COHORT_STORE_URL")
    res = cohort.run("migrate", "--to", url)
    assert res.returncode == 2
    assert "holds progress already" in res.stderr
    cohort.env["COHORT_STORE_URL"] = url
    assert export(cohort) == before


def test_migrate_needs_a_postgresql_url(cohort):
    replies(cohort.console("/done Kafka\n", "--as", "ana"))
    res = cohort.run("migrate")
    assert res.returncode == 2 and "--to URL" in res.stderr
    res = cohort.run("migrate", "--to", "other.db")
    assert res.returncode == 2 and "not a PostgreSQL connection URI" in res.stderr


def test_two_processes_on_one_database_lose_nothing_and_count_nothing_twice(cohort, pg):
    """Two consoles at once on one PostgreSQL: the same member marking the same topics,
    and a member of each; every topic is counted once."""
    ids = re.findall(r"\[([a-z0-9-]+)\]", cohort.run("roadmap").stdout)[:30]
    assert len(ids) == 30
    same = "".join(f"@zoe /done {t}\n" for t in ids)
    procs = []
    for me in ("ana", "bob"):
        own = "".join(f"/done {t}\n" for t in ids[:10])
        p = cohort.popen("console", "--as", me)
        procs.append((p, same + own))
    for p, script in procs:  # both are connected and waiting on stdin: go
        p.stdin.write(script)
        p.stdin.flush()
    for p, _ in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    dump = export(cohort)
    done = [(r["member"], r["topic_id"]) for r in dump["progress"] if r["status"] == "done"]
    assert sorted(done) == sorted([("console:zoe", t) for t in ids] +
                                  [(m, t) for m in ("console:ana", "console:bob")
                                   for t in ids[:10]])
    assert len(dump["events"]) == 30 + 20  # zoe's thirty once, not twice
    out = replies(cohort.console("/leaderboard\n", "--as", "ana"))
    assert "#1   zoe" in out[0][1] and "30" in out[0][1]
