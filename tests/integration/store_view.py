"""What the store holds, read the way an operator reads it: `cohort export --format json`.
Tests check records through it rather than by opening the SQLite file, so that they mean
the same on either backend (SQLite or PostgreSQL behind store.url). A test that is about
the SQLite file itself (permissions, WAL, locking, corruption) still opens it, and says so.
"""
import json


def dump(cohort, *args):
    """The export of cohort's store (args: e.g. "-c", "cfg.toml"). The test clock is left
    where it was: an export is no process the scenario's times should move for."""
    now = cohort.now
    try:
        res = cohort.run("export", "--format", "json", *args)
    finally:
        cohort.now = now
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def events(cohort, *args):
    """The event log, oldest first: [{group, member, topic_id, from, to, note, at,
    source_id, undoes}]."""
    return dump(cohort, *args)["events"]


def digests(cohort, *args):
    """[(local date, sent)] of every digest record, by date."""
    return sorted((d["date"], int(d["sent_at"] is not None))
                  for d in dump(cohort, *args)["digests"])
