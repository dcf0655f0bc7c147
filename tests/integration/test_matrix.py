"""The Matrix adapter against a local fake homeserver."""
import json
import sqlite3
import time

import pytest

from conftest import Running
from fake_matrix import BOT, PASSWORD, TOKEN, FakeMatrix
from store_view import digests, events

ROOM = "!study:fake.test"
ANA, BEN, ADMIN = "@ana:fake.test", "@ben:fake.test", "@boss:fake.test"


@pytest.fixture
def hs():
    f = FakeMatrix()
    f.start()
    yield f
    f.stop()


class Bot(Running):
    last_start = 0.0   # monotonic time of the latest start: idle() waits for that process

    def __init__(self, cohort, toml):
        super().__init__(cohort)
        (cohort.workdir / "cohort.toml").write_text(toml)

    def start(self):
        Bot.last_start = time.monotonic()
        return super().start()


def matrix_toml(hs, extra="", token=TOKEN):
    return f"""
[matrix]
enabled = true
homeserver = "{hs.url}"
user_id = "{BOT}"
access_token = "{token}"
{extra}
"""


@pytest.fixture
def bot(cohort, hs):
    made = []

    def make(extra="", toml=None):
        b = Bot(cohort, toml or matrix_toml(hs, extra)).start()
        made.append(b)
        return b
    yield make
    for b in made:
        b.stop()


def idle(hs, timeout=10):
    """Waits until the bot started last has synced everything there is and its replies went
    out. A sync by a bot stopped before does not count: after a restart it would make this
    return before the new process had even logged in."""
    hs.wait_for(lambda: hs.synced_to_end(after=Bot.last_start), timeout,
                "the bot to catch up")
    time.sleep(0.3)


def reply_to(hs, event_id, timeout=5):
    def find():
        return [r for r in hs.sends() if r["json"].get("m.relates_to", {})
                .get("m.in_reply_to", {}).get("event_id") == event_id]
    return hs.wait_for(find, timeout, f"a reply to {event_id}")[0]


def logged(cohort):
    """(group, member, topic) of every event, oldest first, through `cohort export`."""
    return [(e["group"], e["member"], e["topic_id"]) for e in events(cohort)]


def test_backlog_is_not_answered_then_done_is(hs, bot, cohort):
    hs.create_room(ROOM, members=[ANA])
    hs.say(ROOM, ANA, "!done Docker")          # before cohort ever ran
    bot()
    idle(hs)
    assert hs.sends() == []
    first_sync = hs.reqs("GET", r"/sync$")[0]
    assert first_sync["query"]["filter"] == "7" and "since" not in first_sync["query"]
    ev = hs.say(ROOM, ANA, "!done Kafka")
    r = reply_to(hs, ev)
    c = r["json"]
    assert c["msgtype"] == "m.notice"
    assert "ana finished Kafka" in c["body"] and "1/84" in c["body"]
    assert c["format"] == "org.matrix.custom.html"
    assert "<b>" in c["formatted_body"] and "<pre><code>" in c["formatted_body"]
    assert c["m.mentions"] == {}
    polls = hs.reqs("GET", r"/sync$")[1:]
    assert all(p["query"]["timeout"] == "30000" and p["query"]["set_presence"] == "offline"
               for p in polls)
    assert logged(cohort) == [(f"matrix:{ROOM}", f"matrix:{ANA}", "kafka")]


def test_slash_prefix_replies_edits_and_notices(hs, bot, cohort):
    hs.create_room(ROOM, members=[ANA])
    bot()
    idle(hs)
    e1 = hs.say(ROOM, ANA, "/start Redis")
    reply_to(hs, e1)
    # A reply quoting an earlier message: the fallback is not the command.
    e2 = hs.say(ROOM, ANA, "> <@ben:fake.test> !done Kafka\n\n!done Docker",
                **{"m.relates_to": {"m.in_reply_to": {"event_id": e1}}})
    assert "finished Docker" in reply_to(hs, e2)["json"]["body"]
    hs.say(ROOM, ANA, " * !done Kafka", **{"m.new_content": {"msgtype": "m.text",
                                                              "body": "!done Kafka"},
                                            "m.relates_to": {"rel_type": "m.replace",
                                                             "event_id": e2}})
    hs.say(ROOM, BEN, "!done Kafka", msgtype="m.notice")   # another bot
    hs.say(ROOM, ANA, "done Kafka, no prefix")
    idle(hs)
    assert len(hs.sends()) == 2
    assert [t for _, _, t in logged(cohort)] == ["redis", "docker"]


def test_restart_misses_nothing_and_answers_nothing_twice(hs, bot, cohort):
    hs.create_room(ROOM, members=[ANA])
    b = bot()
    idle(hs)
    e1 = hs.say(ROOM, ANA, "!done Kafka")
    reply_to(hs, e1)
    b.stop()
    e2 = hs.say(ROOM, ANA, "!done Docker")      # while cohort is down
    bot()
    reply_to(hs, e2)
    idle(hs)
    replies = [r["json"]["m.relates_to"]["m.in_reply_to"]["event_id"] for r in hs.sends()]
    assert sorted(replies) == sorted([e1, e2])
    assert [t for _, _, t in logged(cohort)] == ["kafka", "docker"]
    # The second start went on from the saved position.
    starts = [r for r in hs.reqs("GET", r"/sync$") if "since" not in r["query"]]
    assert len(starts) == 1


def test_invites_are_joined_from_allowed_users_only(hs, bot):
    bot('invite_from = ["@boss:fake.test"]')
    idle(hs)
    hs.invite("!friendly:fake.test", ADMIN)
    hs.invite("!spam:fake.test", "@stranger:elsewhere.test")
    hs.wait_req("POST", r"/join/!friendly:fake.test")
    idle(hs)
    assert not hs.reqs("POST", r"/join/!spam")
    # History from before the join is not answered; what follows is.
    ev = hs.say("!friendly:fake.test", ADMIN, "!next")
    reply_to(hs, ev)


def test_pre_join_history_is_not_answered(hs, bot):
    bot()
    idle(hs)
    room = "!later:fake.test"
    hs.create_room(room, members=[ANA], bot_joined=False)
    old = hs.say(room, ANA, "!done Kafka")
    hs.join(room, BOT)
    new = hs.say(room, ANA, "!done Docker")
    reply_to(hs, new)
    idle(hs)
    assert all(r["json"]["m.relates_to"]["m.in_reply_to"]["event_id"] != old
               for r in hs.sends())


def test_429_is_retried_with_the_same_transaction_id(hs, bot):
    hs.create_room(ROOM, members=[ANA])
    bot()
    idle(hs)
    hs.fault("PUT", r"/send/m\.room\.message/", 429,
             {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests",
              "retry_after_ms": 700})
    ev = hs.say(ROOM, ANA, "!help")
    reply_to(hs, ev)
    first, second = hs.reqs("PUT", r"/send/m\.room\.message/")[:2]
    assert first["status"] == 429 and second["status"] == 200
    assert first["path"] == second["path"]            # the same transaction id
    assert second["t"] - first["t"] >= 0.7


def test_admin_commands_follow_power_levels(hs, bot):
    hs.create_room(ROOM, members=[ANA, ADMIN, BEN], levels={ADMIN: "50", BEN: 100.0})
    bot()
    idle(hs)
    ev = hs.say(ROOM, ANA, "!digest channel here")
    assert "admin" in reply_to(hs, ev)["json"]["body"].lower()
    ev = hs.say(ROOM, ADMIN, "!digest channel here")      # a level given as a string
    assert "posted here" in reply_to(hs, ev)["json"]["body"]
    ev = hs.say(ROOM, BEN, "!digest channel off")         # a level given as a float
    assert "digest is off" in reply_to(hs, ev)["json"]["body"]


def test_power_levels_are_refreshed_on_change(hs, bot):
    hs.create_room(ROOM, members=[ANA, ADMIN], levels={ADMIN: 100})
    bot()
    idle(hs)
    hs._append(ROOM, {"type": "m.room.power_levels", "state_key": "", "sender": ADMIN,
                      "content": {"users": {ADMIN: 100, ANA: 50}, "users_default": 0}})
    ev = hs.say(ROOM, ANA, "!digest channel here")
    assert "posted here" in reply_to(hs, ev)["json"]["body"]


def test_room_v12_creators_are_admins_without_a_power_level(hs, bot):
    # Room version 12: the creator and additional_creators outrank everyone and are not
    # listed in m.room.power_levels.
    hs.create_room(ROOM, members=[ADMIN, ANA, BEN], levels={}, version="12",
                   additional_creators=[BEN])
    b = bot()
    idle(hs)                                   # the create event came in the first sync
    ev = hs.say(ROOM, ADMIN, "!digest channel here")
    assert "posted here" in reply_to(hs, ev)["json"]["body"]
    ev = hs.say(ROOM, ANA, "!digest channel off")
    assert "admin" in reply_to(hs, ev)["json"]["body"].lower()
    b.stop()
    bot()                                      # after a restart it is fetched (format=event)
    ev = hs.say(ROOM, BEN, "!digest channel off")
    assert "digest is off" in reply_to(hs, ev, timeout=10)["json"]["body"]
    assert hs.reqs("GET", r"/state/m\.room\.create/$")[0]["query"] == {"format": "event"}


def test_before_room_v12_the_creator_needs_a_power_level(hs, bot):
    hs.create_room(ROOM, members=[ANA, BEN], levels={}, version="11")
    bot()
    idle(hs)
    ev = hs.say(ROOM, ANA, "!digest channel here")
    assert "admin" in reply_to(hs, ev)["json"]["body"].lower()


def test_encrypted_room_gets_one_notice(hs, bot):
    room = "!secret:fake.test"
    hs.create_room(room, members=[ANA], encrypted=True)
    b = bot()
    idle(hs)
    hs.encrypted(room, ANA)
    hs.wait_for(lambda: hs.sends(room), 5, "the notice")
    hs.encrypted(room, ANA)
    idle(hs)
    b.stop()
    hs.encrypted(room, ANA)
    bot()
    idle(hs)
    notes = hs.sends(room)
    assert len(notes) == 1
    assert "encrypt" in notes[0]["json"]["body"]


def test_sync_errors_back_off(hs, bot):
    hs.create_room(ROOM, members=[ANA])
    hs.fault("GET", r"/sync$", 502, times=4)
    b = bot()
    hs.wait_req("GET", r"/sync$", count=5, timeout=20)
    syncs = hs.reqs("GET", r"/sync$")
    gaps = [b_["t"] - a["t"] for a, b_ in zip(syncs, syncs[1:5])]
    assert gaps[0] >= 0.45 and all(g >= 0.45 for g in gaps), gaps
    assert gaps[-1] > gaps[0]                     # it grows instead of hot-looping
    assert "/sync failed" in b.stderr()


def test_unknown_token_is_fatal(hs, cohort):
    b = Bot(cohort, matrix_toml(hs, token="syt_wrong")).start()
    assert b.wait_exit(10) == 2
    err = b.stderr()
    assert "M_UNKNOWN_TOKEN" in err and "access_token" in err
    assert "syt_wrong" not in err


def test_password_login_keeps_the_token(hs, cohort):
    toml = matrix_toml(hs, token="") + f'password = "{PASSWORD}"\n'
    b = Bot(cohort, toml).start()
    idle(hs)
    b.stop()
    assert len(hs.reqs("POST", r"/login$")) == 1
    b = Bot(cohort, toml).start()
    idle(hs)
    b.stop()
    assert len(hs.reqs("POST", r"/login$")) == 1   # the saved token was used
    assert PASSWORD not in b.stderr() and TOKEN not in b.stderr()


def stored_login(cohort):
    # Adapter state (the saved login) is not part of an export: read from the SQLite file.
    con = sqlite3.connect(cohort.db)
    try:
        row = con.execute("SELECT value FROM adapter_state WHERE key = 'matrix.login'").fetchone()
    finally:
        con.close()
    return json.loads(row[0]) if row else None


def test_a_rejected_token_with_a_password_configured_logs_in_again(hs, cohort):
    hs.create_room(ROOM, members=[ANA])
    toml = matrix_toml(hs, token="") + f'password = "{PASSWORD}"\n'
    b = Bot(cohort, toml).start()
    idle(hs)
    b.stop()
    hs.token = "syt_second"              # the stored token is revoked (signed out elsewhere)
    b = Bot(cohort, toml).start()
    idle(hs)
    logins = hs.reqs("POST", r"/login$")
    assert len(logins) == 2 and logins[1]["json"]["device_id"] == "DEV1"  # same device
    ev = hs.say(ROOM, ANA, "!done Kafka")
    assert "finished Kafka" in reply_to(hs, ev)["json"]["body"]
    hs.token = "syt_third"               # revoked while running: /sync gets the 401
    ev = hs.say(ROOM, ANA, "!done Redis")
    reply = reply_to(hs, ev, timeout=10)
    assert "finished Redis" in reply["json"]["body"]
    assert reply["headers"]["Authorization"] == "Bearer syt_third"
    assert len(hs.reqs("POST", r"/login$")) == 3
    b.stop()
    assert stored_login(cohort)["access_token"] == "syt_third"
    assert "syt_third" not in b.stderr() and PASSWORD not in b.stderr()


def test_a_config_token_that_is_rejected_falls_back_to_the_password(hs, cohort):
    toml = matrix_toml(hs, token="syt_revoked") + f'password = "{PASSWORD}"\n'
    b = Bot(cohort, toml).start()
    idle(hs)
    b.stop()
    assert len(hs.reqs("POST", r"/login$")) == 1
    assert "logging in again with matrix.password" in b.stderr()


def test_refresh_token_login_renews_an_expired_token(hs, cohort):
    hs.refresh = True
    hs.create_room(ROOM, members=[ANA])
    toml = matrix_toml(hs, token="") + f'password = "{PASSWORD}"\n'
    b = Bot(cohort, toml).start()
    idle(hs)
    assert hs.reqs("POST", r"/login$")[0]["json"]["refresh_token"] is True
    assert stored_login(cohort)["refresh_token"] == "syr_refresh_1"
    hs.expire()                          # 401 M_UNKNOWN_TOKEN with soft_logout: true
    ev = hs.say(ROOM, ANA, "!done Kafka")
    reply = reply_to(hs, ev, timeout=10)  # the reply refused at first waits for the refresh
    assert "finished Kafka" in reply["json"]["body"]
    assert reply["headers"]["Authorization"] == "Bearer syt_access_2"
    refreshes = hs.reqs("POST", r"/refresh$")
    assert len(refreshes) == 1 and refreshes[0]["json"] == {"refresh_token": "syr_refresh_1"}
    assert refreshes[0]["status"] == 200 and "Authorization" not in refreshes[0]["headers"]
    assert len(hs.reqs("POST", r"/login$")) == 1      # no new login: the refresh did it
    b.stop()
    saved = stored_login(cohort)
    assert saved["access_token"] == "syt_access_2" and saved["refresh_token"] == "syr_refresh_2"
    for secret in ("syt_access_2", "syr_refresh_1", "syr_refresh_2"):
        assert secret not in b.stderr()


def test_a_token_due_for_renewal_is_refreshed_at_start(hs, cohort):
    hs.refresh = True
    hs.lifetime_ms = 400                 # renewed after three quarters of it
    toml = matrix_toml(hs, token="") + f'password = "{PASSWORD}"\n'
    b = Bot(cohort, toml).start()
    idle(hs)
    b.stop()
    time.sleep(0.5)
    n = len(hs.requests)
    hs.lifetime_ms = 300000
    b = Bot(cohort, toml).start()
    idle(hs)
    b.stop()
    after = [r["path"].rsplit("/", 1)[-1] for r in hs.requests[n:]]
    assert after[:2] == ["refresh", "whoami"], after
    assert len(hs.reqs("POST", r"/login$")) == 1


def test_digest_post_from_the_command_line_refreshes_an_expired_token(hs, cohort):
    hs.refresh = True
    hs.lifetime_ms = 1000
    hs.create_room(ROOM, members=[ADMIN], levels={ADMIN: 100})
    toml = matrix_toml(hs, token="") + f'password = "{PASSWORD}"\n'
    b = Bot(cohort, toml).start()
    idle(hs)
    ev = hs.say(ROOM, ADMIN, "!digest channel here")
    reply_to(hs, ev)
    b.stop()
    time.sleep(1.1)
    hs.expire()
    before = len(hs.reqs("POST", r"/refresh$"))
    res = cohort.run("digest", "-c", "cohort.toml", "--group", f"matrix:{ROOM}", "--post")
    assert res.returncode == 0, res.stderr
    assert len([r for r in hs.sends() if "/cd-" in r["path"]]) == 1
    assert len(hs.reqs("POST", r"/refresh$")) == before + 1


def test_a_refused_refresh_token_falls_back_to_the_password(hs, cohort):
    hs.refresh = True
    hs.create_room(ROOM, members=[ANA])
    toml = matrix_toml(hs, token="") + f'password = "{PASSWORD}"\n'
    b = Bot(cohort, toml).start()
    idle(hs)
    b.stop()
    hs.expire()
    hs.refresh_token = "syr_revoked"     # the session was ended on the server
    b = Bot(cohort, toml).start()
    idle(hs)
    ev = hs.say(ROOM, ANA, "!done Kafka")
    assert "finished Kafka" in reply_to(hs, ev)["json"]["body"]
    assert [r["status"] for r in hs.reqs("POST", r"/refresh$")] == [401]
    assert len(hs.reqs("POST", r"/login$")) == 2
    b.stop()


def test_digest_is_posted_to_the_room(hs, bot, cohort):
    hs.create_room(ROOM, members=[ANA, ADMIN], levels={ADMIN: 100})
    cohort.at("2026-11-25T17:58:30Z", rate=20)  # the /done and the channel come before 18:00
    bot()
    idle(hs)
    ev = hs.say(ROOM, ANA, "!done Kafka")
    reply_to(hs, ev)
    ev = hs.say(ROOM, ADMIN, "!digest channel here")
    reply_to(hs, ev)
    digest = hs.wait_for(lambda: [r for r in hs.sends() if "/cd-" in r["path"]], 10,
                         "the digest")[0]
    assert digest["json"]["msgtype"] == "m.notice"
    assert "Kafka" in digest["json"]["body"]
    time.sleep(1)
    assert len([r for r in hs.sends() if "/cd-" in r["path"]]) == 1


def test_digest_post_from_the_command_line(hs, bot, cohort):
    hs.create_room(ROOM, members=[ANA, ADMIN], levels={ADMIN: 100})
    b = bot()
    idle(hs)
    ev = hs.say(ROOM, ADMIN, "!digest channel here")
    reply_to(hs, ev)
    b.stop()
    res = cohort.run("digest", "-c", "cohort.toml", "--group", f"matrix:{ROOM}", "--post")
    assert res.returncode == 0, res.stderr
    posted = [r for r in hs.sends() if "/cd-" in r["path"]]
    assert len(posted) == 1 and posted[0]["room"] == ROOM
    res = cohort.run("digest", "-c", "cohort.toml", "--group", f"matrix:{ROOM}", "--post")
    assert res.returncode == 0 and "posted already" in res.stderr
    assert len([r for r in hs.sends() if "/cd-" in r["path"]]) == 1


def test_an_oversized_sync_answer_is_refused_and_survived(hs, bot):
    hs.create_room(ROOM, members=[ANA])
    b = bot()
    idle(hs)
    hs.fault("GET", r"/sync$", 200, {"next_batch": "x", "junk": "j" * (17 * 1024 * 1024)})
    hs.say(ROOM, ANA, "hello")        # ends the poll in flight: the next one meets the fault
    hs.wait_for(lambda: hs.faults[-1]["times"] == 0, 10, "the oversized answer")
    ev = hs.say(ROOM, ANA, "!done Kafka")
    assert "finished Kafka" in reply_to(hs, ev, timeout=15)["json"]["body"]
    assert "larger than the limit" in b.stderr()


def digest_events(hs, room):
    with hs.cond:
        return [ev for _, r, ev in hs.stream if r == room and
                "org.cohort.digest_key" in ev.get("content", {})]


def digest_rows(cohort):
    return digests(cohort)


def unanswered_digest(hs, cohort, lose):
    """Runs cohort over 18:00; the digest send meets `lose` answers lost (or refused)."""
    hs.create_room(ROOM, members=[ANA, ADMIN], levels={ADMIN: 100})
    cohort.at("2026-11-25T17:59:50Z")
    b = Bot(cohort, matrix_toml(hs)).start()
    idle(hs)
    reply_to(hs, hs.say(ROOM, ANA, "!done Kafka"))
    reply_to(hs, hs.say(ROOM, ADMIN, "!digest channel here"))
    lose()
    hs.wait_req("PUT", r"/send/m\.room\.message/cd-", count=4, timeout=25)
    time.sleep(0.3)
    b.stop()
    assert digest_rows(cohort) == [("2026-11-25", 0)]


def test_a_resent_digest_is_found_in_the_room_and_not_posted_twice(hs, cohort):
    unanswered_digest(hs, cohort, lambda: setattr(hs, "lose_answers", 4))
    assert len(digest_events(hs, ROOM)) == 1      # stored once (the transaction id)
    hs.txns.clear()                               # the homeserver forgot the transaction
    cohort.at("2026-11-25T20:00:00Z")
    puts = len(hs.reqs("PUT", r"/send/m\.room\.message/cd-"))
    b = Bot(cohort, matrix_toml(hs)).start()
    hs.wait_req("GET", r"/rooms/[^/]+/messages$", timeout=10)
    hs.wait_for(lambda: digest_rows(cohort) == [("2026-11-25", 1)], 10, "digest recorded")
    b.stop()
    assert len(hs.reqs("PUT", r"/send/m\.room\.message/cd-")) == puts
    assert len(digest_events(hs, ROOM)) == 1
    look = hs.reqs("GET", r"/rooms/[^/]+/messages$")[0]["query"]
    assert look["dir"] == "b" and json.loads(look["filter"])["senders"] == [BOT]
    assert "was posted already" in b.stderr()


def test_a_resent_digest_not_found_is_posted_once(hs, cohort):
    unanswered_digest(hs, cohort,
                      lambda: hs.fault("PUT", r"/send/m\.room\.message/cd-", 502, times=4))
    assert digest_events(hs, ROOM) == []
    cohort.at("2026-11-25T20:00:00Z")
    b = Bot(cohort, matrix_toml(hs)).start()
    hs.wait_for(lambda: digest_rows(cohort) == [("2026-11-25", 1)], 10, "digest recorded")
    b.stop()
    assert len(digest_events(hs, ROOM)) == 1
    assert len(hs.reqs("GET", r"/rooms/[^/]+/messages$")) == 1
