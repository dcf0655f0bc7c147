"""Discord shards in one process: one gateway connection per shard, IDENTIFY buckets,
each guild answered by its shard's process only, a shard that drops resumes alone."""
import json
import os
import sqlite3
import time

import pytest

from conftest import Running
from fake_discord import TOKEN, FakeDiscord, interaction


def guild_on(shard, count, n=1):
    """A guild id Discord routes to shard of count: (id >> 22) % count == shard."""
    return str(((count * n + shard) << 22) | 12345)


class Bot(Running):
    def __init__(self, cohort, fake, extra=""):
        super().__init__(cohort)
        (cohort.workdir / "cohort.toml").write_text(f"""
[log]
level = "debug"

[discord]
enabled = true
token = "{TOKEN}"
api_url = "{fake.api_url}"
{extra}
""")


@pytest.fixture
def run(cohort):
    made = []

    def start(fake, extra=""):
        b = Bot(cohort, fake, extra).start()
        made.append((b, fake))
        return b
    yield start
    for b, fake in made:
        b.stop()
    for fake in {id(f): f for _, f in made}.values():
        fake.stop()


def fake_with(shards, max_concurrency):
    f = FakeDiscord(heartbeat_interval=1000, shards=shards, max_concurrency=max_concurrency)
    f.start()
    return f


def wait_identified(fake, n, timeout=20):
    return fake.wait_for(lambda: len(fake.identifies()) >= n and fake.identifies(), timeout,
                         f"{n} IDENTIFYs")


def wait_ready(fake, shard_ids, timeout=20):
    """Waits until every shard has a live connection that identified or resumed."""
    fake.wait_for(lambda: all(fake.shard_connection(i) is not None for i in shard_ids),
                  timeout, f"connections of shards {shard_ids}")


def callbacks(fake, ix_id):
    return fake.rest("POST", rf"/interactions/{ix_id}/tok-{ix_id}/callback")


def status(cohort, want, timeout=20):
    """`cohort status` once its output contains every line in want (the status is
    written every 10 s)."""
    deadline = time.monotonic() + timeout
    while True:
        res = cohort.run("status")
        if all(w in res.stdout for w in want) or time.monotonic() > deadline:
            return res
        time.sleep(0.5)


def test_four_shards_from_the_recommendation_each_answer_their_guilds(cohort, run):
    fake = fake_with(shards=4, max_concurrency=4)
    run(fake)                                   # shard_count = 0: as recommended
    idents = wait_identified(fake, 4)
    assert sorted(s for _, s in idents) == [[0, 4], [1, 4], [2, 4], [3, 4]]
    # max_concurrency 4: four buckets, so nobody waits 5 s for another shard.
    assert idents[-1][0] - idents[0][0] < 3.0, idents
    wait_ready(fake, range(4))
    assert len({fake.shard_connection(i) for i in range(4)}) == 4
    for shard in range(4):
        fake.dispatch("INTERACTION_CREATE",
                      interaction(7000 + shard, "help", guild=guild_on(shard, 4)))
    for shard in range(4):
        fake.wait_rest("POST", rf"/interactions/{7000 + shard}/tok-{7000 + shard}/callback")
    time.sleep(1.0)
    assert all(len(callbacks(fake, 7000 + s)) == 1 for s in range(4))
    # The slash commands are registered once, not once per shard.
    assert len(fake.rest("PUT", r"/commands$")) == 1
    assert len(fake.rest("GET", r"/gateway/bot$")) == 1
    res = status(cohort, [f"shard {i}/4" for i in range(4)])
    assert res.returncode == 0, res.stdout
    for i in range(4):
        assert f"shard {i}/4          connected" in res.stdout, res.stdout


def test_explicit_shards_answer_only_their_guilds(cohort, run):
    fake = fake_with(shards=1, max_concurrency=4)     # the config wins over the advice
    bot = run(fake, "shard_count = 4\nshards = [1, 3]\n")
    idents = wait_identified(fake, 2)
    time.sleep(1.0)
    assert sorted(s for _, s in fake.identifies()) == [[1, 4], [3, 4]]
    wait_ready(fake, [1, 3])
    one = fake.shard_connection(1)
    # Misrouted: guilds of shards 0 and 2 belong to another process, which answers them.
    fake.dispatch("INTERACTION_CREATE", interaction(7100, "help", guild=guild_on(0, 4)), one)
    fake.dispatch("INTERACTION_CREATE", interaction(7101, "help", guild=guild_on(2, 4)), one)
    fake.dispatch("INTERACTION_CREATE", interaction(7102, "help", guild=guild_on(1, 4)))
    fake.dispatch("INTERACTION_CREATE", interaction(7103, "help", guild=guild_on(3, 4, 5)))
    fake.wait_rest("POST", r"/interactions/7102/tok-7102/callback")
    fake.wait_rest("POST", r"/interactions/7103/tok-7103/callback")
    time.sleep(1.0)
    assert callbacks(fake, 7100) == [] and callbacks(fake, 7101) == []
    assert len(callbacks(fake, 7102)) == 1 and len(callbacks(fake, 7103)) == 1
    log = bot.stderr()
    assert f"guild {guild_on(0, 4)} on shard 1: it belongs to shard 0" in log
    # A DM belongs to shard 0, which this process does not run.
    dm = interaction(7104, "help")
    del dm["guild_id"]
    fake.dispatch("INTERACTION_CREATE", dm, one)
    fake.dispatch("INTERACTION_CREATE", interaction(7105, "help", guild=guild_on(1, 4, 2)))
    fake.wait_rest("POST", r"/interactions/7105/tok-7105/callback")
    time.sleep(0.5)
    assert callbacks(fake, 7104) == []


@pytest.mark.parametrize("max_concurrency", [1, 2])
def test_identify_spacing_follows_max_concurrency(cohort, run, max_concurrency):
    fake = fake_with(shards=2, max_concurrency=max_concurrency)
    run(fake)
    (t0, s0), (t1, s1) = wait_identified(fake, 2, timeout=30)
    assert sorted([s0, s1]) == [[0, 2], [1, 2]]
    if max_concurrency == 1:
        assert t1 - t0 >= 5.0, (t0, t1)      # one bucket: one IDENTIFY per 5 s
        assert t1 - t0 < 12.0, (t0, t1)
    else:
        assert t1 - t0 < 3.0, (t0, t1)       # two buckets: both at once


def test_a_dropped_shard_resumes_alone(cohort, run):
    fake = fake_with(shards=4, max_concurrency=4)
    run(fake)
    wait_identified(fake, 4)
    wait_ready(fake, range(4))
    before = {i: fake.shard_connection(i) for i in range(4)}
    session2 = next(p["d"] for (c, _, p) in fake.gateway_ops(2) if p["d"]["shard"] == [2, 4])
    n = len(fake.connections)
    fake.close(4000, before[2])
    fake.wait_for(lambda: len(fake.gateway_ops(6)) >= 1 and fake.gateway_ops(6), 15,
                  "a RESUME")
    (conn, _, resume), = fake.gateway_ops(6)
    sid = [s for s, sh in fake.session_shard.items() if sh == [2, 4]]
    assert resume["d"]["session_id"] == sid[0]
    assert fake.connections[conn].path.startswith("/resume?")
    fake.wait_for(lambda: fake.shard_connection(2) == conn, 10, "shard 2 resumed")
    time.sleep(1.0)
    assert len(fake.connections) == n + 1          # only shard 2 reconnected
    assert len(fake.identifies()) == 4             # and nobody identified again
    for i in (0, 1, 3):
        assert fake.shard_connection(i) == before[i] and fake.connections[before[i]].live
    fake.dispatch("INTERACTION_CREATE", interaction(7200, "help", guild=guild_on(2, 4)))
    fake.wait_rest("POST", r"/interactions/7200/tok-7200/callback")
    res = status(cohort, ["shard 2/4          connected since", "1 reconnects"])
    assert "shard 2/4          connected" in res.stdout and "1 reconnects" in res.stdout, \
        res.stdout
    assert res.returncode == 0
    assert session2["shard"] == [2, 4]


def test_status_is_unhealthy_while_a_shard_is_down(cohort, run):
    fake = fake_with(shards=2, max_concurrency=2)
    run(fake)
    wait_identified(fake, 2)
    wait_ready(fake, [0, 1])
    res = status(cohort, ["shard 0/2", "shard 1/2"])
    assert res.returncode == 0, res.stdout
    # Shard 1 drops, and its gateway answers no more: it stays reconnecting.
    fake.hold_hello = True
    fake.close(4000, fake.shard_connection(1))
    res = status(cohort, ["shard 1/2          reconnecting"], timeout=25)
    assert "shard 1/2          reconnecting" in res.stdout, res.stdout
    assert "shard 0/2          connected" in res.stdout, res.stdout
    assert "discord: reconnecting" in res.stdout, res.stdout
    assert res.returncode == 1
    # The status row is adapter state, not part of an export: read from the SQLite file.
    # One process: one entry, under "cohort.status." and its holder id.
    (value,), = sqlite3.connect(cohort.db).execute(
        "SELECT value FROM adapter_state WHERE key LIKE 'cohort.status.%'").fetchall()
    js = json.loads(value)
    (discord,) = [a for a in js["adapters"] if a["name"] == "discord"]
    assert [(s["id"], s["count"], s["state"]) for s in discord["shards"]] == \
        [(0, 2, "connected"), (1, 2, "reconnecting")]


def test_shard_config_errors(cohort):
    (cohort.workdir / "cohort.toml").write_text(
        "[discord]\nshard_count = 4\nshards = [1, 4]\n")
    res = cohort.run("check-config", "-c", "cohort.toml")
    assert res.returncode == 2
    assert "cohort.toml:3: discord.shards: shard 4 is not below discord.shard_count = 4" \
        in res.stderr, res.stderr


def test_a_shard_beyond_the_recommendation_stops_with_the_fix(cohort):
    fake = fake_with(shards=2, max_concurrency=1)
    try:
        bot = Bot(cohort, fake, "shards = [0, 5]\n").start()
        rc = bot.wait_exit(15)
        assert rc == 2, bot.stderr()
        assert "discord.shards: shard 5 is not below the 2 shards GET /gateway/bot " \
            "recommends" in bot.stderr()
        assert fake.gateway_ops(2) == []
    finally:
        fake.stop()


@pytest.mark.parametrize("old_key", ["discord.session", "discord.sessions"])
def test_an_upgrade_resumes_the_single_saved_session_as_shard_0(cohort, run, old_key):
    fake = fake_with(shards=1, max_concurrency=1)
    bot = run(fake)
    wait_identified(fake, 1)
    wait_ready(fake, [0])
    fake.dispatch("INTERACTION_CREATE", interaction(7300, "help"))
    fake.wait_rest("POST", r"/interactions/7300/tok-7300/callback")
    bot.stop()
    # Rewrite what was saved the way an older cohort saved it: one "discord.session"
    # (adapter state, in the SQLite file an older cohort wrote).
    con = sqlite3.connect(cohort.db)
    (saved,) = con.execute(
        "SELECT value FROM adapter_state WHERE key = 'discord.session.0'").fetchone()
    one = json.loads(saved)
    assert one.pop("count") == 1
    con.execute("DELETE FROM adapter_state WHERE key LIKE 'discord.session%'")
    # Before shards: one "discord.session"; then every shard's in one "discord.sessions".
    value = one if old_key == "discord.session" else {"count": 1, "shards": {"0": one}}
    con.execute("INSERT OR REPLACE INTO adapter_state(key, value) VALUES (?, ?)",
                (old_key, json.dumps(value)))
    con.commit()
    con.close()
    again = Bot(cohort, fake).start()
    try:
        fake.wait_for(lambda: fake.gateway_ops(6), 15, "a RESUME")
        (_, _, resume), = fake.gateway_ops(6)
        assert resume["d"]["session_id"] == one["session_id"]
        assert len(fake.identifies()) == 1
    finally:
        again.stop()


def test_sharding_required_stops_with_the_fix(cohort):
    fake = fake_with(shards=1, max_concurrency=1)
    try:
        bot = Bot(cohort, fake).start()
        wait_identified(fake, 1)
        wait_ready(fake, [0])
        fake.close(4011, fake.shard_connection(0))
        assert bot.wait_exit(15) == 2, bot.stderr()
        assert "sharding required (close 4011)" in bot.stderr()
        assert "set discord.shard_count (or leave it 0 for the count GET /gateway/bot " \
            "recommends)" in bot.stderr()
    finally:
        fake.stop()


def test_all_shards_run_on_one_loop_thread(cohort, run):
    """One libwebsockets context and thread for every shard of a process (one OpenSSL
    client state): four shards take no more threads than one."""
    def threads_when_ready(shards):
        fake = fake_with(shards=shards, max_concurrency=shards)
        bot = run(fake)
        wait_identified(fake, shards)
        wait_ready(fake, range(shards))
        fake.wait_rest("PUT", r"/commands$", timeout=10)
        time.sleep(1.0)
        n = len(os.listdir(f"/proc/{bot.proc.pid}/task"))
        bot.stop()
        return n
    one, four = threads_when_ready(1), threads_when_ready(4)
    assert four == one, (one, four)


def test_slow_rest_calls_never_delay_any_shards_heartbeat(cohort, run):
    """The shards share one loop thread; REST stays off it: while every interaction
    callback takes 2 s to answer, both shards keep heartbeating on time."""
    fake = FakeDiscord(heartbeat_interval=400, shards=2, max_concurrency=2)
    fake.start()
    run(fake)
    wait_identified(fake, 2)
    wait_ready(fake, [0, 1])
    fake.fault("POST", r"/interactions/\d+/", delay=2.0, times=20)
    t0 = time.monotonic()
    for i in range(10):
        fake.dispatch("INTERACTION_CREATE",
                      interaction(7400 + i, "help", guild=guild_on(i % 2, 2, i + 1)))
    time.sleep(3.0)
    for shard in (0, 1):
        beats = [t for (_, t, _) in fake.gateway_ops(1, fake.shard_connection(shard))
                 if t >= t0 - 0.4]
        gaps = [b - a for a, b in zip(beats, beats[1:])]
        assert len(beats) >= 6 and max(gaps) < 0.9, (shard, gaps)
    fake.wait_rest("POST", r"/interactions/7409/", timeout=10)
