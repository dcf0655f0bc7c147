"""Issue 12 §4: restore is exact.

A JSON export is a complete dump (group settings, members, records, the
event log, digest records); importing it into an empty store gives the same
answers everywhere. A CSV export ends with an end line, so a cut file is
refused. An export written by the previous version (an array of records)
still imports.
"""
import json
import pathlib

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "export"
QUESTIONS = ("/progress\n@bob /progress\n@cy /progress\n/leaderboard\n/leaderboard week\n"
             "/leaderboard month\n/digest\n/who Kafka\n/topics Caching\n")


def write(cohort, name, text):
    path = cohort.workdir / name
    path.write_text(text)
    return str(path)


def run_ok(cohort, *args):
    res = cohort.run(*args)
    assert res.returncode == 0, res.stderr
    return res.stdout


def a_week_of_history(cohort):
    """Settings, notes, an undo, skips, gaps in streaks, a digest sent, across days."""
    cohort.at("2026-11-23T08:00:00Z")
    cohort.console("/digest channel here\n/digest time 07:30 Europe/Berlin\n"
                   "/digest every weekdays\n"
                   "/goal Kafka by 30 November\n/goal group Caching by 2026-12-31\n"
                   "@bob /goal Redis by 1 December\n@bob /remind 23:45\n"
                   "/done Kafka built a consumer\n@bob /done Kafka\n@cy /start Redis\n",
                   "--as", "ana")
    cohort.at("2026-11-24T08:00:00Z")
    cohort.console("/done Redis\n@bob /skip Redis\n@bob /done Docker | the =SUM(A1) way\n",
                   "--as", "ana")
    cohort.at("2026-11-24T18:00:00Z")
    run_ok(cohort, "digest", "--group", "console:local", "--post")
    cohort.at("2026-11-26T08:00:00Z")   # a gap: ana's streak of 2 ends
    cohort.console("/done Docker\n/undo\n@cy /done Terminal Usage\n@cy /done PostgreSQL\n", "--as", "ana")
    cohort.at("2026-11-27T08:00:00Z")
    cohort.console("/done Nginx\n@bob /done Redis\n", "--as", "ana")


def answers(cohort, *args):
    cohort.at("2026-11-28T09:00:00Z")
    return cohort.console(QUESTIONS, "--as", "ana", *args)


def test_export_import_export_is_identical_and_answers_agree(cohort):
    a_week_of_history(cohort)
    first = run_ok(cohort, "export", "--format", "json")
    dump = json.loads(first)
    assert dump["version"] == 7
    assert dump["links"] == []
    assert dump["group_roadmaps"] == []       # nobody chose another roadmap
    assert [(r["member"], r["at"]) for r in dump["reminders"]] == [("console:bob", "23:45")]
    assert [(g["member"], g["target_id"], g["due_date"]) for g in dump["goals"]] == [
        ("", "caching", "2026-12-31"), ("console:ana", "kafka", "2026-11-30"),
        ("console:bob", "redis", "2026-12-01")]
    assert [(m["goal_member"], m["member"]) for m in dump["goals_reached"]] == [
        ("console:ana", "console:ana"), ("console:bob", "console:bob")]
    assert dump["groups"] == [{"group": "console:local", "digest_channel": "console",
                               "digest_time": "07:30", "timezone": "Europe/Berlin",
                               "digest_every": "weekdays"}]
    assert [e["to"] for e in dump["events"]].count("none") >= 1      # the undo is there
    assert any(e["undoes"] for e in dump["events"])
    assert dump["digests"][0]["date"] == "2026-11-24" and dump["digest_ranks"]
    assert "access_token" not in first and "next_batch" not in first
    before = answers(cohort)
    assert "longest 2" in before, before

    path = write(cohort, "dump.json", first)
    write(cohort, "new.toml", '[store]\npath = "restored.db"\n')
    res = cohort.run("import", "-c", "new.toml", "--format", "json", path)
    assert res.returncode == 0, res.stderr
    second = run_ok(cohort, "export", "-c", "new.toml", "--format", "json")
    assert second == first
    after = answers(cohort, "-c", "new.toml")
    assert after == before
    # The digest settings and the digest log came along: the same day is not posted again.
    cohort.at("2026-11-24T18:30:00Z")
    res = cohort.run("digest", "-c", "new.toml", "--group", "console:local", "--post")
    assert "already" in res.stdout + res.stderr, res.stdout + res.stderr
    # A dump of version 2 (before goals) still imports, without goals.
    v2 = {k: v for k, v in dump.items() if k not in ("goals", "goals_reached")}
    path = write(cohort, "v2.json", json.dumps(dict(v2, version=2)))
    write(cohort, "v2.toml", '[store]\npath = "v2.db"\n')
    res = cohort.run("import", "-c", "v2.toml", "--format", "json", path)
    assert res.returncode == 0, res.stderr
    third = json.loads(run_ok(cohort, "export", "-c", "v2.toml", "--format", "json"))
    assert third["goals"] == [] and third["events"] == dump["events"]
    # And one of version 3 (before reminders), without reminders.
    v3 = {k: v for k, v in dump.items() if k != "reminders"}
    path = write(cohort, "v3.json", json.dumps(dict(v3, version=3)))
    write(cohort, "v3.toml", '[store]\npath = "v3.db"\n')
    res = cohort.run("import", "-c", "v3.toml", "--format", "json", path)
    assert res.returncode == 0, res.stderr
    fourth = json.loads(run_ok(cohort, "export", "-c", "v3.toml", "--format", "json"))
    assert fourth["reminders"] == [] and fourth["goals"] == dump["goals"]
    # And one of version 4 (before the digest's frequency): the groups post daily.
    v4 = dict(dump, version=4, groups=[{k: v for k, v in g.items() if k != "digest_every"}
                                       for g in dump["groups"]])
    path = write(cohort, "v4.json", json.dumps(v4))
    write(cohort, "v4.toml", '[store]\npath = "v4.db"\n')
    res = cohort.run("import", "-c", "v4.toml", "--format", "json", path)
    assert res.returncode == 0, res.stderr
    fifth = json.loads(run_ok(cohort, "export", "-c", "v4.toml", "--format", "json"))
    assert [g["digest_every"] for g in fifth["groups"]] == [None]
    assert fifth["reminders"] == dump["reminders"]
    # And one of version 5 (before links), without links.
    v5 = {k: v for k, v in dump.items() if k != "links"}
    path = write(cohort, "v5.json", json.dumps(dict(v5, version=5)))
    write(cohort, "v5.toml", '[store]\npath = "v5.db"\n')
    res = cohort.run("import", "-c", "v5.toml", "--format", "json", path)
    assert res.returncode == 0, res.stderr
    sixth = run_ok(cohort, "export", "-c", "v5.toml", "--format", "json")
    assert sixth == first


def test_a_complete_dump_that_is_broken_imports_nothing(cohort):
    a_week_of_history(cohort)
    dump = json.loads(run_ok(cohort, "export", "--format", "json"))
    write(cohort, "new.toml", '[store]\npath = "restored.db"\n')
    cases = [
        (dict(dump, events=dump["events"] + [dict(dump["events"][0], undoes=99)]),
         "events[", "\"undoes\" is not the place of an earlier event"),
        (dict(dump, progress=[dict(dump["progress"][0], member="console:nobody")]),
         "progress[1]", "not in \"members\""),
        (dict(dump, groups=[dict(dump["groups"][0], digest_time=7)]),
         "groups[1]", "\"digest_time\" is missing or not a string"),
        (dict(dump, groups=[dict(dump["groups"][0], digest_every="weekly funday")]),
         "groups[1]", "\"digest_every\": \u201cfunday\u201d is not a day of the week"),
        ({k: v for k, v in dump.items() if k != "events"}, "", "\"events\" is missing"),
        (dict(dump, members=dump["members"] + dump["members"][:1]),
         "members[4]", "a second member"),
        (dict(dump, goals=[dict(dump["goals"][0], due_date="2026-02-30")]),
         "goals[1]", "\"due_date\" \"2026-02-30\" is not a date"),
        (dict(dump, goals_reached=[dict(dump["goals_reached"][0], goal_member="console:zed")]),
         "goals_reached[1]", "no goal in \"goals\""),
    ]
    for i, (broken, where, why) in enumerate(cases):
        path = write(cohort, f"broken{i}.json", json.dumps(broken))
        res = cohort.run("import", "-c", "new.toml", "--format", "json", path)
        assert res.returncode == 2, res.stderr
        assert where in res.stderr and why in res.stderr, res.stderr
        out = json.loads(run_ok(cohort, "export", "-c", "new.toml", "--format", "json"))
        assert not out["members"] and not out["events"] and not out["groups"]
    # Cut anywhere, the JSON is refused too.
    text = run_ok(cohort, "export", "--format", "json")
    path = write(cohort, "cut.json", text[: len(text) // 2])
    assert cohort.run("import", "-c", "new.toml", "--format", "json", path).returncode == 2


def test_a_csv_cut_at_any_line_is_refused(cohort):
    a_week_of_history(cohort)
    csv = run_ok(cohort, "export", "--format", "csv")
    lines = csv.split("\n")
    assert lines[-1] == "" and lines[-2] == "# end of cohort export,9 records", lines
    write(cohort, "new.toml", '[store]\npath = "restored.db"\n')
    for cut in range(1, len(lines) - 1):
        path = write(cohort, f"cut{cut}.csv", "\n".join(lines[:cut]) + "\n")
        res = cohort.run("import", "-c", "new.toml", "--format", "csv", path)
        assert res.returncode == 2, (cut, res.stdout)
        assert "without its end line" in res.stderr or "empty" in res.stderr, res.stderr
        assert "nothing was imported" in res.stderr or "empty" in res.stderr
    # A record lost in the middle is caught by the count.
    path = write(cohort, "lost.csv", "\n".join(lines[:2] + lines[3:]))
    res = cohort.run("import", "-c", "new.toml", "--format", "csv", path)
    assert res.returncode == 2 and "the end line says \"9 records\" but the file holds 8" \
        in res.stderr, res.stderr
    assert run_ok(cohort, "export", "-c", "new.toml", "--format", "csv") == \
        "group,member,member_name,topic_id,topic,status,updated_at,note\n" \
        "# end of cohort export,0 records\n"
    path = write(cohort, "whole.csv", csv)
    res = cohort.run("import", "-c", "new.toml", "--format", "csv", path)
    assert res.returncode == 0 and "imported 9 records" in res.stdout, res.stderr
    assert run_ok(cohort, "export", "-c", "new.toml", "--format", "csv") == csv


def test_an_export_of_the_previous_version_still_imports(cohort):
    write(cohort, "new.toml", '[store]\npath = "restored.db"\n')
    res = cohort.run("import", "-c", "new.toml", "--format", "json", str(FIXTURES / "v1.json"))
    assert res.returncode == 0, res.stderr
    assert "imported 6 records" in res.stdout
    records = json.loads((FIXTURES / "v1.json").read_text())
    dump = json.loads(run_ok(cohort, "export", "-c", "new.toml", "--format", "json"))
    assert [{k: r[k] for k in ("member", "topic_id", "status", "note")} for r in records] == \
        [{k: r[k] for k in ("member", "topic_id", "status", "note")} for r in dump["progress"]]
    cohort.at("2026-11-24T11:00:00Z")
    out = cohort.console("/leaderboard\n", "-c", "new.toml", "--as", "ana")
    assert "#1   ana     3 pts" in out and "#2   bob     2 pts" in out, out
    # Its CSV has no end line: refused, saying how to check and complete it.
    write(cohort, "csv.toml", '[store]\npath = "from-csv.db"\n')
    res = cohort.run("import", "-c", "csv.toml", "--format", "csv", str(FIXTURES / "v1.csv"))
    assert res.returncode == 2 and "add that line with N its records (6 here)" in res.stderr
