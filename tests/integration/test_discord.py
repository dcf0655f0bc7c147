"""The Discord adapter against a local fake Discord (REST + gateway)."""
import sqlite3
import time

import pytest

from conftest import Running
from fake_discord import APP_ID, TOKEN, FakeDiscord, interaction
from store_view import digests, events


@pytest.fixture
def fake():
    f = FakeDiscord(heartbeat_interval=1000)
    f.start()
    yield f
    # Nothing cohort sent on the gateway may exceed Discord's 4096-byte limit.
    for c in f.connections:
        assert all(n <= 4096 for n in c.sizes), c.sizes
    f.stop()


class Bot(Running):
    """cohort run with Discord enabled, pointed at the fake."""

    def __init__(self, cohort, fake, extra=""):
        super().__init__(cohort)
        (cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "{TOKEN}"
api_url = "{fake.api_url}"
{extra}
""")


@pytest.fixture
def bot(cohort, fake):
    made = []

    def make(extra="", start=True):
        b = Bot(cohort, fake, extra)
        made.append(b)
        return b.start() if start else b
    yield make
    for b in made:
        b.stop()


def callback(fake, ix_id, timeout=5.0):
    reqs = fake.wait_rest("POST", rf"/interactions/{ix_id}/tok-{ix_id}/callback", 1, timeout)
    return reqs[0]


def embed_text(msg):
    e = msg["embeds"][0]
    return (e.get("title", "") + "\n" + e.get("description", "")).replace("\\", "")


def done_events(cohort):
    return [(e["member"], e["topic_id"], e["source_id"]) for e in events(cohort)]


def test_identify_payload_and_heartbeats(fake, bot):
    bot()
    fake.ready_connection()
    (_, _, ident), = fake.gateway_ops(2)
    d = ident["d"]
    assert d["token"] == TOKEN
    assert d["intents"] == 0                  # slash commands need no intent
    assert set(d["properties"]) == {"os", "browser", "device"}
    # First beat within interval x random[0,1), then one per interval with the last sequence.
    beats = fake.wait_op(1, count=4, timeout=8)
    conn = fake.connections[0]
    times = [t for (_, t, _) in beats]
    first = times[0] - conn.hello_at
    assert 0 <= first < 1.0 + 0.15
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.85 < g < 1.25 for g in gaps), gaps
    assert beats[-1][2]["d"] == 1             # READY was sequence 1
    # The registered commands: every command, autocomplete on topic, admin-only setup.
    put = fake.wait_rest("PUT", rf"/applications/{APP_ID}/commands")[0]
    names = {c["name"]: c for c in put["json"]}
    assert {"done", "start", "skip", "reset", "undo", "progress", "leaderboard", "topics",
            "next", "who", "digest", "help", "digest-setup"} <= set(names)
    topic = names["done"]["options"][0]
    assert topic["name"] == "topic" and topic["autocomplete"] is True
    assert names["digest-setup"]["default_member_permissions"] == "32"
    assert put["headers"]["User-Agent"].startswith("DiscordBot (")


def test_first_heartbeat_is_jittered(fake, bot):
    bot()
    firsts = []
    for i in range(4):
        fake.wait_for(lambda: len(fake.connections) > i and
                      fake.gateway_ops(1, conn=i), 10, f"a heartbeat on connection {i}")
        c = fake.connections[i]
        firsts.append(fake.gateway_ops(1, conn=i)[0][1] - c.hello_at)
        fake.send_op(7)  # reconnect: a new HELLO, a new first beat
        fake.wait_for(lambda: len(fake.connections) > i + 1, 10, "a reconnect")
    assert all(0 <= f < 1.15 for f in firsts), firsts
    assert max(firsts) - min(firsts) > 0.03, firsts  # not a fixed delay


def test_done_is_answered_within_a_second(fake, bot, cohort):
    bot()
    fake.ready_connection()
    opts = [{"type": 3, "name": "topic", "value": "Kafka"},
            {"type": 3, "name": "note", "value": "built a consumer @everyone"}]
    sent = time.monotonic()
    fake.dispatch("INTERACTION_CREATE", interaction(1001, "done", opts, username="ana"))
    cb = callback(fake, 1001)
    assert cb["t"] - sent < 1.0
    body = cb["json"]
    assert body["type"] == 4
    assert body["data"]["allowed_mentions"] == {"parse": []}
    text = embed_text(body["data"])
    assert "ana finished Kafka" in text and "1/84" in text
    assert "flags" not in body["data"]         # the group sees it
    # Personal answers are ephemeral.
    fake.dispatch("INTERACTION_CREATE", interaction(1002, "progress"))
    assert callback(fake, 1002)["json"]["data"]["flags"] == 64
    assert done_events(cohort) == [("discord:300", "kafka", "discord:1001")]


def test_autocomplete_ranks_topics(fake, bot):
    bot()
    fake.ready_connection()
    opts = [{"type": 3, "name": "topic", "value": "kaf", "focused": True}]
    fake.dispatch("INTERACTION_CREATE", interaction(1100, "done", opts, type_=4))
    body = callback(fake, 1100)["json"]
    assert body["type"] == 8
    choices = body["data"]["choices"]
    assert 1 <= len(choices) <= 25
    assert choices[0]["value"] == "Kafka"
    assert "Message Brokers" in choices[0]["name"]
    opts[0]["value"] = ""
    fake.dispatch("INTERACTION_CREATE", interaction(1101, "done", opts, type_=4))
    assert len(callback(fake, 1101)["json"]["data"]["choices"]) == 25
    opts[0]["value"] = "postgers"   # a typo still finds it
    fake.dispatch("INTERACTION_CREATE", interaction(1102, "done", opts, type_=4))
    assert callback(fake, 1102)["json"]["data"]["choices"][0]["value"] == "PostgreSQL"


def test_a_slow_answer_is_deferred_then_edited(fake, bot, cohort):
    bot()
    fake.ready_connection()
    # Warm up: the store exists and a first command went through.
    fake.dispatch("INTERACTION_CREATE", interaction(1200, "done",
                                                    [{"name": "topic", "value": "Redis"}]))
    callback(fake, 1200)
    # About SQLite's write lock itself: the test holds it in the file.
    con = sqlite3.connect(cohort.db, timeout=1)
    con.execute("BEGIN IMMEDIATE")             # hold the write lock: /done has to wait
    try:
        sent = time.monotonic()
        fake.dispatch("INTERACTION_CREATE", interaction(1201, "done",
                                                        [{"name": "topic", "value": "Kafka"}]))
        cb = callback(fake, 1201, timeout=4)
        assert cb["json"]["type"] == 5
        assert cb["t"] - sent < 2.5            # inside Discord's 3 s
        time.sleep(0.5)
    finally:
        con.rollback()
        con.close()
    edit = fake.wait_rest("PATCH", rf"/webhooks/{APP_ID}/tok-1201/messages/@original")[0]
    assert "finished Kafka" in embed_text(edit["json"])
    assert edit["json"]["allowed_mentions"] == {"parse": []}
    assert len(fake.rest("POST", r"/interactions/1201/")) == 1


def resumed_after(fake, conn_index):
    fake.wait_for(lambda: len(fake.connections) > conn_index and
                  fake.gateway_ops(6, conn=conn_index), 10, "a RESUME")
    (_, _, p), = fake.gateway_ops(6, conn=conn_index)
    return p["d"]


def test_resume_after_close_4000(fake, bot):
    bot()
    fake.ready_connection()
    fake.dispatch("INTERACTION_CREATE", interaction(1300, "next"))
    callback(fake, 1300)
    fake.close(4000)
    d = resumed_after(fake, 1)
    assert d["session_id"] == "session-1" and d["seq"] == 2 and d["token"] == TOKEN
    assert fake.connections[1].path.startswith("/resume?v=10&encoding=json")
    assert len(fake.gateway_ops(2)) == 1       # no new IDENTIFY


def test_resume_after_missing_acks(fake, bot):
    bot()
    fake.ready_connection()
    fake.wait_op(1)
    fake.ack = False
    fake.wait_for(lambda: fake.connections[0].closed_by_client is not None, 5,
                  "cohort to drop the dead connection")
    assert fake.connections[0].closed_by_client not in (1000, 1001)  # keeps the session
    fake.ack = True
    d = resumed_after(fake, 1)
    assert d["session_id"] == "session-1"


def test_resume_after_op7(fake, bot):
    bot()
    fake.ready_connection()
    fake.send_op(7)
    assert resumed_after(fake, 1)["session_id"] == "session-1"


def test_new_identify_after_op9_false(fake, bot):
    bot()
    fake.ready_connection()
    fake.send_op(9, False)
    fake.wait_op(2, count=2, timeout=12)
    assert not fake.gateway_ops(6)
    identifies = fake.gateway_ops(2)
    assert identifies[1][1] - identifies[0][1] >= 1.0   # op 9 asks for a 1-5 s wait


@pytest.mark.parametrize("code,words", [(4004, "token"), (4014, "intent")])
def test_fatal_close_codes_exit_with_a_message(fake, bot, code, words):
    b = bot()
    fake.ready_connection()
    fake.close(code)
    rc = b.wait_exit(10)
    assert rc == 2
    err = b.stderr()
    assert f"close {code}" in err and words in err
    assert TOKEN not in err


def test_bad_token_is_refused_before_connecting(fake, cohort):
    b = Bot(cohort, fake)
    (cohort.workdir / "cohort.toml").write_text(
        (cohort.workdir / "cohort.toml").read_text().replace(TOKEN, "wrong-token"))
    b.start()
    assert b.wait_exit(10) == 2
    assert "401" in b.stderr() and "token" in b.stderr()
    assert "wrong-token" not in b.stderr()
    assert not fake.connections


def test_replayed_interaction_after_resume_is_counted_once(fake, bot, cohort):
    bot()
    fake.ready_connection()
    fake.dispatch("INTERACTION_CREATE", interaction(1400, "done",
                                                    [{"name": "topic", "value": "Docker"}]))
    callback(fake, 1400)
    fake.replay_on_resume = 1                  # the gateway re-sends the interaction
    fake.close(4000)
    resumed_after(fake, 1)
    fake.wait_for(lambda: any(isinstance(p, dict) for _, p in fake.connections[1].received), 5)
    time.sleep(0.5)
    assert len(fake.rest("POST", r"/interactions/1400/")) == 1
    assert done_events(cohort) == [("discord:300", "docker", "discord:1400")]


def test_429_retry_after_per_route(fake, bot):
    bot()
    fake.ready_connection()
    fake.fault("POST", r"/interactions/1500/", status=429,
               body={"message": "You are being rate limited.", "retry_after": 0.6,
                     "global": False})
    fake.dispatch("INTERACTION_CREATE", interaction(1500, "help"))
    first, second = fake.wait_rest("POST", r"/interactions/1500/", count=2, timeout=5)
    assert first["status"] == 429 and second["status"] == 204
    assert second["t"] - first["t"] >= 0.6


def test_429_global_holds_every_route(fake, bot):
    bot()
    fake.ready_connection()
    fake.fault("POST", r"/interactions/1600/", status=429,
               body={"message": "global", "retry_after": 0.8, "global": True}, delay=0.0)
    fake.dispatch("INTERACTION_CREATE", interaction(1600, "help"))
    limited = fake.wait_rest("POST", r"/interactions/1600/")[0]
    fake.dispatch("INTERACTION_CREATE", interaction(1601, "help"))
    other = callback(fake, 1601)
    assert other["t"] - limited["t"] >= 0.8    # another route waited for the global limit
    assert fake.wait_rest("POST", r"/interactions/1600/", count=2)[1]["status"] == 204


def test_5xx_is_retried_then_given_up(fake, bot):
    b = bot()
    fake.ready_connection()
    fake.fault("POST", r"/interactions/1700/", status=502, times=2)
    fake.dispatch("INTERACTION_CREATE", interaction(1700, "help"))
    reqs = fake.wait_rest("POST", r"/interactions/1700/", count=3, timeout=8)
    assert [r["status"] for r in reqs] == [502, 502, 204]
    fake.fault("POST", r"/interactions/1701/", status=500, times=100)
    fake.dispatch("INTERACTION_CREATE", interaction(1701, "help"))
    fake.wait_rest("POST", r"/interactions/1701/", count=4, timeout=15)
    fake.wait_for(lambda: "giving up" in b.stderr(), 5, "the give-up log line")
    time.sleep(0.5)
    assert len(fake.rest("POST", r"/interactions/1701/")) == 4


def test_malformed_and_oversized_frames_are_survived(fake, bot):
    b = bot()
    fake.ready_connection()
    fake.send_raw("this is not json")
    fake.send_raw('{"op": "zero"}')
    fake.send_raw('{"op": 0, "s": 2, "t": "INTERACTION_CREATE", "d": {"id": "x"}}')
    fake.send_raw('{"op": 0, "s": 3, "t": "INTERACTION_CREATE", "d": null}')
    fake.send_raw('[1, 2, 3]')
    fake.send_raw('{"op": 0, "t": "X", "d": "' + "a" * (9 * 1024 * 1024) + '"}')
    fake.dispatch("INTERACTION_CREATE", interaction(1800, "done",
                                                    [{"name": "topic", "value": "Kafka"}]))
    assert "finished Kafka" in embed_text(callback(fake, 1800)["json"]["data"])
    assert len(fake.connections) == 1          # the same connection survived
    assert "malformed" in b.stderr() and "over" in b.stderr()


def test_a_quick_restart_resumes_the_session(fake, bot):
    b = bot()
    fake.ready_connection()
    fake.dispatch("INTERACTION_CREATE", interaction(1900, "help"))
    callback(fake, 1900)
    b.stop()
    bot()
    d = resumed_after(fake, 1)
    assert d["session_id"] == "session-1" and d["seq"] == 2


def test_digest_is_posted_to_its_channel_at_its_time(fake, bot, cohort):
    # 18:00 UTC arrives in about 4.5 s: the /done and the channel must come before it (a
    # group with nothing logged by digest time, or a channel set after it, waits a day).
    cohort.at("2026-11-25T17:58:30Z", rate=20)
    bot()
    fake.ready_connection()
    fake.dispatch("INTERACTION_CREATE", interaction(2000, "done",
                                                    [{"name": "topic", "value": "Kafka"}]))
    callback(fake, 2000)
    opts = [{"type": 3, "name": "channel", "value": "here"}]
    fake.dispatch("INTERACTION_CREATE", interaction(2001, "digest-setup", opts, channel="555",
                                                    permissions=str(1 << 5)))
    assert "posted here" in embed_text(callback(fake, 2001)["json"]["data"])
    post = fake.wait_rest("POST", r"/channels/555/messages", timeout=10)[0]
    body = post["json"]
    assert body["nonce"].startswith("cd-") and body["enforce_nonce"] is True
    assert body["allowed_mentions"] == {"parse": []}
    assert "Kafka" in embed_text(body)
    time.sleep(1)
    assert len(fake.rest("POST", r"/channels/555/messages")) == 1


def test_digest_setup_says_which_channel_permissions_the_bot_lacks(fake, bot):
    bot()
    fake.ready_connection()
    here = [{"type": 3, "name": "channel", "value": "here"}]
    admin = str(1 << 5)
    view, send, embed, history = 1 << 10, 1 << 11, 1 << 14, 1 << 16
    in_thread = 1 << 38
    cases = [
        # (app_permissions, channel type, what the answer must say, must not say)
        (view | send | embed | history, 0, None, "lacks"),
        (view | send, 0, "it lacks Embed Links.", "Send Messages"),
        (view | send | embed | history, 11, "it lacks Send Messages in Threads.", "Embed"),
        (view | embed | in_thread | history, 11, None, "lacks"),
        (0, 0, "it lacks View Channel, Send Messages, Embed Links.", None),
        (view | send | embed, 0, "Optional: with Read Message History", "lacks"),
    ]
    for n, (perms, ctype, said, unsaid) in enumerate(cases):
        fake.dispatch("INTERACTION_CREATE", interaction(
            2200 + n, "digest-setup", here, permissions=admin, app_permissions=str(perms),
            channel_type=ctype))
        text = embed_text(callback(fake, 2200 + n)["json"]["data"])
        assert "posted here" in text, text
        if said:
            assert said in text, (n, text)
        if unsaid:
            assert unsaid not in text, (n, text)


def test_digest_setup_is_for_admins(fake, bot):
    bot()
    fake.ready_connection()
    opts = [{"type": 3, "name": "channel", "value": "here"}]
    fake.dispatch("INTERACTION_CREATE", interaction(2100, "digest-setup", opts))
    body = callback(fake, 2100)["json"]
    assert "Manage Server" in embed_text(body["data"]) or "admin" in embed_text(body["data"])
    assert body["data"]["flags"] == 64


def test_register_commands_cli(fake, cohort):
    Bot(cohort, fake)
    res = cohort.run("register-commands", "-c", "cohort.toml", "--guild", "4242")
    assert res.returncode == 0, res.stderr
    put = fake.wait_rest("PUT", rf"/applications/{APP_ID}/guilds/4242/commands")[0]
    assert len(put["json"]) == 23
    assert fake.rest("PUT") == [put]          # --guild touches nothing else
    res = cohort.run("register-commands", "-c", "cohort.toml", "--guild", "abc")
    assert res.returncode == 2


def test_register_commands_cli_empties_the_scope_not_in_use(fake, cohort):
    fake.guilds = ["11", "22", "33"]
    fake.commands = {None: [{"name": "done"}], "22": [{"name": "done"}]}  # an older setup
    Bot(cohort, fake, 'guild_ids = ["11"]')
    res = cohort.run("register-commands", "-c", "cohort.toml")
    assert res.returncode == 0, res.stderr
    assert len(fake.commands["11"]) == 23
    assert fake.commands[None] == [] and fake.commands["22"] == []
    assert "removed 1 commands globally" in res.stdout
    assert "removed 1 commands from server 22" in res.stdout
    assert not fake.rest("PUT", r"/guilds/33/")   # nothing there: nothing written
    # Back to global commands: the server's set goes.
    Bot(cohort, fake)
    res = cohort.run("register-commands", "-c", "cohort.toml")
    assert res.returncode == 0, res.stderr
    assert len(fake.commands[None]) == 23 and fake.commands["11"] == []
    assert "globally (they show at once)" in res.stdout
    # --clear removes them everywhere.
    res = cohort.run("register-commands", "-c", "cohort.toml", "--clear")
    assert res.returncode == 0, res.stderr
    assert all(v == [] for v in fake.commands.values())
    assert "the slash commands are removed" in res.stdout


def test_switching_scope_at_start_removes_the_old_commands(fake, bot, cohort):
    fake.commands = {None: [{"name": "done"}]}
    b = bot('guild_ids = ["11", "22"]')
    fake.ready_connection()
    fake.wait_for(lambda: fake.commands.get(None) == [] and len(fake.commands.get("22", [])) == 23,
                  5, "guild commands and an empty global set")
    b.stop()
    b = bot('guild_ids = ["22"]')                 # server 11 dropped from the list
    fake.wait_for(lambda: fake.commands.get("11") == [], 10, "server 11 emptied")
    b.stop()
    b = bot()                                     # global again
    fake.wait_for(lambda: len(fake.commands.get(None, [])) == 23 and fake.commands["22"] == [],
                  10, "global commands and server 22 emptied")
    b.stop()
    assert len(fake.rest("PUT", r"/guilds/11/commands")) == 2   # set once, emptied once
    assert "removed the slash commands of server 22" in b.stderr()


def test_prefix_text_commands_need_the_intent_and_answer_in_the_channel(fake, bot, cohort):
    bot('prefix = "!"')
    fake.ready_connection()
    (_, _, ident), = fake.gateway_ops(2)
    assert ident["d"]["intents"] == (1 << 9) | (1 << 15)   # GUILD_MESSAGES, MESSAGE_CONTENT
    msg = {"id": "7001", "channel_id": "200", "guild_id": "100", "content": "!done Kafka",
           "author": {"id": "300", "username": "ana"}, "member": {"nick": "Ana"}}
    fake.dispatch("MESSAGE_CREATE", msg)
    post = fake.wait_rest("POST", r"/channels/200/messages")[0]["json"]
    assert "Ana finished Kafka" in embed_text(post)
    assert post["message_reference"]["message_id"] == "7001"
    assert post["allowed_mentions"] == {"parse": [], "replied_user": False}
    # Bots (itself included) and plain chat are not commands.
    fake.dispatch("MESSAGE_CREATE", dict(msg, id="7002", author={"id": "9", "bot": True}))
    fake.dispatch("MESSAGE_CREATE", dict(msg, id="7003", content="done Kafka"))
    fake.dispatch("MESSAGE_CREATE", dict(msg))               # the same message again
    time.sleep(0.5)
    assert len(fake.rest("POST", r"/channels/200/messages")) == 1
    assert done_events(cohort) == [("discord:300", "kafka", "discord:msg:7001")]


def digest_sent(cohort):
    return digests(cohort)


def first_digest_attempt_unanswered(fake, bot, cohort):
    """Runs cohort over 18:00 with every answer to the digest post lost; stops it."""
    cohort.at("2026-11-25T17:59:57Z")
    b = bot()
    fake.ready_connection()
    fake.dispatch("INTERACTION_CREATE", interaction(2299, "done",
                                                    [{"name": "topic", "value": "Kafka"}]))
    callback(fake, 2299)
    opts = [{"type": 3, "name": "channel", "value": "here"}]
    fake.dispatch("INTERACTION_CREATE", interaction(2300, "digest-setup", opts, channel="555",
                                                    permissions=str(1 << 5)))
    callback(fake, 2300)
    fake.wait_rest("POST", r"/channels/555/messages", count=4, timeout=20)  # all retries
    time.sleep(0.3)
    b.stop()
    assert digest_sent(cohort) == [("2026-11-25", 0)]   # its outcome is unknown


def test_a_resend_after_the_nonce_window_finds_the_earlier_post(fake, bot, cohort):
    fake.lose_answers = 4          # posted once (the nonce), every answer lost
    first_digest_attempt_unanswered(fake, bot, cohort)
    assert len(fake.channels["555"]) == 1
    footer = fake.channels["555"][0]["embeds"][0]["footer"]["text"]
    assert footer.startswith("cohort digest cd-")
    fake.messages.clear()          # Discord forgot the nonce minutes ago
    cohort.at("2026-11-25T20:00:00Z")                 # two hours later, the same day
    posts = len(fake.rest("POST", r"/channels/555/messages"))
    b = bot()
    fake.wait_rest("GET", r"/channels/555/messages", timeout=10)
    fake.wait_for(lambda: digest_sent(cohort) == [("2026-11-25", 1)], 10, "digest recorded")
    time.sleep(0.5)
    assert len(fake.rest("POST", r"/channels/555/messages")) == posts   # nothing re-sent
    assert len(fake.channels["555"]) == 1
    assert fake.rest("GET", r"/channels/555/messages")[0]["query"]["limit"] == "50"
    assert "was posted already" in b.stderr()


def test_a_resend_that_finds_nothing_posts_once(fake, bot, cohort):
    fake.fault("POST", r"/channels/555/messages", 502, times=4)   # never posted
    first_digest_attempt_unanswered(fake, bot, cohort)
    assert fake.channels.get("555", []) == []
    cohort.at("2026-11-25T20:00:00Z")
    bot()
    fake.wait_rest("GET", r"/channels/555/messages", timeout=10)
    fake.wait_for(lambda: digest_sent(cohort) == [("2026-11-25", 1)], 10, "digest recorded")
    assert len(fake.channels["555"]) == 1


def test_without_read_message_history_the_resend_posts_and_says_why(fake, bot, cohort):
    fake.fault("POST", r"/channels/555/messages", 502, times=4)
    first_digest_attempt_unanswered(fake, bot, cohort)
    fake.fault("GET", r"/channels/555/messages", 403, {"message": "Missing Access", "code": 50001})
    cohort.at("2026-11-25T20:00:00Z")
    b = bot()
    fake.wait_for(lambda: digest_sent(cohort) == [("2026-11-25", 1)], 10, "digest recorded")
    assert len(fake.channels["555"]) == 1
    assert "without Read Message History" in b.stderr()


def test_digest_setup_takes_a_time_zone_alone(fake, bot, cohort):
    bot()
    fake.ready_connection()
    opts = [{"type": 3, "name": "timezone", "value": "europe/berlin"}]
    fake.dispatch("INTERACTION_CREATE", interaction(2400, "digest-setup", opts,
                                                    permissions=str(1 << 5)))
    text = embed_text(callback(fake, 2400)["json"]["data"])
    assert "Europe/Berlin" in text and "Give the time too" not in text, text
    res = cohort.run("export", "--format", "json")
    assert '"Europe/Berlin"' in res.stdout, res.stdout + res.stderr
