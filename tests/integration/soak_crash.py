"""Soak (run by `make soak`, not `make test`): kill -9 again and again during a burst of
commands on Discord and Matrix at once (issue 18), then count what members saw.

Every command that reached the store must be answered exactly once: lost (recorded, never
answered) and doubled (answered twice) must both be 0. A Matrix message is never lost at
all (the sync position is saved with the events it covers, so a killed batch comes again).
A Discord interaction that arrived at a process killed before it committed anything counts
apart ("never recorded"): Discord redelivers it only if the next process resumes the
session (see README, Reliability). SOAK_KILL_SECONDS sets the length of the burst."""
import itertools
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time

from fake_discord import TOKEN as DISCORD_TOKEN, FakeDiscord, interaction
from fake_matrix import BOT, TOKEN as MATRIX_TOKEN, FakeMatrix

SECONDS = float(os.environ.get("SOAK_KILL_SECONDS", "30"))
RATE = float(os.environ.get("SOAK_KILL_RATE", "30"))     # commands per second, both platforms
ROOM = "!soak:fake.test"
TOPICS = ["Kafka", "Docker", "Redis", "PostgreSQL", "GraphQL", "Kubernetes", "MongoDB",
          "RabbitMQ", "Nginx", "Linux"]


def test_kill_loop(cohort):
    binary = os.environ.get("SOAK_BIN", os.environ.get("COHORT_BIN"))
    dc, hs = FakeDiscord(heartbeat_interval=1000), FakeMatrix()
    dc.start()
    hs.start()
    members = [f"@s{i}:fake.test" for i in range(20)]
    hs.create_room(ROOM, members=members)
    (cohort.workdir / "cohort.toml").write_text(f"""
[log]
level = "warn"
[discord]
enabled = true
token = "{DISCORD_TOKEN}"
api_url = "{dc.api_url}"
[matrix]
enabled = true
homeserver = "{hs.url}"
user_id = "{BOT}"
access_token = "{MATRIX_TOKEN}"
""")
    log = open(cohort.workdir / "cohort.log", "w")

    def start():
        cohort._clock()
        return subprocess.Popen([binary, "run", "-c", "cohort.toml"], cwd=cohort.workdir,
                                env=cohort.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log)
    proc = start()
    stop = threading.Event()
    ix_sent, mx_sent = [], []
    try:
        dc.ready_connection()
        hs.wait_for(hs.synced_to_end, 15, "the first sync")
        rng = random.Random(18)
        ids = itertools.count(500000)

        def load():
            next_t = time.monotonic()
            k = 0
            while not stop.is_set():
                k += 1
                cmd = rng.choice(["done", "start", "skip", "done", "progress"])
                topic = rng.choice(TOPICS)
                if k % 2:
                    n = next(ids)
                    opts = [] if cmd == "progress" else [{"name": "topic", "value": topic}]
                    dc.dispatch_logged("INTERACTION_CREATE",
                                       interaction(n, cmd, opts, user=str(2000 + n % 41)))
                    ix_sent.append(n)
                else:
                    text = f"!{cmd}" + ("" if cmd == "progress" else f" {topic}")
                    mx_sent.append(hs.say(ROOM, rng.choice(members), text))
                next_t += 1.0 / RATE
                time.sleep(max(0.0, next_t - time.monotonic()))

        loader = threading.Thread(target=load)
        loader.start()
        kills = 0
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            time.sleep(rng.uniform(0.7, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
            proc = start()
        stop.set()
        loader.join()

        def ix_counts():
            out = {}
            for n in ix_sent:
                tok = f"tok-{n}"
                orig = dc.originals.get(tok)
                shown = 1 if orig and (orig.get("embeds") or orig.get("content")) else 0
                out[n] = shown + len(dc.followups.get(tok, []))
            return out

        def mx_counts():
            answers = {}
            for _, room, ev in hs.stream:
                if ev["sender"] == BOT:
                    to = ev["content"].get("m.relates_to", {}).get("m.in_reply_to", {}) \
                        .get("event_id")
                    if to:
                        answers[to] = answers.get(to, 0) + 1
            return {e: answers.get(e, 0) for e in mx_sent}

        def recorded():
            # The outbox straight from the SQLite file: no export carries it.
            con = sqlite3.connect(cohort.db, timeout=10)
            try:
                return {r[0] for r in con.execute(
                    "SELECT source_id FROM outbox WHERE source_id IS NOT NULL")}, \
                    con.execute("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL") \
                    .fetchone()[0]
            finally:
                con.close()

        # Settle: every Matrix message answered, nothing owed any more.
        deadline = time.monotonic() + 90
        while True:
            srcs, owed = recorded()
            with hs.cond:
                mx = mx_counts()
            if owed == 0 and all(mx.values()):
                break
            assert time.monotonic() < deadline, \
                f"not settled: {owed} answers owed, " \
                f"{sum(1 for v in mx.values() if not v)} Matrix commands unanswered"
            time.sleep(0.5)
        time.sleep(2)  # a double, if one were coming, has time to arrive
        srcs, owed = recorded()
        with dc.cond:
            ix = ix_counts()
        with hs.cond:
            mx = mx_counts()
        ix_recorded = {n for n in ix_sent if f"discord:{n}" in srcs}
        lost = [n for n in ix_recorded if ix[n] == 0] + [e for e, c in mx.items() if c == 0]
        doubled = [n for n, c in ix.items() if c > 1] + [e for e, c in mx.items() if c > 1]
        never = [n for n in ix_sent if n not in ix_recorded]
        answered_unrecorded = [n for n in never if ix[n]]
        print(f"\nsoak (kill -9): {kills} kills in {SECONDS:.0f} s; Discord "
              f"{len(ix_sent)} interactions ({len(ix_recorded)} recorded, {len(never)} never "
              f"reached the store); Matrix {len(mx_sent)} messages; lost {len(lost)}, "
              f"doubled {len(doubled)}")
        assert kills >= SECONDS / 3
        assert not lost, f"recorded but never answered: {lost[:10]}"
        assert not doubled, f"answered more than once: {doubled[:10]}"
        assert not answered_unrecorded, answered_unrecorded[:10]
        assert all(f"matrix:{e}" in srcs for e in mx_sent)  # Matrix loses nothing at all
    finally:
        stop.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        log.close()
        dc.stop()
        hs.stop()
