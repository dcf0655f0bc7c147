"""Issue 15 §4: one person on Discord and Matrix (/link), through the real binary.

One cohort process runs the fake Discord and the fake Matrix adapters over one store,
on SQLite and, when COHORT_TEST_PG_URL is set (make test), on PostgreSQL. A code is
shown only to its member (ephemeral on Discord, a direct room on Matrix, never the
group room); typed on the other platform it makes the two identities one member.
"""
import json
import os
import re
import subprocess
import time
import uuid

import pytest

from conftest import Running
from fake_discord import TOKEN as DTOKEN, FakeDiscord, interaction
from fake_matrix import BOT, TOKEN as MTOKEN, FakeMatrix
from store_view import events

BASE = os.environ.get("COHORT_TEST_PG_URL", "")
ROOM, ANA, BOB = "!study:fake.test", "@ana:fake.test", "@bob:fake.test"
CODE = re.compile(r"\b([2-9A-HJKMNP-Z]{4})-([2-9A-HJKMNP-Z]{4})\b")


def psql(sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", BASE, "-c", sql],
                   check=True, capture_output=True, text=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, cohort):
    if request.param == "sqlite":
        yield request.param
        return
    if not BASE:
        pytest.skip("COHORT_TEST_PG_URL is not set (make test starts a PostgreSQL)")
    schema = "link_" + uuid.uuid4().hex[:12]
    psql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in BASE else "?"
    cohort.env["COHORT_STORE_URL"] = f"{BASE}{sep}options=-csearch_path%3D{schema}"
    yield request.param
    psql(f"DROP SCHEMA {schema} CASCADE")


class Both:
    """One cohort process with both fakes; ask() on either platform returns the answer."""

    def __init__(self, cohort):
        self.cohort = cohort
        self.dc, self.hs = FakeDiscord(heartbeat_interval=1000), FakeMatrix()
        self.dc.start()
        self.hs.start()
        self.hs.create_room(ROOM, members=[ANA, BOB], levels={ANA: 100})
        self.configure()
        self.ids = iter(range(5001, 9000))
        self.bot = None

    def configure(self, discord_extra=""):
        (self.cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "{DTOKEN}"
api_url = "{self.dc.api_url}"
{discord_extra}
[matrix]
enabled = true
homeserver = "{self.hs.url}"
user_id = "{BOT}"
access_token = "{MTOKEN}"
""")

    def start(self, at, rate=1):
        self.cohort.at(at, rate)
        before = len(self.dc.connections)
        t0 = time.monotonic()
        self.bot = Running(self.cohort).start()
        self.dc.wait_for(lambda: len(self.dc.connections) > before, 10, "a connection")
        self.dc.ready_connection()
        self.hs.wait_for(lambda: self.hs.synced_to_end(t0), 10, "the first sync")
        return self

    def stop(self):
        if self.bot:
            self.bot.stop()
            self.bot = None

    def close(self):
        try:
            self.stop()
        finally:
            self.dc.stop()
            self.hs.stop()

    def discord(self, name, value=None, user="300", username="ana", opt=None, admin=False):
        """A slash command; (answer text, ephemeral)."""
        ix = next(self.ids)
        opts = []
        if value is not None:
            opts = [{"type": 3, "name": opt or {"link": "code", "done": "topic"}.get(name, name),
                     "value": value}]
        self.dc.dispatch("INTERACTION_CREATE", interaction(
            ix, name, opts, user=user, username=username,
            permissions="32" if admin else "0"))
        cb = self.dc.wait_rest("POST", rf"/interactions/{ix}/tok-{ix}/callback", 1, 10.0)[0]
        data = cb["json"]["data"]
        e = (data.get("embeds") or [{}])[0]
        text = (data.get("content") or "") + e.get("title", "") + "\n" + e.get("description", "")
        return text.replace("\\", ""), bool(data.get("flags", 0) & 64)

    def discord_text(self, line, user="300", username="ana"):
        """A prefix (text) command in channel 200; the answer posted there."""
        mid = str(next(self.ids))
        n = len(self.dc.rest("POST", r"/channels/200/messages"))
        self.dc.dispatch("MESSAGE_CREATE", {
            "id": mid, "channel_id": "200", "guild_id": "100", "content": line,
            "author": {"id": user, "username": username}, "member": {"nick": None}})
        got = self.dc.wait_rest("POST", r"/channels/200/messages", n + 1, 10.0)[n]["json"]
        e = (got.get("embeds") or [{}])[0]
        text = (got.get("content") or "") + e.get("title", "") + "\n" + e.get("description", "")
        return text.replace("\\", "")

    def matrix(self, line, sender=ANA):
        n = len(self.hs.sends(ROOM))
        ev = self.hs.say(ROOM, sender, line)
        got = self.hs.wait_for(lambda: [r for r in self.hs.sends(ROOM)[n:]
                                        if ev in str(r["json"])], 10, f"an answer to {line}")
        return got[0]["json"]["body"]


@pytest.fixture
def both(cohort, backend):
    b = Both(cohort)
    yield b
    b.close()


def members_of(cohort):
    """(group, member, topic) of every event, in log order."""
    return [(e["group"], e["member"], e["topic_id"]) for e in events(cohort)]


def test_a_discord_code_typed_on_matrix_makes_one_member(cohort, both):
    both.start("2026-11-23T09:00:00Z")
    assert "finished" in both.discord("done", "kafka")[0]
    assert "finished" in both.matrix("!done docker")
    text, ephemeral = both.discord("link")
    assert ephemeral, text
    m = CODE.search(text)
    assert m and "within 10 minutes" in text, text
    code = m.group(1) + m.group(2)
    # Typed lower-case and without the dash, on Matrix.
    out = both.matrix(f"!link {code.lower()}")
    assert "Linked: you are one member on Discord and Matrix" in out, out
    assert "finished" in both.matrix("!done redis")
    both.stop()
    rows = members_of(cohort)
    # Matrix's records (before and after the link) are the Discord member's now.
    assert rows == [("discord:100", "discord:300", "kafka"),
                    (f"matrix:{ROOM}", "discord:300", "docker"),
                    (f"matrix:{ROOM}", "discord:300", "redis")], rows
    # /link remove: separate again; the room's records go back to the Matrix identity.
    both.start("2026-11-23T10:00:00Z")
    out = both.matrix("!link remove")
    assert "Unlinked: Discord and Matrix are separate members again" in out, out
    assert "finished" in both.matrix("!done postgresql")
    assert "You are not linked; nothing was changed" in both.discord("link", "remove")[0]
    both.stop()
    rows = members_of(cohort)
    assert rows == [("discord:100", "discord:300", "kafka"),
                    (f"matrix:{ROOM}", f"matrix:{ANA}", "docker"),
                    (f"matrix:{ROOM}", f"matrix:{ANA}", "redis"),
                    (f"matrix:{ROOM}", f"matrix:{ANA}", "postgresql")], rows


def test_a_matrix_code_goes_to_a_direct_room_and_is_typed_on_discord(cohort, both):
    both.start("2026-11-23T09:00:00Z")
    out = both.matrix("!link")
    assert "I sent you a code in a direct message" in out, out
    dm = both.hs.wait_for(lambda: [r for r in both.hs.sends() if r["room"] != ROOM], 10,
                          "the code in a direct room")
    assert len(both.hs.created) == 1 and both.hs.created[0][1]["invite"] == [ANA]
    assert dm[0]["room"] == both.hs.created[0][0]
    m = CODE.search(dm[0]["json"]["body"])
    assert m, dm[0]["json"]
    shown = m.group(0)
    # The code never appears in the group room.
    for r in both.hs.sends(ROOM):
        body = str(r["json"])
        assert shown not in body and shown.replace("-", "") not in body, body
    text, ephemeral = both.discord("link", shown)
    assert "Linked: you are one member on Matrix and Discord" in text, text
    # From now on Discord's changes are the Matrix member's; /link says so.
    assert "finished" in both.discord("done", "kafka")[0]
    assert "You are linked already" in both.discord("link")[0]
    assert "You are linked already" in both.matrix("!link")
    both.stop()
    assert members_of(cohort) == [("discord:100", f"matrix:{ANA}", "kafka")]


def test_a_discord_text_command_never_shows_a_code_in_the_channel(cohort, both):
    both.configure('prefix = "!"')
    both.start("2026-11-23T09:00:00Z")
    assert "finished" in both.discord_text("!done kafka")
    # Everyone in #general would read it: no code, the slash command instead.
    out = both.discord_text("!link")
    assert "Use the /link slash command for a code" in out and not CODE.search(out), out
    out = both.discord_text("!link group")
    assert not CODE.search(out), out
    # The slash command's answer is ephemeral and still gives one.
    text, ephemeral = both.discord("link")
    assert ephemeral and CODE.search(text), text
    # Other text link commands still answer in the channel.
    assert "You are not linked; nothing was changed" in both.discord_text("!link remove")
    both.stop()


def test_wrong_codes_are_clear_answers_that_change_nothing(cohort, both):
    both.start("2026-11-23T09:00:00Z")
    code = CODE.search(both.discord("link", user="300")[0]).group(0)
    # Another Discord identity: a Discord code links Discord with Matrix only.
    out = both.discord("link", code, user="301", username="bob")[0]
    assert "That code was made on Discord too" in out and "works no more" in out, out
    # Not a code at all, and an unknown one.
    assert "is not a link code" in both.matrix("!link hello")
    assert "No such link code" in both.matrix("!link K7QP-M3XD")
    # Used by bob on Matrix; then reused by ana: refused.
    code = CODE.search(both.discord("link", user="300")[0]).group(0)
    assert "Linked" in both.matrix(f"!link {code}", sender=BOB)
    assert "That code was used already" in both.matrix(f"!link {code}")
    # A code eleven minutes old has expired (the process restarted on a later clock).
    code2 = CODE.search(both.discord("link", user="302", username="carl")[0]).group(0)
    both.stop()
    both.start("2026-11-23T09:12:00Z")
    assert "That code expired" in both.matrix(f"!link {code2}")
    assert "finished" in both.matrix("!done docker")
    both.stop()
    # Nothing was linked for ana: her change is her own.
    assert members_of(cohort) == [(f"matrix:{ROOM}", f"matrix:{ANA}", "docker")]


def test_a_code_typed_on_its_own_platform_is_spent(cohort, both):
    both.start("2026-11-23T09:00:00Z")
    # Typed on Discord by another identity (the channel may have seen it): it works no more.
    code = CODE.search(both.discord("link", user="300")[0]).group(0)
    out = both.discord("link", code, user="301", username="bob")[0]
    assert "That code was made on Discord too" in out and "works no more" in out, out
    assert "That code was used already" in both.matrix(f"!link {code}", sender=BOB)
    # The maker's own code on its own platform: likewise.
    code = CODE.search(both.discord("link", user="300")[0]).group(0)
    out = both.discord("link", code)[0]
    assert "That is your own code" in out and "/link gives a new one" in out, out
    assert "That code was used already" in both.matrix(f"!link {code}")
    # A Matrix code typed in the Matrix room by someone else there.
    assert "I sent you a code" in both.matrix("!link")
    dm = both.hs.wait_for(lambda: [r for r in both.hs.sends() if r["room"] != ROOM], 10,
                          "the code in a direct room")
    code = CODE.search(dm[0]["json"]["body"]).group(0)
    assert "That code was made on Matrix too" in both.matrix(f"!link {code}", sender=BOB)
    assert "That code was used already" in both.discord("link", code, user="302")[0]
    # A group code typed in its own group: spent too.
    gcode = CODE.search(both.discord("link-group", admin=True)[0]).group(0)
    out = both.discord("link-group", gcode, opt="code", admin=True)[0]
    assert "That code was made in this group" in out and "works no more" in out, out
    assert "That code was used already" in both.matrix(f"!link {gcode}")
    # A new code works.
    code = CODE.search(both.discord("link", user="300")[0]).group(0)
    assert "Linked" in both.matrix(f"!link {code}", sender=BOB)


def test_five_wrong_codes_make_a_member_wait(cohort, both):
    both.start("2026-11-23T09:00:00Z")
    code = CODE.search(both.discord("link")[0]).group(0)
    for i in range(4):
        assert "No such link code" in both.matrix(f"!link 2345-678{'ABCD'[i]}")
    assert "That code was used" not in both.matrix("!link 2345-6789")
    # The sixth try waits, even with the right code; nothing changed.
    out = both.matrix(f"!link {code}")
    assert "Too many wrong codes: wait 10 minutes" in out and "works no more" in out, out
    assert "You are not linked" in both.matrix("!link remove")
    # The right code was shown in the room while its typer waits: nobody else may use it.
    assert "That code was used already" in both.matrix(f"!link {code}", sender=BOB)
    both.stop()
    # Ten minutes after the first wrong code, the right one works.
    both.start("2026-11-23T09:11:00Z")
    code = CODE.search(both.discord("link")[0]).group(0)
    assert "Linked" in both.matrix(f"!link {code}")


def board(text):
    """{name: points} of a leaderboard answer."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"#\d+\s+(\w+)\s+(\d+) pts?", text)}


def digest_posts(both):
    """(Discord digest posts, Matrix digest sends to the room)."""
    dc = [r for r in both.dc.rest("POST", r"/channels/200/messages")
          if str(r["json"].get("nonce", "")).startswith("cd-")]
    mx = [r for r in both.hs.sends(ROOM) if "/send/m.room.message/cd-" in r["path"]]
    return dc, mx


def test_admins_link_groups_one_leaderboard_a_digest_in_each_and_undo(cohort, both):
    both.start("2026-11-23T09:00:00Z")
    assert "posted here" in both.discord("digest-setup", "here", opt="channel", admin=True)[0]
    assert "posted here" in both.matrix("!digest channel here")
    # ana links her identities first; carl is on Discord only, bob on Matrix only.
    code = CODE.search(both.discord("link")[0]).group(0)
    assert "Linked" in both.matrix(f"!link {code}")
    assert "finished" in both.discord("done", "kafka")[0]
    assert "finished" in both.discord("done", "docker")[0]
    assert "finished" in both.discord("done", "redis", user="301", username="carl")[0]
    assert "start" in both.matrix("!start kafka").lower()   # later: wins over the done
    assert "finished" in both.matrix("!done docker")          # both done: counts once
    assert "finished" in both.matrix("!done postgresql")
    assert "finished" in both.matrix("!done kafka", sender=BOB)
    # A group code from the Discord admin; a Matrix member who is no admin is refused.
    text, ephemeral = both.discord("link-group", admin=True)
    assert ephemeral and "Group link code" in text, text
    gcode = CODE.search(text).group(0)
    out = both.matrix(f"!link {gcode}", sender=BOB)
    assert "Only admins can link groups" in out and "works no more" in out, out
    # It was shown in the room: spent, so whoever saw it cannot use it.
    assert "That code was used already" in both.matrix(f"!link {gcode}")
    assert "Only admins can link groups" in both.discord("link-group", user="301")[0]
    gcode = CODE.search(both.discord("link-group", admin=True)[0]).group(0)
    out = both.matrix(f"!link {gcode}")
    assert "Linked: this group and the Discord one are one group" in out, out
    # One leaderboard, the same on both; nothing doubled.
    want = {"ana": 2, "carl": 1, "bob": 1}
    assert board(both.matrix("!leaderboard")) == want
    assert board(both.discord("leaderboard")[0]) == want
    assert "2/84" in both.matrix("!progress")
    both.stop()
    # 18:00: the digest is posted once to each group's channel, each with its own key.
    both.start("2026-11-23T17:59:00Z", rate=60)
    both.hs.wait_for(lambda: all(digest_posts(both)), 20, "a digest in both channels")
    time.sleep(2.0)
    both.stop()
    dc, mx = digest_posts(both)
    assert len(dc) == 1 and len(mx) == 1, (dc, mx)
    assert dc[0]["json"]["nonce"] not in mx[0]["path"]
    assert "Daily digest" in mx[0]["json"]["body"]
    # A restart the same evening posts neither again.
    both.start("2026-11-23T20:00:00Z", rate=60)
    time.sleep(2.0)
    both.stop()
    assert [len(x) for x in digest_posts(both)] == [1, 1]
    # /link group remove (admin): separate again, each with a copy of the records.
    both.start("2026-11-24T09:00:00Z")
    out = both.matrix("!link group remove", sender=BOB)
    assert "Only admins can link groups" in out, out
    out = both.matrix("!link group remove")
    assert "Unlinked: the Discord and Matrix groups are separate again" in out, out
    assert board(both.matrix("!leaderboard")) == want
    assert "finished" in both.matrix("!done redis", sender=BOB)
    assert board(both.matrix("!leaderboard")) == {"ana": 2, "bob": 2, "carl": 1}
    assert board(both.discord("leaderboard")[0]) == want
    assert "This group is not linked" in both.matrix("!link group remove")


def test_export_import_and_migrate_carry_links_not_codes(cohort, both):
    both.start("2026-11-23T09:00:00Z")
    code = CODE.search(both.discord("link")[0]).group(0)
    assert "Linked" in both.matrix(f"!link {code}")
    gcode = CODE.search(both.discord("link-group", admin=True)[0]).group(0)
    assert "one group" in both.matrix(f"!link {gcode}")
    live = CODE.search(both.discord("link", user="301", username="carl")[0]).group(0)
    assert "finished" in both.matrix("!done kafka", sender=BOB)
    both.stop()
    res = cohort.run("export", "--format", "json")
    assert res.returncode == 0, res.stderr
    dump = json.loads(res.stdout)
    assert dump["version"] == 7
    assert [(x["kind"], x["alias"], x["canonical"]) for x in dump["links"]] == [
        ("group", f"matrix:{ROOM}", "discord:100"), ("member", f"matrix:{ANA}", "discord:300")]
    assert live not in res.stdout and live.replace("-", "") not in res.stdout
    (cohort.workdir / "dump.json").write_text(res.stdout)
    # Into a new SQLite store (from PostgreSQL too, as migrate's other direction).
    (cohort.workdir / "new.toml").write_text('[store]\npath = "restored.db"\n')
    url = cohort.env.pop("COHORT_STORE_URL", None)
    try:
        imp = cohort.run("import", "-c", "new.toml", "--format", "json", "dump.json")
        assert imp.returncode == 0, imp.stderr
        again = cohort.run("export", "-c", "new.toml", "--format", "json")
    finally:
        if url:
            cohort.env["COHORT_STORE_URL"] = url
    assert again.stdout == res.stdout


def dm_sends(both):
    return [r for r in both.hs.sends() if r["room"] != ROOM]


def test_a_linked_member_is_reminded_on_the_platform_they_asked_on(cohort, both):
    # ana's Discord code, typed on Matrix: she is recorded as discord:300 in the room.
    both.start("2026-11-23T09:00:00Z")
    code = CODE.search(both.discord("link")[0]).group(0)
    assert "Linked" in both.matrix(f"!link {code}")
    assert "finished" in both.matrix("!done kafka")
    assert "Reminder set: 20:00" in both.matrix("!remind 20:00")
    both.stop()
    # Tuesday 20:00, nothing done: the reminder reaches her Matrix identity's direct room.
    both.start("2026-11-24T19:59:00Z", rate=60)
    sent = both.hs.wait_for(lambda: dm_sends(both), 20, "the reminder in a direct room")
    both.stop()
    assert [body["invite"] for _, body in both.hs.created] == [[ANA]]
    assert "your 1-day streak ends tonight" in sent[0]["json"]["body"]
    assert "not a Matrix user" not in (cohort.workdir / "cohort.log").read_text()


def test_a_member_of_a_linked_room_is_reminded_on_matrix(cohort, both):
    both.start("2026-11-23T09:00:00Z")
    gcode = CODE.search(both.discord("link-group", admin=True)[0]).group(0)
    assert "one group" in both.matrix(f"!link {gcode}")
    assert "finished" in both.matrix("!done kafka", sender=BOB)
    assert "Reminder set: 20:00" in both.matrix("!remind 20:00", sender=BOB)
    both.stop()
    both.start("2026-11-24T19:59:00Z", rate=60)
    sent = both.hs.wait_for(lambda: dm_sends(both), 20, "the reminder in a direct room")
    both.stop()
    assert [body["invite"] for _, body in both.hs.created] == [[BOB]]
    assert "bob, your 1-day streak ends tonight" in sent[0]["json"]["body"]
    assert both.dc.rest("POST", r"/users/@me/channels") == []


def test_goals_and_reminders_go_with_a_member_link(cohort, both):
    both.start("2026-11-25T09:00:00Z")
    assert "Goal set: Caching by 2026-11-27" in both.matrix("!goal Caching by 27 November")
    assert "Reminder set: 20:00" in both.matrix("!remind 20:00")
    code = CODE.search(both.discord("link")[0]).group(0)
    assert "Linked" in both.matrix(f"!link {code}")
    # The Matrix identity's goal and reminder are the linked member's now.
    out = both.matrix("!goal")
    assert "Goal: Caching by 2026-11-27" in out, out
    out = both.matrix("!remind")
    assert "Your reminder: 20:00" in out, out
    # /link remove: the room's goal and reminder go back to the Matrix identity.
    assert "Unlinked" in both.matrix("!link remove")
    assert "Goal: Caching by 2026-11-27" in both.matrix("!goal")
    assert "Your reminder: 20:00" in both.matrix("!remind")


def test_goals_and_reminders_go_with_a_group_link_and_stay_after_it(cohort, both):
    both.start("2026-11-25T09:00:00Z")
    # The room's goal, set after the Discord group's: the later one wins the merge.
    assert "Group goal: Kafka by" in both.discord("goal-group", "Kafka by 30 November",
                                                  opt="goal", admin=True)[0]
    both.stop()
    both.start("2026-11-25T10:00:00Z")
    assert "Group goal: Caching by 2026-11-27" in both.matrix(
        "!goal group Caching by 27 November")
    assert "Reminder set: 20:00" in both.matrix("!remind 20:00", sender=BOB)
    gcode = CODE.search(both.discord("link-group", admin=True)[0]).group(0)
    assert "one group" in both.matrix(f"!link {gcode}")
    for out in (both.matrix("!goal", sender=BOB), both.discord("goal")[0]):
        assert "Group goal: Caching by 2026-11-27" in out and "Kafka" not in out, out
    assert "Your reminder: 20:00" in both.matrix("!remind", sender=BOB)
    # Separate again: the room keeps a copy of the goal and of bob's reminder.
    assert "Unlinked" in both.matrix("!link group remove")
    assert "Group goal: Caching by 2026-11-27" in both.matrix("!goal", sender=BOB)
    assert "Your reminder: 20:00" in both.matrix("!remind", sender=BOB)


def test_undo_after_a_member_link_keeps_the_other_identitys_done(cohort, both):
    # One group on both platforms first; ana's two identities each have a record of Kafka.
    both.start("2026-11-23T09:00:00Z")
    gcode = CODE.search(both.discord("link-group", admin=True)[0]).group(0)
    assert "one group" in both.matrix(f"!link {gcode}")
    assert "finished" in both.matrix("!done kafka")
    both.stop()
    both.start("2026-11-24T09:00:00Z")
    assert "Kafka" in both.discord("start", "kafka", opt="topic")[0]
    code = CODE.search(both.discord("link")[0]).group(0)
    assert "Linked" in both.matrix(f"!link {code}")
    # The later change (in progress) won; undoing it gives back the Matrix identity's done.
    out = both.discord("undo")[0]
    assert "Undone: Kafka is done again" in out, out
    assert "1/84" in both.matrix("!progress")


def test_undo_after_a_group_link_keeps_the_other_groups_done(cohort, both):
    both.start("2026-11-23T09:00:00Z")
    code = CODE.search(both.discord("link")[0]).group(0)
    assert "Linked" in both.matrix(f"!link {code}")
    assert "finished" in both.matrix("!done kafka")
    both.stop()
    both.start("2026-11-24T09:00:00Z")
    assert "Kafka" in both.discord("start", "kafka", opt="topic")[0]
    gcode = CODE.search(both.discord("link-group", admin=True)[0]).group(0)
    assert "one group" in both.matrix(f"!link {gcode}")
    out = both.matrix("!undo")
    assert "Undone: Kafka is done again" in out, out
    assert "1/84" in both.discord("progress")[0]
