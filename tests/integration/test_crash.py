"""Nothing owed is lost in a crash (issue 18): answers committed with their change are
delivered once after cohort is killed with SIGKILL, by a restart or, on PostgreSQL, by
another process."""
import os
import signal
import sqlite3
import subprocess
import time
import uuid

import pytest

from conftest import Cohort, Running
from fake_discord import TOKEN, FakeDiscord, interaction
from fake_matrix import BOT, TOKEN as MX_TOKEN, FakeMatrix

ROOM = "!crash:fake.test"
PG_BASE = os.environ.get("COHORT_TEST_PG_URL", "")


class Bot(Running):
    def __init__(self, cohort, toml):
        super().__init__(cohort)
        (cohort.workdir / "cohort.toml").write_text(toml)

    def kill(self):
        """SIGKILL: no clean-up at all."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()


def matrix_toml(hs):
    return f"""
[matrix]
enabled = true
homeserver = "{hs.url}"
user_id = "{BOT}"
access_token = "{MX_TOKEN}"
"""


def discord_toml(fake, extra=""):
    return f"""
[discord]
enabled = true
token = "{TOKEN}"
api_url = "{fake.api_url}"
{extra}
"""


@pytest.fixture
def hs():
    f = FakeMatrix()
    f.start()
    yield f
    f.stop()


@pytest.fixture
def dc():
    f = FakeDiscord(heartbeat_interval=1000)
    f.start()
    yield f
    f.stop()


@pytest.fixture
def bots():
    made = []

    def make(cohort, toml):
        b = Bot(cohort, toml).start()
        made.append(b)
        return b
    yield make
    for b in made:
        if b.proc.poll() is None:
            b.stop()


def count(db, sql):
    """A count read from the SQLite file directly, while cohort runs and between kills: the
    outbox is adapter-side state that no export carries, and the kill must land between
    a commit and its answer, which only a look at the live file can time."""
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def clear_faults(fake):
    with fake.cond:
        fake.faults.clear()


def slow_after_first(fake, method, path, delay=120):
    """The first matching request goes through; the rest hang for delay seconds (the
    process is killed before they are answered)."""
    fake.fault(method, path, times=1)
    fake.fault(method, path, delay=delay, times=10000)


def mx_answers(hs, event_id):
    """The bot's messages in the room that answer event_id (what members see)."""
    with hs.cond:
        return [ev for _, room, ev in hs.stream if ev["sender"] == BOT and
                ev["content"].get("m.relates_to", {}).get("m.in_reply_to", {})
                .get("event_id") == event_id]


def wait_each_mx_answered(hs, ids, timeout=30):
    hs.wait_for(lambda: all(mx_answers_unlocked(hs, e) for e in ids), timeout,
                "an answer to every command")
    time.sleep(1.5)  # a second answer, if one were coming, has time to arrive
    return {e: mx_answers(hs, e) for e in ids}


def mx_answers_unlocked(hs, event_id):
    # wait_for() holds the lock already
    return [ev for _, room, ev in hs.stream if ev["sender"] == BOT and
            ev["content"].get("m.relates_to", {}).get("m.in_reply_to", {})
            .get("event_id") == event_id]


def idle_mx(hs, timeout=15):
    hs.wait_for(hs.synced_to_end, timeout, "the bot to catch up")
    time.sleep(0.3)


def test_matrix_answers_owed_at_a_kill_are_sent_once_after_restart(hs, bots, cohort):
    members = [f"@m{i}:fake.test" for i in range(5)]
    hs.create_room(ROOM, members=members)
    bot = bots(cohort, matrix_toml(hs))
    idle_mx(hs)
    slow_after_first(hs, "PUT", r"/send/m\.room\.message/")
    cmds = ["!done Kafka", "!start Redis", "!done Docker", "!skip Kubernetes", "!done REST"]
    ids = [hs.say(ROOM, m, c) for m, c in zip(members, cmds)]
    hs.wait_for(lambda: [r for r in hs.requests if "/send/" in r["path"] and
                         r["status"] == 200], 15, "the first answer")
    # Every command committed (with its answer owed), the rest of the answers hanging.
    deadline = time.monotonic() + 15
    while count(cohort.db, "SELECT COUNT(*) FROM events") < 5:
        assert time.monotonic() < deadline, "the commands were not all recorded"
        time.sleep(0.05)
    bot.kill()
    clear_faults(hs)
    bots(cohort, matrix_toml(hs))
    got = wait_each_mx_answered(hs, ids)
    assert all(len(a) == 1 for a in got.values()), {e: len(a) for e, a in got.items()}
    assert "finished Kafka" in got[ids[0]][0]["content"]["body"]
    assert "started Redis" in got[ids[1]][0]["content"]["body"]
    assert "skipped Kubernetes" in got[ids[3]][0]["content"]["body"]
    # Each command recorded once; nothing is owed any more.
    assert count(cohort.db, "SELECT COUNT(*) FROM events") == 5
    assert count(cohort.db, "SELECT COUNT(DISTINCT source_id) FROM events") == 5
    assert count(cohort.db, "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL") == 0


def test_a_matrix_batch_killed_mid_apply_loses_nothing(hs, bots, cohort):
    """One /sync batch of many commands, killed after some of them committed: the sync
    position is saved only with the events it covers, so the restart gets the batch again,
    applies the rest, answers what was owed, and nothing twice. (Saving it first would lose
    every command after the kill.)"""
    n = 300
    members = [f"@u{i}:fake.test" for i in range(n)]
    hs.create_room(ROOM, members=members)
    bot = bots(cohort, matrix_toml(hs))
    idle_mx(hs)
    bot.stop()
    ids = [hs.say(ROOM, m, "!done Kafka") for m in members]
    hs.fault("PUT", r"/send/m\.room\.message/", delay=120, times=100000)
    bot = bots(cohort, matrix_toml(hs))
    con = sqlite3.connect(cohort.db, timeout=10)
    deadline = time.monotonic() + 30
    while con.execute("SELECT COUNT(*) FROM events").fetchone()[0] < 1:
        assert time.monotonic() < deadline, "nothing was applied"
    bot.kill()
    applied = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    con.close()
    assert 0 < applied < n, f"the kill came after all {applied} of the batch (make it larger)"
    assert count(cohort.db, "SELECT COUNT(*) FROM outbox") == applied  # with their changes
    clear_faults(hs)
    bots(cohort, matrix_toml(hs))
    got = wait_each_mx_answered(hs, ids, timeout=60)
    assert all(len(a) == 1 for a in got.values()), \
        sorted(len(a) for a in got.values() if len(a) != 1)
    assert count(cohort.db, "SELECT COUNT(*) FROM events") == n
    assert count(cohort.db, "SELECT COUNT(DISTINCT member_id) FROM events") == n


def ix_answers(fake, token):
    """How a member saw interaction token answered: its callback or edit with content,
    and each follow-up."""
    with fake.cond:
        orig = fake.originals.get(token)
        shown = 1 if orig and (orig.get("embeds") or orig.get("content")) else 0
        return [orig] * shown + list(fake.followups.get(token, []))


def wait_each_ix_answered(fake, ix_ids, timeout=40):
    def all_answered():
        return all(ix_answers_unlocked(fake, f"tok-{i}") for i in ix_ids)
    fake.wait_for(all_answered, timeout, "an answer to every interaction")
    time.sleep(1.5)
    return {i: ix_answers(fake, f"tok-{i}") for i in ix_ids}


def ix_answers_unlocked(fake, token):
    orig = fake.originals.get(token)
    return (orig and (orig.get("embeds") or orig.get("content"))) or \
        fake.followups.get(token)


def embed_text(msg):
    e = msg["embeds"][0]
    return (e.get("title", "") + "\n" + e.get("description", "")).replace("\\", "")


COMMANDS = [("done", "Kafka"), ("start", "Redis"), ("done", "Docker"), ("skip", "Kubernetes"),
            ("progress", None)]


def send_commands(fake, first_id, guild="100"):
    ids = []
    for k, (name, topic) in enumerate(COMMANDS):
        opts = [{"type": 3, "name": "topic", "value": topic}] if topic else []
        i = first_id + k
        fake.dispatch("INTERACTION_CREATE", interaction(i, name, opts, guild=guild,
                                                         user=str(300 + k),
                                                         username=f"m{k}"))
        ids.append(i)
    return ids


def first_callback(fake):
    """Waits until one interaction callback went through (the others hang)."""
    fake.wait_for(lambda: [r for r in fake.requests if r["path"].endswith("/callback") and
                           r["status"] == 204], 15, "the first answer")


def check_ix_answers(got, ids):
    assert all(len(a) == 1 for a in got.values()), {i: len(a) for i, a in got.items()}
    assert "finished Kafka" in embed_text(got[ids[0]][0])
    assert "started Redis" in embed_text(got[ids[1]][0])
    assert "skipped Kubernetes" in embed_text(got[ids[3]][0])
    assert got[ids[4]][0].get("flags") == 64  # personal stays personal


def test_discord_answers_owed_at_a_kill_are_followed_up_once(dc, bots, cohort):
    bot = bots(cohort, discord_toml(dc))
    dc.ready_connection()
    slow_after_first(dc, "POST", r"/interactions/\d+/[^/]+/callback")
    ids = send_commands(dc, 2001)
    first_callback(dc)
    deadline = time.monotonic() + 15
    while count(cohort.db, "SELECT COUNT(*) FROM events") < 4:  # /progress changes nothing
        assert time.monotonic() < deadline, "the commands were not all recorded"
        time.sleep(0.05)
    while count(cohort.db, "SELECT COUNT(*) FROM outbox") < 5:  # its answer too
        assert time.monotonic() < deadline, "the answers were not all kept"
        time.sleep(0.05)
    bot.kill()
    clear_faults(dc)
    bots(cohort, discord_toml(dc))
    got = wait_each_ix_answered(dc, ids)
    check_ix_answers(got, ids)
    # One was answered by its callback before the kill. The rest, by a follow-up through
    # the interaction's webhook, or (when a slow machine made cohort defer them before the
    # kill, so Discord shows a "thinking" placeholder) by an edit of that placeholder:
    # either way once (check_ix_answers), and four answers came after the restart.
    def shown(i):
        o = dc.originals.get(f"tok-{i}")
        return bool(o and (o.get("embeds") or o.get("content")))
    by_callback = [i for i in ids if shown(i) and not dc.followups.get(f"tok-{i}")]
    assert len(by_callback) >= 1
    assert len([i for i in ids if dc.followups.get(f"tok-{i}")]) + len(by_callback) == 5
    assert count(cohort.db, "SELECT COUNT(*) FROM events") == 4
    assert count(cohort.db, "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL") == 0


def test_discord_prefix_replies_owed_at_a_kill_are_posted_once(dc, bots, cohort):
    bot = bots(cohort, discord_toml(dc, 'prefix = "!"'))
    dc.ready_connection()
    slow_after_first(dc, "POST", r"/channels/\d+/messages$")
    msgs = []
    for k, text in enumerate(["!done Kafka", "!start Redis", "!done Docker"]):
        mid = str(7001 + k)
        dc.dispatch("MESSAGE_CREATE", {
            "id": mid, "channel_id": "200", "guild_id": "100", "content": text,
            "author": {"id": str(400 + k), "username": f"p{k}"},
            "member": {"nick": None}})
        msgs.append(mid)
    dc.wait_for(lambda: [r for r in dc.requests if r["path"].endswith("/channels/200/messages")
                         and r["status"] == 200], 15, "the first reply")
    deadline = time.monotonic() + 15
    while count(cohort.db, "SELECT COUNT(*) FROM events") < 3:
        assert time.monotonic() < deadline, "the commands were not all recorded"
        time.sleep(0.05)
    bot.kill()
    clear_faults(dc)
    bots(cohort, discord_toml(dc, 'prefix = "!"'))

    def replies():
        posted = dc.channels.get("200", [])
        return {m: [p for p in posted if p.get("message_reference", {})
                    .get("message_id") == m] for m in msgs}
    dc.wait_for(lambda: all(replies().values()), 30, "a reply to every command")
    time.sleep(1.5)
    with dc.cond:
        got = replies()
    assert all(len(r) == 1 for r in got.values()), {m: len(r) for m, r in got.items()}
    assert "started Redis" in embed_text(got[msgs[1]][0])
    assert all(r[0]["nonce"] == f"r{m}" and r[0]["enforce_nonce"] for m, r in got.items())
    assert count(cohort.db, "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL") == 0


def test_an_answer_older_than_discord_allows_is_dropped_and_logged(dc, bots, cohort):
    bot = bots(cohort, discord_toml(dc))
    dc.ready_connection()
    slow_after_first(dc, "POST", r"/interactions/\d+/[^/]+/callback")
    ids = send_commands(dc, 3001)[:2]
    deadline = time.monotonic() + 15
    while count(cohort.db, "SELECT COUNT(*) FROM outbox") < 5:
        assert time.monotonic() < deadline, "the commands were not all recorded"
        time.sleep(0.05)
    bot.kill()
    clear_faults(dc)
    cohort.now = cohort.now.replace(hour=cohort.now.hour + 1)  # an hour later: too late
    restarted = bots(cohort, discord_toml(dc))
    deadline = time.monotonic() + 20
    while count(cohort.db, "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL") > 0:
        assert time.monotonic() < deadline, "the old answers were never given up"
        time.sleep(0.1)
    time.sleep(1)
    assert not any(dc.followups.values())  # never sent late
    assert count(cohort.db, "SELECT COUNT(*) FROM outbox WHERE outcome = 'dropped'") >= 4
    assert "Discord takes an answer for 15 minutes, so it is dropped" in restarted.stderr()


def pg_schema_url():
    schema = "crash_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", PG_BASE, "-c",
                    f"CREATE SCHEMA {schema}"], check=True, capture_output=True)
    sep = "&" if "?" in PG_BASE else "?"
    return schema, f"{PG_BASE}{sep}options=-csearch_path%3D{schema}"


def pg_count(url, sql):
    out = subprocess.run(["psql", "-X", "-q", "-tA", url, "-c", sql], check=True,
                         capture_output=True, text=True).stdout
    return int(out.strip())


def guild_on(shard, count, n=1):
    return str(((count * n + shard) << 22) | 12345)


@pytest.mark.skipif(not PG_BASE, reason="COHORT_TEST_PG_URL is not set (make test starts a "
                    "PostgreSQL: scripts/pg-test.sh)")
def test_on_postgresql_the_survivor_delivers_the_dead_process_outbox(bots, tmp_path):
    fake = FakeDiscord(heartbeat_interval=1000, shards=2, max_concurrency=2)
    fake.start()
    schema, url = pg_schema_url()
    try:
        procs = []
        for name, shard in (("a", 0), ("b", 1)):
            (tmp_path / name).mkdir()
            c = Cohort(tmp_path / name)
            c.env["COHORT_STORE_URL"] = url
            c.env["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                           "detect_leaks=0"]))
            procs.append(bots(c, discord_toml(fake, f"shard_count = 2\nshards = [{shard}]")))
        fake.wait_for(lambda: all(fake.shard_connection(i) is not None for i in (0, 1)), 20,
                      "both shards")
        slow_after_first(fake, "POST", r"/interactions/\d+/[^/]+/callback")
        ids = send_commands(fake, 4001, guild=guild_on(0, 2))  # process a's shard
        first_callback(fake)
        deadline = time.monotonic() + 15
        while pg_count(url, "SELECT COUNT(*) FROM events") < 4:
            assert time.monotonic() < deadline, "the commands were not all recorded"
            time.sleep(0.1)
        while pg_count(url, "SELECT COUNT(*) FROM outbox") < 5:  # /progress's answer too
            assert time.monotonic() < deadline, "the answers were not all kept"
            time.sleep(0.1)
        killed_at = time.monotonic()
        procs[0].kill()
        clear_faults(fake)
        got = wait_each_ix_answered(fake, ids, timeout=40)
        check_ix_answers(got, ids)
        # b claimed them once a's leases ran out (10 s), not before.
        assert time.monotonic() - killed_at < 30
        assert pg_count(url, "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL") == 0
        assert pg_count(url, "SELECT COUNT(*) FROM events") == 4
        assert "delivering answer" in procs[1].stderr()
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.stop()
        fake.stop()
        subprocess.run(["psql", "-X", "-q", PG_BASE, "-c", f"DROP SCHEMA {schema} CASCADE"],
                       capture_output=True)
