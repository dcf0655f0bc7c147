"""The gateway benchmark (make bench): build/cohort against the fake Discord, a load
generator sending INTERACTION_CREATE at a fixed rate and timing each callback.
Prints latency, throughput, memory and CPU per 1,000 commands against DESIGN §9."""
import os
import pathlib
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from fake_discord import TOKEN, FakeDiscord, interaction  # noqa: E402

BIN = os.environ.get("COHORT_BIN", str(ROOT / "build" / "cohort"))
RATE = float(os.environ.get("BENCH_RATE", "1000"))
COUNT = int(os.environ.get("BENCH_COMMANDS", "10000"))
TOPICS = ["Kafka", "Docker", "Redis", "PostgreSQL", "GraphQL", "Kubernetes", "MongoDB",
          "RabbitMQ", "Nginx", "Linux", "Git", "JSON APIs", "REST", "gRPC", "JWT", "OAuth",
          "Elasticsearch", "Memcached", "Cassandra", "Neo4j"]


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def shards_memory(shards):
    """Resident memory and threads of build/cohort once it runs `shards` shards, READY."""
    fake = FakeDiscord(heartbeat_interval=41250, shards=shards, max_concurrency=shards)
    fake.start()
    work = tempfile.mkdtemp(prefix="cohort-bench-")
    pathlib.Path(work, "cohort.toml").write_text(
        f'[discord]\nenabled = true\ntoken = "{TOKEN}"\napi_url = "{fake.api_url}"\n'
        '[log]\nlevel = "warn"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORT_")}
    proc = subprocess.Popen([BIN, "run", "-c", "cohort.toml"], cwd=work, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(pathlib.Path(work, "cohort.log"), "w"))
    try:
        fake.wait_for(lambda: len(fake.gateway_ops(2)) >= shards, 30, f"{shards} IDENTIFYs")
        fake.wait_rest("PUT", r"/commands$", timeout=10)
        time.sleep(1.5)
        return proc_status(proc.pid, "VmRSS"), proc_status(proc.pid, "Threads")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        fake.stop()


def main():
    fake = FakeDiscord(heartbeat_interval=41250)
    fake.start()
    work = tempfile.mkdtemp(prefix="cohort-bench-")
    pathlib.Path(work, "cohort.toml").write_text(
        f'[discord]\nenabled = true\ntoken = "{TOKEN}"\napi_url = "{fake.api_url}"\n'
        '[log]\nlevel = "warn"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORT_")}
    proc = subprocess.Popen([BIN, "run", "-c", "cohort.toml"], cwd=work, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(pathlib.Path(work, "cohort.log"), "w"))
    try:
        fake.ready_connection()
        fake.wait_rest("PUT", r"/commands$", timeout=10)
        time.sleep(1.0)
        rss_ready = proc_status(proc.pid, "VmRSS")

        def payloads(first, n):
            return [interaction(first + i, "done",
                                [{"name": "topic", "value": TOPICS[(first + i) % len(TOPICS)]}],
                                user=str(10000 + (first + i) // len(TOPICS) % 500))
                    for i in range(n)]

        # Warm up (caches, prepared statements), then the measured run.
        warm = fake.blast(payloads(1, 500), min(RATE, 500))
        fake.wait_for(lambda: len(fake.rest("POST", r"/interactions/")) >= len(warm), 60)
        cpu0 = cpu_seconds(proc.pid)
        sent = fake.blast(payloads(100000, COUNT), RATE)
        done = lambda: [r for r in fake.rest("POST", r"/interactions/")
                        if r["path"].split("/")[4] in sent]
        fake.wait_for(lambda: len(done()) >= COUNT, 120, "every callback")
        cpu = cpu_seconds(proc.pid) - cpu0
        rss_after = proc_status(proc.pid, "VmRSS")
        hwm = proc_status(proc.pid, "VmHWM")
        got = {r["path"].split("/")[4]: r["t"] for r in done()}
        lat = [(got[i] - sent[i]) * 1000 for i in sent]
        span = max(got.values()) - min(sent.values())
        deferred = sum(1 for r in done() if r["json"] and r["json"].get("type") == 5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        fake.stop()

    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                      if l.startswith("model name")), platform.processor())
    print(f"machine: {os.cpu_count()} cores, {cpu_model}, Linux {platform.release()}")
    print(f"load: {COUNT} /done interactions at {RATE:.0f}/s through the fake gateway "
          f"(Python aiohttp, same machine; its own overhead is in the numbers)")
    rows = [
        ("INTERACTION_CREATE → callback, p50 / p99 / max",
         f"{statistics.median(lat):.2f} / {pct(lat, 99):.2f} / {max(lat):.2f} ms", "p99 < 5 ms",
         pct(lat, 99) < 5),
        ("throughput", f"{COUNT / span:.0f} commands/s", f"{RATE:.0f}/s offered", None),
        ("resident memory after READY", f"{rss_ready / 1024:.1f} MB", "< 8 MB", rss_ready < 8192),
        (f"resident memory after {COUNT} commands (peak)",
         f"{rss_after / 1024:.1f} MB ({hwm / 1024:.1f} MB)", "< 12 MB", rss_after < 12288),
        ("CPU per 1,000 commands", f"{cpu / COUNT * 1000:.3f} s", "< 0.15 s",
         cpu / COUNT * 1000 < 0.15),
        ("answers deferred (type 5)", f"{deferred}", "—", None),
    ]
    for n in (1, 4):  # every shard of a process on one libwebsockets context and thread
        rss, threads = shards_memory(n)
        rows.append((f"resident memory after READY, {n} shard{'s' if n > 1 else ''}",
                     f"{rss / 1024:.1f} MB, {threads} threads", "—", None))
    print(f"\n| what | measured | budget |\n|---|---|---|")
    for what, got_s, budget, ok in rows:
        verdict = "" if ok is None else (" — **met**" if ok else " — **not met**")
        print(f"| {what} | {got_s} | {budget}{verdict} |")


if __name__ == "__main__":
    main()
