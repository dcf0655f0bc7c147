"""Soak (run by `make soak`, not `make test`): compressed-time chaos against the fake
Discord — disconnects every few seconds, 429 storms, 5xx bursts, missing heartbeat
ACKs — then every command answered exactly once and memory flat. SOAK_SECONDS sets
the length; under the sanitizers (SOAK_SANITIZED=1) the clean exit is the leak check
and the memory check is skipped (ASan's quarantine grows by design)."""
import itertools
import os
import random
import signal
import subprocess
import threading
import time


from fake_discord import TOKEN, FakeDiscord, interaction

SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
RATE = float(os.environ.get("SOAK_RATE", "40"))          # commands per second
TOPICS = ["Kafka", "Docker", "Redis", "PostgreSQL", "GraphQL", "Kubernetes", "MongoDB",
          "RabbitMQ", "Nginx", "Linux"]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_soak(cohort):
    binary = os.environ.get("SOAK_BIN", os.environ.get("COHORT_BIN"))
    fake = FakeDiscord(heartbeat_interval=1000)
    fake.start()
    (cohort.workdir / "cohort.toml").write_text(
        f'[discord]\nenabled = true\ntoken = "{TOKEN}"\napi_url = "{fake.api_url}"\n'
        '[log]\nlevel = "warn"\n')
    log = open(cohort.workdir / "cohort.log", "w")
    cohort._clock()
    proc = subprocess.Popen([binary, "run", "-c", "cohort.toml"], cwd=cohort.workdir,
                            env=cohort.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        fake.ready_connection()
        stop = threading.Event()
        sent = []
        ids = itertools.count(100000)
        rng = random.Random(7)

        def load():
            next_t = time.monotonic()
            while not stop.is_set():
                n = next(ids)
                kind = rng.random()
                user = str(1000 + n % 37)
                if kind < 0.6:
                    ix = interaction(n, rng.choice(["done", "start", "skip"]),
                                     [{"name": "topic", "value": rng.choice(TOPICS)}], user=user)
                elif kind < 0.8:
                    ix = interaction(n, rng.choice(["progress", "leaderboard", "next"]),
                                     user=user)
                else:
                    ix = interaction(n, "done", [{"name": "topic", "value": "k",
                                                  "focused": True}], type_=4, user=user)
                fake.dispatch_logged("INTERACTION_CREATE", ix)
                sent.append(str(n))
                next_t += 1.0 / RATE
                time.sleep(max(0.0, next_t - time.monotonic()))

        def chaos():
            faults = ["close", "op7", "zombie", "op9", "429", "5xx"]
            i = 0
            while not stop.wait(3.0):
                what = faults[i % len(faults)]
                i += 1
                if what == "close":
                    fake.close(rng.choice([4000, 4008, 4002]))
                elif what == "op7":
                    fake.send_op(7)
                elif what == "op9":
                    fake.send_op(9, True)
                elif what == "zombie":
                    fake.ack = False
                    stop.wait(2.5)
                    fake.ack = True
                elif what == "429":
                    fake.fault("POST", r"/interactions/", status=429, times=15,
                               body={"message": "slow down", "retry_after": 0.3,
                                     "global": rng.random() < 0.5})
                else:
                    fake.fault("POST", r"/interactions/", status=502, times=2)

        rss = []
        workers = [threading.Thread(target=load), threading.Thread(target=chaos)]
        for w in workers:
            w.start()
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            rss.append(rss_kb(proc.pid))
            time.sleep(0.5)
            assert proc.poll() is None, (cohort.workdir / "cohort.log").read_text()[-3000:]
        stop.set()
        for w in workers:
            w.join()
        fake.ack = True

        # Every command answered, exactly once.
        def answered():
            ok = {}
            for r in fake.rest("POST", r"/interactions/"):
                if r["status"] == 204:
                    n = r["path"].split("/")[4]
                    ok[n] = ok.get(n, 0) + 1
            return ok
        fake.wait_for(lambda: len(answered()) >= len(sent), 60,
                      f"answers to all {len(sent)} commands")
        counts = answered()
        assert set(counts) == set(sent)
        twice = {k: v for k, v in counts.items() if v != 1}
        assert not twice, f"answered more than once: {list(twice.items())[:10]}"
        # Memory is flat: the last third of the run is not above the middle third.
        third = len(rss) // 3
        middle, last = max(rss[third:2 * third]), max(rss[2 * third:])
        print(f"\nsoak: {len(sent)} commands in {SECONDS:.0f} s, "
              f"{len(fake.connections)} connections; RSS middle {middle} kB, last {last} kB")
        if os.environ.get("SOAK_SANITIZED") != "1":
            assert last <= middle * 1.10 + 512, (middle, last)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
        log.close()
        fake.stop()
    # A clean stop: under the sanitizers, exit 0 also means no leak was found.
    assert rc == 0, (cohort.workdir / "cohort.log").read_text()[-3000:]
