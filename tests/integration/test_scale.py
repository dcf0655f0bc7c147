"""Several `cohort run` processes on one PostgreSQL (DESIGN §10), through the real binary
and one fake Discord that routes each guild's events to its shard's connection, whichever
process holds it.

Needs the throwaway server `make test` starts (scripts/pg-test.sh): its URL in
COHORT_TEST_PG_URL. Each test gets a schema of its own. What the store holds is read
through `cohort export`, as an operator would.
"""
import json
import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from conftest import Cohort, Running
from fake_discord import TOKEN, FakeDiscord, interaction

BASE = os.environ.get("COHORT_TEST_PG_URL", "")
pytestmark = pytest.mark.skipif(not BASE, reason="COHORT_TEST_PG_URL is not set (make test "
                                "starts a PostgreSQL: scripts/pg-test.sh)")


def psql(sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", BASE, "-c", sql],
                   check=True, capture_output=True, text=True)


@pytest.fixture
def pg_url():
    schema = "it_" + uuid.uuid4().hex[:12]
    psql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in BASE else "?"
    yield f"{BASE}{sep}options=-csearch_path%3D{schema}"
    psql(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def fake():
    f = FakeDiscord(heartbeat_interval=1000, shards=2, max_concurrency=4)
    f.start()
    yield f
    f.stop()


def guild(shard_of_count, n=1):
    """A guild id whose (id >> 22) is n * the product of counts plus the wanted shards:
    guild({2: 0}) is on shard 0 of 2; guild({2: 0, 3: 1}) is on 0 of 2 and 1 of 3."""
    for k in range(n * 64, n * 64 + 64):
        if all(k % c == s for c, s in shard_of_count.items()):
            return str((k << 22) | 4242)
    raise AssertionError(shard_of_count)


class Process(Running):
    """One `cohort run` in its own directory, on the shared database, running shards."""

    def __init__(self, root, name, fake, url, shard_count, shards):
        workdir = root / name
        workdir.mkdir(exist_ok=True)
        super().__init__(Cohort(workdir))
        self.name = name
        self.shard_count = shard_count
        self.shards = shards
        self.cohort.env["COHORT_STORE_URL"] = url
        (workdir / "cohort.toml").write_text(f"""
[log]
level = "debug"

[discord]
enabled = true
token = "{TOKEN}"
api_url = "{fake.api_url}"
shard_count = {shard_count}
shards = {json.dumps(shards)}
""")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.wait_exit(10)


@pytest.fixture
def procs(tmp_path, fake, pg_url):
    made = []

    def start(name, shard_count, shards):
        p = Process(tmp_path, name, fake, pg_url, shard_count, shards).start()
        made.append(p)
        return p
    yield start
    for p in made:
        p.stop()


def wait_ready(fake, shards, timeout=30):
    """Waits until each [id, count] in shards has a live connection that identified or
    resumed (from whichever process runs it)."""
    def ok():
        live = [c.shard for c in fake.connections if c.live and c.shard]
        return all(s in live for s in shards)
    fake.wait_for(ok, timeout, f"connections of shards {shards}")


def callbacks(fake, ix):
    return fake.rest("POST", rf"/interactions/{ix}/tok-{ix}/callback$")


def answer(fake, ix, timeout=15):
    (cb, *_) = fake.wait_rest("POST", rf"/interactions/{ix}/tok-{ix}/callback$", 1, timeout)
    e = cb["json"]["data"]["embeds"][0]
    return (e.get("title", "") + "\n" + e.get("description", "") + "\n" +
            "\n".join(f["name"] + " " + f["value"] for f in e.get("fields", [])))


def done(ix, topic, g, user):
    return interaction(ix, "done", [{"type": 3, "name": "topic", "value": topic}], guild=g,
                       user=str(user), username=f"m{user}")


def export(url, cwd):
    c = Cohort(cwd)
    c.env["COHORT_STORE_URL"] = url
    res = c.run("export", "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def done_events(dump):
    return sorted((e["group"], e["member"], e["topic_id"]) for e in dump["events"]
                  if e["to"] == "done")


TOPICS = ["kafka", "redis", "docker", "kubernetes", "postgresql", "graphql", "jwt", "nginx"]


def test_each_process_answers_only_its_guilds_and_a_takeover_sees_the_same_board(
        tmp_path, fake, procs, pg_url):
    a = procs("a", 2, [0])
    b = procs("b", 2, [1])
    wait_ready(fake, [[0, 2], [1, 2]])
    g0, g1 = guild({2: 0}), guild({2: 1})
    assert fake.guild_connections(g0) != fake.guild_connections(g1)
    ix = 8000
    for g in (g0, g1):
        for user in (1, 2, 3):
            for t in TOPICS[:user + 1]:
                ix += 1
                fake.dispatch("INTERACTION_CREATE", done(ix, t, g, user))
    for i in range(8001, ix + 1):
        answer(fake, i)
    # A guild's event on another process's connection: that process leaves it alone.
    (b_conn,) = fake.guild_connections(g1)
    fake.dispatch("INTERACTION_CREATE", interaction(8100, "help", guild=g0), b_conn)
    fake.dispatch("INTERACTION_CREATE", interaction(8101, "help", guild=g1), b_conn)
    answer(fake, 8101)
    time.sleep(1.0)
    assert callbacks(fake, 8100) == []
    assert f"guild {g0} on shard 1: it belongs to shard 0" in b.stderr()
    fake.dispatch("INTERACTION_CREATE", interaction(8102, "leaderboard", guild=g0))
    fake.dispatch("INTERACTION_CREATE", interaction(8103, "leaderboard", guild=g1))
    boards = {g0: answer(fake, 8102), g1: answer(fake, 8103)}
    assert "m3" in boards[g0] and "m3" in boards[g1]
    # Both processes wrote into the one database; every change once.
    dump = export(pg_url, tmp_path)
    want = sorted((f"discord:{g}", f"discord:{u}", t) for g in (g0, g1) for u in (1, 2, 3)
                  for t in TOPICS[:u + 1])
    assert done_events(dump) == want
    # The processes swap shards: each guild is now answered by the other one, alike.
    a.stop()
    b.stop()
    procs("a2", 2, [1])
    procs("b2", 2, [0])
    fake.wait_for(lambda: len([c for c in fake.connections if c.live and c.shard]) == 2 and
                  len(fake.gateway_ops(2)) + len(fake.gateway_ops(6)) >= 4, 30,
                  "both shards back")
    wait_ready(fake, [[0, 2], [1, 2]])
    fake.dispatch("INTERACTION_CREATE", interaction(8104, "leaderboard", guild=g0))
    fake.dispatch("INTERACTION_CREATE", interaction(8105, "leaderboard", guild=g1))
    assert answer(fake, 8104) == boards[g0]
    assert answer(fake, 8105) == boards[g1]


def test_concurrent_dones_from_two_processes_for_one_group_count_once(
        tmp_path, fake, procs, pg_url):
    """While a bot reshards, the old shard set (2) and the new one (3) run at once and
    Discord sends a guild's events to a connection of each: here process a runs shard 0 of
    2 and process b shard 1 of 3, and the guild is on both. The same members mark the same
    topics through both processes at once, and some events arrive at both."""
    a = procs("a", 2, [0])
    b = procs("b", 3, [1])
    wait_ready(fake, [[0, 2], [1, 3]])
    g = guild({2: 0, 3: 1})
    conns = fake.guild_connections(g)
    assert len(conns) == 2
    members, ix, both = range(1, 6), 9000, []
    for t in TOPICS:
        for m in members:
            for conn in conns:               # one /done of it through each process
                ix += 1
                fake.dispatch("INTERACTION_CREATE", done(ix, t, g, m), conn)
            if m == 1:                       # and one event that reaches both processes
                ix += 1
                both.append(ix)
                for conn in conns:
                    fake.dispatch("INTERACTION_CREATE", done(ix, t, g, 10 + m), conn)
    for i in range(9001, ix + 1):
        answer(fake, i, timeout=30)
    dump = export(pg_url, tmp_path)
    want = sorted((f"discord:{g}", f"discord:{m}", t) for m in list(members) + [11]
                  for t in TOPICS)
    assert done_events(dump) == want         # once each: nothing lost, nothing twice
    assert sorted((r["member"], r["topic_id"]) for r in dump["progress"]
                  if r["status"] == "done") == sorted((w[1], w[2]) for w in want)
    # The scores agree with the records, whichever process answers.
    boards = []
    for conn in conns:
        ix += 1
        fake.dispatch("INTERACTION_CREATE", interaction(ix, "leaderboard", guild=g), conn)
        boards.append(answer(fake, ix))
    assert boards[0] == boards[1]
    for m in list(members) + [11]:
        assert f"m{m}" in boards[0]
    ranks = [line for line in boards[0].splitlines() if line.startswith("#")]
    assert len(ranks) == 6 and all(f" {len(TOPICS)} pts" in r for r in ranks), boards[0]
    assert a.proc.poll() is None and b.proc.poll() is None


def test_a_process_killed_mid_burst_loses_nothing_acknowledged_and_doubles_nothing(
        tmp_path, fake, procs, pg_url):
    a = procs("a", 2, [0])
    procs("b", 2, [1])
    wait_ready(fake, [[0, 2], [1, 2]])
    g0, g1 = guild({2: 0}), guild({2: 1})
    sent = []                                 # (interaction id, group, member, topic)
    ix = 10000
    killed_at = None
    for m in range(1, 9):
        for t in TOPICS:
            for shard, g in ((0, g0), (1, g1)):
                ix += 1
                sent.append((ix, g, m, t))
                fake.dispatch_shard("INTERACTION_CREATE", done(ix, t, g, m), shard, 2)
            time.sleep(0.005)
            if killed_at is None and len(fake.rest("POST", r"/interactions/")) >= 40:
                a.kill()                      # mid-burst: shard 0 has work in flight
                killed_at = ix
    assert killed_at is not None and killed_at < ix - 20, (killed_at, ix)
    fake.wait_for(lambda: fake.guild_connections(g0) == [], 10, "shard 0's connection gone")
    acked = {int(re.search(r"/interactions/(\d+)/", r["path"]).group(1))
             for r in fake.rest("POST", r"/interactions/") if r["status"] == 204}
    # Shard 1's process went on answering through the burst.
    for (i, g, _, _) in sent:
        if g == g1:
            answer(fake, i)
    # Restarted, the process resumes shard 0's session: what it missed is delivered.
    procs("a2", 2, [0])
    fake.wait_for(lambda: fake.gateway_ops(6), 30, "a RESUME")
    wait_ready(fake, [[0, 2], [1, 2]])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        dump = export(pg_url, tmp_path)
        if len(done_events(dump)) >= len(sent):
            break
        time.sleep(0.5)
    events = done_events(dump)
    assert len(events) == len(set(events)), "a change was applied twice"
    applied = set(events)
    lost = [(i, g, m, t) for (i, g, m, t) in sent
            if (f"discord:{g}", f"discord:{m}", t) not in applied]
    assert [s for s in lost if s[0] in acked] == [], "an acknowledged change was lost"
    # The session's replay brings the rest too: nothing at all is lost.
    assert lost == []


PG_BIN = "/usr/lib/postgresql/15/bin"


def pg_ctl(d, *args):
    cmd = [f"{PG_BIN}/pg_ctl", "-D", f"{d}/data", *args]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)


@pytest.fixture
def own_pg():
    """A PostgreSQL of this test's own, to stop and start under a running cohort."""
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "pg-test.sh")
    d = subprocess.run(["sh", script, "start"], check=True, capture_output=True,
                       text=True).stdout.strip()
    yield d, f"postgresql://cohort@/postgres?host={d}"
    subprocess.run(["sh", script, "stop", d], capture_output=True)


def saved_or_not(fake, ix):
    text = answer(fake, ix)
    assert ("finished" in text) != ("Nothing was changed" in text), text
    return "finished" in text


def test_while_the_database_is_away_nothing_is_said_saved_that_is_not(tmp_path, fake, own_pg):
    d, url = own_pg
    p = Process(tmp_path, "a", fake, url, 2, [0, 1]).start()
    try:
        wait_ready(fake, [[0, 2], [1, 2]])
        g = guild({2: 0})
        fake.dispatch("INTERACTION_CREATE", done(11001, "Kafka", g, 1))
        assert saved_or_not(fake, 11001)
        pg_ctl(d, "-m", "immediate", "stop")
        for i, t in enumerate(["Redis", "Docker"]):
            fake.dispatch("INTERACTION_CREATE", done(11002 + i, t, g, 1))
            assert not saved_or_not(fake, 11002 + i)   # said plainly: nothing was changed
        assert p.proc.poll() is None                      # the process stays up
        assert "database error" in p.stderr()
        pg_ctl(d, "-l", f"{d}/log", "-w", "-o", f"-k {d} -c listen_addresses='' -F", "start")
        time.sleep(1.0)
        fake.dispatch("INTERACTION_CREATE", done(11004, "Nginx", g, 1))
        back = saved_or_not(fake, 11004)
    finally:
        p.stop()
    dump = export(url, tmp_path)
    # Only what was answered as saved is in the store.
    want = [("discord:" + g, "discord:1", "kafka")] + ([("discord:" + g, "discord:1", "nginx")]
                                                      if back else [])
    assert done_events(dump) == want
    # Once the server is back, the same process connects again: no restart needed.
    assert back, "a change after the database came back was refused"
    assert "connected to PostgreSQL again" in p.stderr()
