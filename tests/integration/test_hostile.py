"""Hostile input through every door: stored as typed, shown safely, never pinging anyone."""
import csv
import io
import json
import signal
import sqlite3
import subprocess

import pytest

from conftest import BIN, Running
from fake_discord import TOKEN, FakeDiscord, interaction
from fake_matrix import BOT, TOKEN as MX_TOKEN, FakeMatrix
from store_view import dump, events

RLO = "\u202e"        # right-to-left override
ZWSP = "\u200b"       # zero-width space


@pytest.fixture
def dc(cohort):
    f = FakeDiscord(heartbeat_interval=5000)
    f.start()
    (cohort.workdir / "cohort.toml").write_text(
        f'[discord]\nenabled = true\ntoken = "{TOKEN}"\napi_url = "{f.api_url}"\n')
    proc = Running(cohort).start().proc
    f.ready_connection()
    yield f
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0, (cohort.workdir / "cohort.log").read_text()
    f.stop()


def ask(dc, n, name, opts=None, **kw):
    dc.dispatch("INTERACTION_CREATE", interaction(n, name, opts, **kw))
    return dc.wait_rest("POST", rf"/interactions/{n}/")[0]["json"]["data"]


def embed(data):
    e = data["embeds"][0]
    return e.get("title", "") + "\n" + e.get("description", "")


def progress(cohort, key, *args):
    """One field of every progress record, sorted (args: e.g. "-c", "other.toml")."""
    return sorted(r[key] for r in dump(cohort, *args)["progress"])


def names(cohort):
    return sorted(m["member_name"] for m in dump(cohort)["members"])


def test_mentions_and_markdown_in_notes_and_names_stay_text(dc, cohort):
    note = "@everyone @here <@&123> <@456> **bold** [x](https://e.vil) ```js``` # h"
    name = f"**Boss** `x` <@1> {RLO}evil"
    data = ask(dc, 1, "done", [{"name": "topic", "value": "Kafka"},
                               {"name": "note", "value": note}], username=name)
    assert data["allowed_mentions"] == {"parse": []}
    text = embed(data)
    for raw in ["**Boss**", "<@1>", "`x`", RLO]:
        assert raw not in text
    assert "\\*\\*Boss\\*\\*" in text
    # Stored exactly as typed: escaping is the renderer's job.
    assert progress(cohort, "note") == [note]
    assert names(cohort) == [name]
    data = ask(dc, 2, "who", [{"name": "topic", "value": "Kafka"}], user="301")
    text = embed(data)
    assert "\\*\\*Boss\\*\\*" in text and RLO not in text and "\ufffd" in text
    assert data["allowed_mentions"] == {"parse": []}


def test_sql_metacharacters_and_huge_or_invisible_input(dc, cohort):
    data = ask(dc, 10, "done", [{"name": "topic", "value": "Kafka'; DROP TABLE events;--"}])
    assert "not on the roadmap" in embed(data) or "Did you mean" in embed(data)
    note = "'); DELETE FROM progress; --"
    data = ask(dc, 11, "done", [{"name": "topic", "value": "Kafka"},
                                {"name": "note", "value": note}])
    assert "finished Kafka" in embed(data)
    assert progress(cohort, "note") == [note]
    data = ask(dc, 12, "done", [{"name": "topic", "value": "Redis"},
                                {"name": "note", "value": "n" * 10000}])
    assert "too long" in embed(data) and data["flags"] == 64
    data = ask(dc, 13, "done", [{"name": "topic", "value": "K" * 10000}])
    assert data["flags"] == 64                 # an error for the asker only
    data = ask(dc, 14, "done", [{"name": "topic", "value": f"Do{ZWSP}cker"}])
    assert "finished Docker" in embed(data)    # invisible characters do not hide a topic
    assert len(events(cohort)) == 2


def test_invalid_utf8_and_controls_in_the_console(cohort):
    proc = subprocess.run([BIN, "console", "--as", "ana"], cwd=cohort.workdir,
                          env=dict(cohort.env, COHORT_FAKE_NOW="2026-11-25T09:00:00Z"),
                          input=b"/done Kafka \xff\xfe broken\n/done Redis \x1b[31mred\x07\n"
                                b"/progress\n",
                          capture_output=True, timeout=30)
    assert proc.returncode == 0
    out = proc.stdout.decode("utf-8")           # everything printed is valid UTF-8
    assert "not valid UTF-8" in out
    assert "\x1b" not in out and "\x07" not in out
    assert progress(cohort, "topic_id") == ["redis"]


def test_csv_export_defuses_formulas_and_round_trips(cohort):
    cohort.console("/done Kafka | =HYPERLINK(\"http://e.vil\",\"x\")\n"
                   "@bob /done Redis | +1 -1 @SUM(A1)\n"
                   "@cy /done Docker | '=already defused\n"
                   "@dee /done Nginx | 'quoted, not a formula\n", "--as", "ana")
    res = cohort.run("export", "--format", "csv")
    cells = [c for row in csv.reader(io.StringIO(res.stdout)) for c in row]
    assert not any(c[:1] in ("=", "+", "-", "@") for c in cells)
    assert "'=HYPERLINK(\"http://e.vil\",\"x\")" in cells
    (cohort.workdir / "x.csv").write_text(res.stdout)
    (cohort.workdir / "new.toml").write_text('[store]\npath = "new.db"\n')
    assert cohort.run("import", "-c", "new.toml", "--format", "csv", "x.csv").returncode == 0
    assert progress(cohort, "note", "-c", "new.toml") == progress(cohort, "note") == \
        ["'=already defused", "'quoted, not a formula", "+1 -1 @SUM(A1)",
         "=HYPERLINK(\"http://e.vil\",\"x\")"]


def test_matrix_html_and_mentions_are_escaped(cohort):
    hs = FakeMatrix()
    hs.start()
    try:
        room = "!r:fake.test"
        hs.create_room(room, members=["@ana:fake.test"])
        hs.join(room, "@ana:fake.test", name=f"<script>alert(1)</script>{RLO}ana")
        (cohort.workdir / "cohort.toml").write_text(
            f'[matrix]\nenabled = true\nhomeserver = "{hs.url}"\nuser_id = "{BOT}"\n'
            f'access_token = "{MX_TOKEN}"\n')
        proc = Running(cohort).start().proc
        try:
            hs.wait_for(hs.synced_to_end, 10)
            ev = hs.say(room, "@ana:fake.test", "!done Kafka @room <b>hi</b>")
            reply = hs.wait_for(lambda: [r for r in hs.sends() if ev in json.dumps(r["json"])],
                                5)[0]["json"]
            html = reply["formatted_body"]
            assert "<script>" not in html and "&lt;script&gt;" in html
            assert RLO not in html and RLO not in reply["body"]
            assert reply["m.mentions"] == {}
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
    finally:
        hs.stop()


def test_sigkill_mid_burst_loses_no_answered_command_and_counts_none_twice(cohort):
    f = FakeDiscord(heartbeat_interval=5000)
    f.start()
    try:
        (cohort.workdir / "cohort.toml").write_text(
            f'[discord]\nenabled = true\ntoken = "{TOKEN}"\napi_url = "{f.api_url}"\n')
        topics = ["Kafka", "Docker", "Redis", "PostgreSQL", "GraphQL", "Kubernetes"]

        def start():
            return Running(cohort).start().proc
        proc = start()
        f.ready_connection()
        for i in range(300):
            f.dispatch_logged("INTERACTION_CREATE", interaction(
                9000 + i, "done", [{"name": "topic", "value": topics[i % 6]}],
                user=str(800 + i // 6)))
        f.wait_for(lambda: len(f.rest("POST", r"/interactions/")) >= 40, 10)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        answered = {r["path"].split("/")[4] for r in f.rest("POST", r"/interactions/")
                    if r["status"] == 204}
        stored = {e["source_id"] for e in events(cohort)}
        assert {f"discord:{a}" for a in answered} <= stored
        # A restart resumes the session: the gateway replays what came after the
        # last saved sequence, and the store applies each interaction once.
        f.replay_on_resume = 1000
        proc = start()
        # The first process may have stored all 300 before it was killed: wait for the
        # restart to be up before stopping it.
        f.wait_for(lambda: len(f.gateway_ops(6)) + len(f.gateway_ops(2)) >= 2, 20,
                   "the restart to resume or identify")
        f.wait_for(lambda: len(events(cohort)) == 300, 20, "every command in the store")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        sources = [e["source_id"] for e in events(cohort)]
        assert len(sources) == len(set(sources)) == 300
        assert progress(cohort, "status") == ["done"] * 300
    finally:
        f.stop()


ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x7f\u009b"


def no_terminal_controls(text):
    """True when text carries no C0 control but tab/newline, no DEL and no C1 control."""
    return not any((ord(c) < 0x20 and c not in "\t\n") or 0x7f <= ord(c) < 0xa0 for c in text)


def test_import_with_a_long_path_and_a_bad_record_names_both(cohort):
    cohort.console("/done Kafka\n", "--as", "ana")
    res = cohort.run("export", "--format", "csv")
    assert res.returncode == 0
    bad = res.stdout.replace(",done,", ",finished,", 1)
    assert bad != res.stdout
    # A path of more than 512 characters (the size of the error buffer).
    d = cohort.workdir
    for i in range(4):
        d = d / (f"{i}" * 150)
    d.mkdir(parents=True)
    path = d / "progress.csv"
    path.write_text(bad)
    assert len(str(path)) > 600
    (cohort.workdir / "new.toml").write_text('[store]\npath = "new.db"\n')
    res = cohort.run("import", "-c", "new.toml", "--format", "csv", str(path))
    assert "AddressSanitizer" not in res.stderr and "stack smashing" not in res.stderr
    assert res.returncode == 2, res.stderr
    # The reason survives the long path, and the path's end still says which file.
    assert "\"finished\" is not done, in progress or skipped" in res.stderr, res.stderr
    assert "/progress.csv:2: " in res.stderr
    assert len(res.stderr.encode()) < 512 + 20


def test_terminal_escapes_never_reach_csv_or_the_console_echo(cohort):
    out = cohort.console(f"@bo{ESCAPES}b /done Kafka | note {ESCAPES} end\n", "--as", "ana")
    assert no_terminal_controls(out), repr(out)
    assert "\ufffd" in out.splitlines()[0]                  # the echoed speaker
    res = cohort.run("export", "--format", "csv")
    assert res.returncode == 0
    assert no_terminal_controls(res.stdout.replace("\r\n", "\n")), repr(res.stdout)
    assert "note \ufffd]0;pwned\ufffd" in res.stdout


def test_a_room_id_with_terminal_escapes_is_logged_visibly(cohort):
    hs = FakeMatrix()
    hs.start()
    try:
        room = "!r\x1b]0;pwned\x07\x1b[2J:fake.test"
        hs.invite(room, "@eve:fake.test")
        (cohort.workdir / "cohort.toml").write_text(
            f'[matrix]\nenabled = true\nhomeserver = "{hs.url}"\nuser_id = "{BOT}"\n'
            f'access_token = "{MX_TOKEN}"\n')
        run = Running(cohort).start()
        try:
            hs.wait_req("POST", r"/join/", 1, 10)
        finally:
            run.stop()
        log = run.stderr()
        assert "joining !r\\x1b]0;pwned\\x07\\x1b[2J:fake.test" in log, log
        assert no_terminal_controls(log)
    finally:
        hs.stop()


def test_two_processes_do_not_back_off_in_step(tmp_path):
    """rand() was never seeded: every cohort waited exactly as long as every other."""
    import re
    from conftest import Cohort
    waits = []
    fakes, runs = [], []
    try:
        for name in ("a", "b"):
            hs = FakeMatrix()
            hs.start()
            fakes.append(hs)
            hs.fault("GET", r"/sync$", status=502, times=2)
            (tmp_path / name).mkdir()
            c = Cohort(tmp_path / name)
            (c.workdir / "cohort.toml").write_text(
                f'[matrix]\nenabled = true\nhomeserver = "{hs.url}"\nuser_id = "{BOT}"\n'
                f'access_token = "{MX_TOKEN}"\n')
            runs.append(Running(c).start())
        for hs in fakes:
            hs.wait_for(lambda hs=hs: any(r["path"].endswith("/sync") and r["status"] == 200
                                          for r in hs.requests), 15, "a good /sync")
    finally:
        for run in runs:
            run.stop()
        for hs in fakes:
            hs.stop()
    for run in runs:
        got = re.findall(r"/sync failed \(status 502\); retrying in (\d+) ms", run.stderr())
        assert len(got) == 2, run.stderr()
        waits.append(tuple(int(w) for w in got))
    assert waits[0] != waits[1]
    assert 500 <= waits[0][0] <= 1000 and 1000 <= waits[0][1] <= 2000


def test_long_matrix_display_names_are_clipped_and_every_message_fits(cohort):
    hs = FakeMatrix()
    hs.start()
    try:
        room = "!big:fake.test"
        people = ["@ana:fake.test", "@ben:fake.test", "@cy:fake.test"]
        hs.create_room(room, members=people)
        for i, p in enumerate(people):
            hs.join(room, p, name=f"{'ABC'[i]}\nforged line " + "é" * 30000)
        (cohort.workdir / "cohort.toml").write_text(
            f'[matrix]\nenabled = true\nhomeserver = "{hs.url}"\nuser_id = "{BOT}"\n'
            f'access_token = "{MX_TOKEN}"\n')
        run = Running(cohort).start()
        try:
            hs.wait_for(hs.synced_to_end, 10)
            for p in people:
                hs.say(room, p, "!done Kafka")
            hs.wait_for(lambda: len(hs.sends(room)) >= 3, 10, "three answers")
            stored = names(cohort)
            assert [n[:15] for n in stored] == [f"{x} forged line é" for x in "ABC"]
            assert all(len(n) == 64 for n in stored)
            # A store written before names were clipped still holds long ones: made by
            # writing into the SQLite file, as no command stores a name that long.
            con = sqlite3.connect(cohort.db)
            con.execute("UPDATE members SET name = ? WHERE member_id != ?",
                        ("&" * 30000, "matrix:@ana:fake.test"))
            con.commit()
            con.close()
            ev = hs.say(room, "@ana:fake.test", "!leaderboard")
            reply = hs.wait_for(lambda: [r for r in hs.sends(room)
                                         if ev in json.dumps(r["json"])], 10)[0]
        finally:
            run.stop()
        puts = hs.reqs("PUT", r"/send/")
        assert puts and all(r["status"] == 200 for r in puts), [r["status"] for r in puts]
        for r in puts:
            assert len(json.dumps(r["json"], ensure_ascii=False).encode()) < 65536
            assert "<br>forged" not in r["json"]["formatted_body"]
            assert "\nforged" not in r["json"]["body"]
        assert "A forged line" in reply["json"]["body"] and "&amp;&amp;" in \
            reply["json"]["formatted_body"]
    finally:
        hs.stop()


BIG = "x" * 64000    # about the largest message a homeserver takes


def mx_config(cohort, hs):
    (cohort.workdir / "cohort.toml").write_text(
        f'[matrix]\nenabled = true\nhomeserver = "{hs.url}"\nuser_id = "{BOT}"\n'
        f'access_token = "{MX_TOKEN}"\n')


def answered(hs, ev):
    return [r for r in hs.sends() if ev in json.dumps(r["json"])]


def sync_answers(hs):
    return [r for r in hs.reqs("GET", r"/sync$")]


def test_an_oversized_sync_is_read_again_with_a_short_timeline(cohort):
    """Six rooms of 64 kB messages while cohort was down: over the 16 MiB cap."""
    hs = FakeMatrix()
    hs.start()
    try:
        rooms = [f"!r{i}:fake.test" for i in range(6)]
        for r in rooms:
            hs.create_room(r, members=["@ana:fake.test", "@ben:fake.test"])
        mx_config(cohort, hs)
        run = Running(cohort).start()
        try:
            hs.wait_for(hs.synced_to_end, 10)
            ev = hs.say(rooms[0], "@ana:fake.test", "!done Kafka")
            hs.wait_for(lambda: answered(hs, ev), 10)
        finally:
            run.stop()
        # While cohort is down: a command, then a flood, then one more command.
        early = hs.say(rooms[1], "@ben:fake.test", "!done Redis")
        for _ in range(55):
            for r in rooms:
                hs.say(r, "@ben:fake.test", BIG)
        late = hs.say(rooms[0], "@ana:fake.test", "!done Docker")
        run = Running(cohort).start()
        try:
            hs.wait_for(lambda: answered(hs, late), 60, "the answer after the flood")
            hs.wait_for(hs.synced_to_end, 20)
        finally:
            run.stop()
        assert not answered(hs, early)       # in the gap: not answered, and logged
        log = run.stderr()
        assert "larger than the limit of 16 MiB: a backlog" in log, log
        assert f"{rooms[1]}: only the last 5 messages since the last sync were read" in log
        cut = [r for r in sync_answers(hs) if r["query"].get("filter", "").startswith("{")]
        assert cut and json.loads(cut[0]["query"]["filter"])["room"]["timeline"]["limit"] == 5
        assert cut[0]["query"].get("since")  # the same position, not a fresh start
        # The position moved on: a restart neither wedges nor answers anything twice.
        sends = len(hs.sends())
        run = Running(cohort).start()
        try:
            ev = hs.say(rooms[2], "@ana:fake.test", "!done Nginx")
            hs.wait_for(lambda: answered(hs, ev), 10)
        finally:
            run.stop()
        assert len(hs.sends()) == sends + 1
        assert progress(cohort, "topic_id") == ["docker", "kafka", "nginx"]
    finally:
        hs.stop()


def test_a_sync_too_large_even_when_cut_skips_ahead(cohort):
    """Sixty rooms: even five messages each are over the cap; cohort starts afresh.
    The fake serialises syncs of more than 16 MiB in Python: on a loaded machine each takes
    seconds, so the waits are generous (a wait that runs out fails the test all the same)."""
    hs = FakeMatrix()
    hs.start()
    try:
        rooms = [f"!s{i}:fake.test" for i in range(60)]
        for r in rooms:
            hs.create_room(r, members=["@ana:fake.test"])
        mx_config(cohort, hs)
        run = Running(cohort).start()
        try:
            hs.wait_for(hs.synced_to_end, 30)
            ev = hs.say(rooms[0], "@ana:fake.test", "!done Kafka")
            hs.wait_for(lambda: answered(hs, ev), 30)
        finally:
            run.stop()
        early = hs.say(rooms[0], "@ana:fake.test", "!done Redis")
        for _ in range(6):
            for r in rooms:
                hs.say(r, "@ana:fake.test", BIG)
        n_syncs = len(sync_answers(hs))
        run = Running(cohort).start()
        try:
            hs.wait_for(lambda: len(sync_answers(hs)) >= n_syncs + 3 and hs.synced_to_end(),
                        60, "a sync that skipped ahead")
            ev = hs.say(rooms[3], "@ana:fake.test", "!done Docker")
            hs.wait_for(lambda: answered(hs, ev), 30)
        finally:
            run.stop()
        assert not answered(hs, early)
        log = run.stderr()
        assert "larger than the limit of 16 MiB even so); skipping ahead" in log, log
        assert "skipped ahead to the present" in log
        syncs = sync_answers(hs)[n_syncs:]
        assert syncs[0]["query"].get("since")          # the saved position first
        fresh = [r for r in syncs if "since" not in r["query"]]
        assert fresh and json.loads(fresh[0]["query"]["filter"])["room"]["timeline"]["limit"] == 1
        assert progress(cohort, "topic_id") == ["docker", "kafka"]
    finally:
        hs.stop()
