"""Discord HTTP interactions: POST /interactions signed by the fake Discord's key
(Ed25519, made here), and discord.gateway = false (no gateway connection at all)."""
import json
import os
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import Cohort, Running
from fake_discord import APP_ID, TOKEN, FakeDiscord, InteractionSender, interaction


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def fake():
    f = FakeDiscord(heartbeat_interval=1000)
    f.start()
    yield f
    f.stop()


@pytest.fixture
def discord_app():
    return InteractionSender()


class Bot(Running):
    """cohort run with Discord enabled against the fake, taking HTTP interactions."""

    def __init__(self, cohort, fake, app, extra=""):
        super().__init__(cohort)
        self.port = free_port()
        (cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "{TOKEN}"
api_url = "{fake.api_url}"
public_key = "{app.public_key}"
{extra}

[http]
listen = "127.0.0.1:{self.port}"
""")

    def start(self):
        super().start()
        deadline = time.monotonic() + 15
        while "listening on http://" not in self.stderr():
            assert self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, "the HTTP server did not start: " + \
                self.stderr()
            time.sleep(0.05)
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/interactions"


@pytest.fixture
def bot(cohort, fake, discord_app):
    made = []

    def make(extra="gateway = false", start=True):
        b = Bot(cohort, fake, discord_app, extra)
        made.append(b)
        return b.start() if start else b
    yield make
    for b in made:
        b.stop()


def events(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT member_id, topic_id, source_id FROM events").fetchall()
    finally:
        con.close()


def text_of(answer):
    """The text of a type 4 answer's message (its embed) or of an edit."""
    msg = answer.get("data", answer)
    e = msg["embeds"][0]
    return (e.get("title", "") + "\n" + e.get("description", "")).replace("\\", "")


def done(id_, topic, user="300"):
    return interaction(id_, "done", [{"name": "topic", "type": 3, "value": topic}], user=user)


def test_a_signed_command_is_answered_in_the_response_and_recorded_once(bot, discord_app,
                                                                         cohort, fake):
    b = bot()
    status, answer, took = discord_app.post(b.url, done(2001, "Kafka"))
    assert status == 200, answer
    assert answer["type"] == 4
    assert "finished Kafka" in text_of(answer)
    assert answer["data"]["allowed_mentions"] == {"parse": []}
    assert took < 2.5                      # inside Discord's 3 s
    assert events(cohort.db) == [("discord:300", "kafka", "discord:2001")]
    # The same signed request again (a replay): refused, nothing changes.
    status, answer, _ = discord_app.post(b.url, done(2001, "Kafka"))
    assert status == 400
    assert events(cohort.db) == [("discord:300", "kafka", "discord:2001")]
    # Nothing went through REST: the answer was the HTTP response itself.
    assert fake.rest("POST", r"/interactions/") == []
    assert fake.rest("PATCH") == []


def test_answers_are_the_gateways_answers(bot, discord_app, fake):
    b = bot("gateway = true")
    fake.ready_connection()
    fake.dispatch("INTERACTION_CREATE", interaction(2101, "progress"))
    over_gateway = fake.wait_rest("POST", r"/interactions/2101/tok-2101/callback")[0]["json"]
    status, over_http, _ = discord_app.post(b.url, interaction(2102, "progress"))
    assert status == 200
    assert over_http == over_gateway
    assert over_http["data"]["flags"] == 64    # personal: ephemeral on both


def test_autocomplete_is_answered_with_choices(bot, discord_app):
    b = bot()
    opts = [{"name": "topic", "type": 3, "value": "kaf", "focused": True}]
    status, answer, _ = discord_app.post(b.url, interaction(2201, "done", opts, type_=4))
    assert status == 200
    assert answer["type"] == 8
    assert answer["data"]["choices"][0]["value"] == "Kafka"
    assert len(answer["data"]["choices"]) <= 25


def test_ping_gets_pong(bot, discord_app):
    b = bot()
    ping = {"id": "2300", "application_id": APP_ID, "type": 1, "token": "tok-ping",
            "version": 1}
    status, answer, _ = discord_app.post(b.url, ping)
    assert (status, answer) == (200, {"type": 1})


def test_a_bad_signature_is_401_and_changes_nothing(bot, discord_app, cohort):
    b = bot()
    discord_app.post(b.url, done(2400, "Redis"))        # the store exists, one event
    before = events(cohort.db)
    body = json.dumps(done(2401, "Kafka")).encode()
    ts = str(int(time.time()))
    other = InteractionSender()                         # another application's key
    cases = [
        dict(signature=other.sign(ts, body)),
        dict(signature=discord_app.sign(ts, body + b" ")),   # signed a different body
        dict(signature=discord_app.sign(str(int(ts) - 1), body)),   # another timestamp
        dict(signature="00" * 64),
        dict(signature="zz" * 64),                      # not hex
        dict(signature=discord_app.sign(ts, body)[:-2]),   # too short
    ]
    for c in cases:
        status, answer, _ = discord_app.post(b.url, body, timestamp=ts, **c)
        assert status == 401, (c, answer)
    assert events(cohort.db) == before


def test_a_replay_with_an_old_timestamp_is_401(bot, discord_app, cohort, fake):
    b = bot()
    discord_app.post(b.url, done(2450, "Redis"))        # the store exists, one event
    before = events(cohort.db)
    now = int(time.time())
    # Signed by the application, but stamped over 5 minutes ago (a captured request) or
    # ahead: refused, nothing changes.
    for ts in (now - 400, now + 400):
        status, answer, _ = discord_app.post(b.url, done(2451, "Kafka"), timestamp=str(ts))
        assert status == 401, answer
        assert answer == {"error": "the request's timestamp is too far from now"}
    assert events(cohort.db) == before
    assert "X-Signature-Timestamp is -400 s from now" in b.stderr()
    # Within the window it goes through (the clocks of Discord and cohort may differ).
    status, answer, _ = discord_app.post(b.url, done(2451, "Kafka"), timestamp=str(now - 200))
    assert status == 200 and "finished Kafka" in text_of(answer)
    assert fake.rest("PATCH") == []


def test_missing_signature_headers_are_401(bot, discord_app, cohort):
    b = bot()
    discord_app.post(b.url, done(2500, "Redis"))
    before = events(cohort.db)
    for missing in ("X-Signature-Ed25519", "X-Signature-Timestamp"):
        status, _, _ = discord_app.post(b.url, done(2501, "Kafka"), headers={missing: None})
        assert status == 401, missing
    status, _, _ = discord_app.post(b.url, done(2501, "Kafka"),
                                    headers={"X-Signature-Ed25519": None,
                                             "X-Signature-Timestamp": None})
    assert status == 401
    assert events(cohort.db) == before
    # The same interaction, signed, still goes through: nothing above consumed it.
    status, answer, _ = discord_app.post(b.url, done(2501, "Kafka"))
    assert status == 200 and "finished Kafka" in text_of(answer)


def test_a_slow_command_is_deferred_then_edited(bot, discord_app, cohort, fake):
    b = bot()
    discord_app.post(b.url, done(2600, "Redis"))        # warm up: the store exists
    con = sqlite3.connect(cohort.db, timeout=1)
    con.execute("BEGIN IMMEDIATE")                      # hold the write lock: /done waits
    try:
        status, answer, took = discord_app.post(b.url, done(2601, "Kafka"))
        assert status == 200
        assert answer == {"type": 5}                    # deferred, public (not personal)
        assert took < 2.5                               # inside Discord's 3 s
        time.sleep(0.5)
        assert fake.rest("PATCH") == []                 # the answer waits for the store
    finally:
        con.rollback()
        con.close()
    edit = fake.wait_rest("PATCH", rf"/webhooks/{APP_ID}/tok-2601/messages/@original")[0]
    assert "finished Kafka" in text_of(edit["json"])
    assert edit["json"]["allowed_mentions"] == {"parse": []}
    assert fake.rest("POST", r"/interactions/") == []   # the deferral was the HTTP answer
    assert ("discord:300", "kafka", "discord:2601") in events(cohort.db)


def test_a_slow_command_is_deferred_before_the_gateway_runs(bot, discord_app, cohort, fake):
    # With the gateway on, but GET /gateway/bot failing (cohort retries it with backoff):
    # no gateway loop runs, and the HTTP interactions are deferred on time all the same.
    fake.fault("GET", r"/gateway/bot$", status=500, times=10000)
    b = bot("gateway = true")
    discord_app.post(b.url, done(3000, "Redis"))        # warm up: the store exists
    fake.wait_rest("GET", r"/gateway/bot")
    con = sqlite3.connect(cohort.db, timeout=1)
    con.execute("BEGIN IMMEDIATE")                      # hold the write lock: /done waits
    try:
        status, answer, took = discord_app.post(b.url, done(3001, "Kafka"))
        assert (status, answer) == (200, {"type": 5})
        assert took < 2.5                               # inside Discord's 3 s
    finally:
        con.rollback()
        con.close()
    edit = fake.wait_rest("PATCH", rf"/webhooks/{APP_ID}/tok-3001/messages/@original")[0]
    assert "finished Kafka" in text_of(edit["json"])
    assert fake.connections == []                       # no gateway loop ever ran


def wait_status(cohort, pred, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        res = cohort.run("status")
        if pred(res):
            return res
        assert time.monotonic() < deadline, res.stdout + res.stderr
        time.sleep(0.3)


def test_without_the_gateway_no_gateway_connection_is_made(fake, bot, discord_app, cohort):
    b = bot("gateway = false")
    status, answer, _ = discord_app.post(b.url, done(2700, "Kafka"))
    assert status == 200 and "finished Kafka" in text_of(answer)
    res = wait_status(cohort, lambda r: r.returncode == 0)
    assert "discord: connected" in res.stdout
    health = urllib.request.urlopen(f"http://127.0.0.1:{b.port}/healthz", timeout=10)
    assert health.status == 200
    # The slash commands are registered at start all the same (no READY: the id comes
    # from GET /applications/@me).
    fake.wait_rest("PUT", rf"/applications/{APP_ID}/commands")
    assert {c["name"] for c in fake.commands[None]} >= {"done", "progress", "help"}
    time.sleep(1.0)   # a gateway start would have asked for /gateway/bot by now
    assert fake.rest("GET", r"/gateway/bot") == []
    assert fake.connections == []
    assert "no gateway connection (discord.gateway = false)" in b.stderr()


def test_gateway_false_needs_the_public_key_and_a_listener(cohort, fake, discord_app):
    conf = f"""
[discord]
enabled = true
token = "{TOKEN}"
api_url = "{fake.api_url}"
gateway = false
"""
    (cohort.workdir / "cohort.toml").write_text(conf)
    res = cohort.run("run", "-c", "cohort.toml", timeout=10)
    assert res.returncode == 2
    assert "cohort.toml:6: discord.gateway: false (HTTP interactions only) needs " \
           "discord.public_key" in res.stderr
    (cohort.workdir / "cohort.toml").write_text(conf + f'public_key = "{discord_app.public_key}"\n')
    res = cohort.run("run", "-c", "cohort.toml", timeout=10)
    assert res.returncode == 2
    assert "cohort.toml:6: discord.gateway: false (HTTP interactions only) needs " \
           "http.listen" in res.stderr
    assert fake.rest("GET", r"/gateway/bot") == []


# ---- two processes behind one address, one PostgreSQL ----

PG = os.environ.get("COHORT_TEST_PG_URL", "")


class RoundRobin:
    """A TCP forwarder on one port handing each connection to the next of ports in turn:
    a load balancer in front of several cohort processes."""

    def __init__(self, ports):
        self.ports = ports
        self.counts = [0] * len(ports)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.turn = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            i = self.turn % len(self.ports)
            self.turn += 1
            self.counts[i] += 1
            backend = socket.create_connection(("127.0.0.1", self.ports[i]))
            for a, b in ((client, backend), (backend, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.sock.close()


@pytest.mark.skipif(not PG, reason="COHORT_TEST_PG_URL is not set (make test starts a "
                    "PostgreSQL: scripts/pg-test.sh)")
def test_two_processes_behind_one_address_share_postgresql(tmp_path, fake, discord_app):
    import subprocess
    schema = "ix_" + uuid.uuid4().hex[:12]
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", PG, "-c"]
    subprocess.run(psql + [f"CREATE SCHEMA {schema}"], check=True, capture_output=True)
    url = f"{PG}{'&' if '?' in PG else '?'}options=-csearch_path%3D{schema}"
    procs, lb = [], None
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            c = Cohort(tmp_path / name)
            c.env["COHORT_STORE_URL"] = url
            procs.append(Bot(c, fake, discord_app, "gateway = false").start())
        lb = RoundRobin([p.port for p in procs])
        front = f"http://127.0.0.1:{lb.port}/interactions"
        topics = ["Kafka", "Redis", "Docker", "PostgreSQL", "GraphQL", "Kubernetes"]
        for i, topic in enumerate(topics):
            status, answer, _ = discord_app.post(front,
                                                 done(2800 + i, topic, user=str(301 + i % 2)))
            assert status == 200, answer
            assert f"finished {topic}" in text_of(answer)
        assert lb.counts == [3, 3]                      # both processes answered
        # A PING (to process a), then 2800 again, which process a answered, to process b:
        # b never saw it, and refuses it all the same (the store has its id).
        assert discord_app.post(front, {"id": "2899", "type": 1, "token": "t"})[1] == \
            {"type": 1}
        status, answer, _ = discord_app.post(front, done(2800, "Kafka", user="301"))
        assert lb.counts == [4, 4]
        assert (status, answer) == (400, {"error": "this interaction was answered already"})
        # A command that is not progress: /digest-setup here in channel 555 (to a), then in
        # 556 (to a again, after a PING to b); the first replayed to b, which never saw
        # it, must not move the digest back to 555.
        admin = str(1 << 5)
        here = [{"type": 3, "name": "channel", "value": "here"}]
        first = interaction(2810, "digest-setup", here, channel="555", permissions=admin)
        status, answer, _ = discord_app.post(front, first)
        assert status == 200 and "posted here" in text_of(answer), answer
        assert discord_app.post(front, {"id": "2898", "type": 1, "token": "t"})[1] == \
            {"type": 1}
        second = interaction(2811, "digest-setup", here, channel="556", permissions=admin)
        status, answer, _ = discord_app.post(front, second)
        assert status == 200 and "posted here" in text_of(answer), answer
        assert lb.counts == [6, 5]
        status, answer, _ = discord_app.post(front, first)     # to b
        assert lb.counts == [6, 6]
        assert (status, answer) == (400, {"error": "this interaction was answered already"})
        got = subprocess.run(psql[:-1] + ["-At", "-c", f"SELECT digest_channel FROM "
                                          f"{schema}.group_settings WHERE group_id = "
                                          "'discord:100'"],
                             check=True, capture_output=True, text=True).stdout.strip()
        assert got == "556"
        # Each process reads the same records, each interaction once.
        exports = []
        for p in procs:
            res = p.cohort.run("export", "--format", "csv")
            assert res.returncode == 0, res.stderr
            exports.append(res.stdout)
        assert exports[0] == exports[1]
        rows = [ln for ln in exports[0].splitlines()[1:] if not ln.startswith("#")]
        assert len(rows) == len(topics), exports[0]
        for i, topic in enumerate(topics):
            assert sum(f",discord:{301 + i % 2}," in r and f",{topic}," in r for r in rows) == 1
        # Every answer went back in an HTTP response: nothing through REST.
        assert fake.rest("POST", r"/interactions/") == [] and fake.rest("PATCH") == []
        assert fake.rest("GET", r"/gateway/bot") == []
    finally:
        if lb:
            lb.close()
        for p in procs:
            p.stop()
        subprocess.run(psql + [f"DROP SCHEMA {schema} CASCADE"], capture_output=True)


def test_without_the_gateway_a_rejected_token_still_stops_with_the_fix(cohort, fake,
                                                                       discord_app):
    (cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "not-the-token"
api_url = "{fake.api_url}"
gateway = false
public_key = "{discord_app.public_key}"

[http]
listen = "127.0.0.1:{free_port()}"
""")
    res = cohort.run("run", "-c", "cohort.toml", timeout=20)
    assert res.returncode == 2, res.stderr
    assert "the bot token was rejected (401 on GET /applications/@me" in res.stderr
    assert fake.rest("GET", r"/gateway/bot") == []


def test_oversized_bodies_and_other_methods_are_refused(bot, discord_app, cohort):
    b = bot()
    discord_app.post(b.url, done(2900, "Redis"))
    before = events(cohort.db)
    big = done(2901, "Kafka")
    big["data"]["options"].append({"name": "note", "type": 3, "value": "x" * 70000})
    status, _, _ = discord_app.post(b.url, big)       # validly signed, but over 64 kB
    assert status == 413
    req = urllib.request.Request(b.url, method="GET")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("GET /interactions was answered")
    except urllib.error.HTTPError as e:
        assert e.code == 405 and e.headers["Allow"] == "POST"
    assert events(cohort.db) == before
