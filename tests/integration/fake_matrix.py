"""A fake Matrix homeserver (client-server API v3) for the integration tests.

It keeps rooms as event logs, answers /sync as a long poll from a position
in one global stream, records every request with a timestamp, and injects
faults: 429 M_LIMIT_EXCEEDED, 5xx, 401 M_UNKNOWN_TOKEN. Like a homeserver, it refuses
a message over 65,536 bytes (413 M_TOO_LARGE). With `refresh` on, a login
that asks for it gets a refresh token and tokens that expire() (as with MAS).
An inline sync filter's timeline limit is honoured (limited: true), a stored
filter's is not.
"""
import asyncio
import json
import itertools
import json
import re
import time
import urllib.parse

from aiohttp import web

from fakebase import FakeServer

BOT = "@cohort:fake.test"
TOKEN = "syt_fake_token"
PASSWORD = "hunter2"


class FakeMatrix(FakeServer):
    def __init__(self):
        super().__init__()
        self.stream = []       # (pos, room_id, event) — timeline events in order
        self.invites = []      # (pos, room_id, inviter)
        self.rooms = {}        # room_id -> {"state": {(type, key): event}, "members": set}
        self.txns = {}         # (room, txn) -> event_id
        self.created = []      # (room_id, body) of each POST /createRoom (direct rooms)
        self._ids = itertools.count(1)
        self.token = TOKEN
        self.max_event_bytes = 65536   # a larger message is refused, as Synapse does
        self.refresh = False           # hand out refresh tokens to logins that ask
        self.lifetime_ms = 300000      # expires_in_ms of those access tokens
        self.refresh_token = None
        self.soft = set()              # expired tokens: 401 with soft_logout true
        self._tokens = itertools.count(1)
        self.lose_answers = 0          # answer this many sends 502 *after* storing the event
        self.syncing = 0               # /sync requests being answered now
        self.most_syncing = 0          # the most at once (two processes syncing: 2)
        self.sync_asks = []            # (monotonic arrival, since) of each /sync answered

    def _issue(self):
        n = next(self._tokens)
        self.token, self.refresh_token = f"syt_access_{n}", f"syr_refresh_{n}"
        return {"access_token": self.token, "refresh_token": self.refresh_token,
                "expires_in_ms": self.lifetime_ms, "device_id": "DEV1", "user_id": BOT}

    def expire(self):
        """The access token expires: it gets 401 M_UNKNOWN_TOKEN, soft_logout true."""
        with self.cond:
            self.soft.add(self.token)
            self.token = "syt_nobody_has_this"

    def routes(self, app):
        app.router.add_route("*", "/_matrix/client/v3/{tail:.*}", self._api)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    # ---- the world (test thread) ----

    def _pos(self):
        return len(self.stream) + len(self.invites)

    def _append(self, room, ev):
        with self.cond:
            ev.setdefault("event_id", f"$ev{next(self._ids)}")
            ev.setdefault("origin_server_ts", int(time.time() * 1000))
            ev.setdefault("room_id", room)
            self.stream.append((self._pos() + 1, room, ev))
            if "state_key" in ev:
                self.rooms[room]["state"][(ev["type"], ev["state_key"])] = ev
                if ev["type"] == "m.room.member":
                    m = self.rooms[room]["members"]
                    (m.add if ev["content"]["membership"] == "join" else m.discard)(
                        ev["state_key"])
            self.cond.notify_all()
        return ev["event_id"]

    def create_room(self, room, levels=None, members=(), bot_joined=True, encrypted=False,
                    version=None, additional_creators=()):
        """version "12": the creators (members[0] and additional_creators) are not in
        the power levels' users, as on a real v12 room."""
        with self.cond:
            self.rooms[room] = {"state": {}, "members": set()}
        creator = members[0] if members else "@admin:fake.test"
        content = {"creator": creator} if version is None else {"room_version": version}
        if additional_creators:
            content["additional_creators"] = list(additional_creators)
        self._append(room, {"type": "m.room.create", "state_key": "", "sender": creator,
                            "content": content})
        for m in members:
            self.join(room, m)
        self._append(room, {"type": "m.room.power_levels", "state_key": "", "sender": creator,
                            "content": {"users": levels or {}, "users_default": 0}})
        if encrypted:
            self._append(room, {"type": "m.room.encryption", "state_key": "", "sender": creator,
                                "content": {"algorithm": "m.megolm.v1.aes-sha2"}})
        if bot_joined:
            self.join(room, BOT)

    def join(self, room, user, name=None):
        return self._append(room, {"type": "m.room.member", "state_key": user, "sender": user,
                                   "content": {"membership": "join",
                                               "displayname": name or user[1:].split(":")[0]}})

    def say(self, room, sender, body, msgtype="m.text", **content):
        c = {"msgtype": msgtype, "body": body}
        c.update(content)
        return self._append(room, {"type": "m.room.message", "sender": sender, "content": c})

    def encrypted(self, room, sender):
        return self._append(room, {"type": "m.room.encrypted", "sender": sender,
                                   "content": {"algorithm": "m.megolm.v1.aes-sha2",
                                               "ciphertext": "xyz"}})

    def invite(self, room, inviter, levels=None):
        with self.cond:
            self.rooms[room] = {"state": {}, "members": set()}
        self._append(room, {"type": "m.room.create", "state_key": "", "sender": inviter,
                            "content": {"creator": inviter}})
        self.join(room, inviter)
        with self.cond:
            self.invites.append((self._pos() + 1, room, inviter))
            self.cond.notify_all()

    # ---- waiting ----

    def reqs(self, method=None, pattern=None):
        return [r for r in self.requests if (method is None or r["method"] == method)
                and (pattern is None or re.search(pattern, r["path"]))]

    def wait_req(self, method, pattern, count=1, timeout=5.0):
        return self.wait_for(lambda: len(self.reqs(method, pattern)) >= count
                             and self.reqs(method, pattern), timeout,
                             f"{count} {method} {pattern}")

    def sends(self, room=None):
        """The messages the bot sent (accepted ones), oldest first."""
        return [r for r in self.reqs("PUT", r"/send/m\.room\.message/")
                if r["status"] == 200 and (room is None or r["room"] == room)]

    def synced_to_end(self, after=0.0):
        """True once a /sync that came after the monotonic time after has returned
        everything there is, or asked from the end (the bot is idle)."""
        end = str(self._pos())
        with self.cond:
            asked = [s for t, s in self.sync_asks if t >= after]
        return end in asked or any(
            r["path"].endswith("/sync") and r["status"] == 200 and r["t"] >= after and
            r.get("next_batch") == end for r in self.requests)

    # ---- HTTP ----

    @web.middleware
    async def _middleware(self, request, handler):
        entry, rule = await self.record(request)
        m = re.search(r"/rooms/([^/]+)/send/", request.path)
        entry["room"] = urllib.parse.unquote(m.group(1)) if m else None
        if rule and rule["status"]:
            resp = web.json_response(rule["body"] or {"errcode": "M_UNKNOWN"},
                                     status=rule["status"], headers=rule["headers"])
        elif not re.search(r"/(login|refresh)$", request.path) and \
                request.headers.get("Authorization") != f"Bearer {self.token}":
            used = request.headers.get("Authorization", "")[len("Bearer "):]
            body = {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token"}
            if used in self.soft:
                body["soft_logout"] = True
            resp = web.json_response(body, status=401)
        else:
            resp = await handler(request)
        if hasattr(resp, "next_batch"):
            entry["next_batch"] = resp.next_batch
        self.done(entry, resp.status)
        return resp

    async def _api(self, request):
        path = urllib.parse.unquote(request.path[len("/_matrix/client/v3"):])
        method = request.method
        if method == "POST" and path == "/login":
            js = await request.json()
            if js.get("password") != PASSWORD:
                return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
            if self.refresh and js.get("refresh_token") is True:
                with self.cond:
                    return web.json_response(self._issue())
            return web.json_response({"access_token": self.token, "device_id": "DEV1",
                                      "user_id": BOT})
        if method == "POST" and path == "/refresh":
            js = await request.json()
            with self.cond:
                if not self.refresh_token or js.get("refresh_token") != self.refresh_token:
                    return web.json_response({"errcode": "M_UNKNOWN_TOKEN",
                                              "error": "Unknown refresh token"}, status=401)
                out = self._issue()
            del out["device_id"], out["user_id"]
            return web.json_response(out)
        if method == "GET" and path == "/account/whoami":
            return web.json_response({"user_id": BOT, "device_id": "DEV1"})
        if method == "POST" and re.fullmatch(r"/user/[^/]+/filter", path):
            return web.json_response({"filter_id": "7"})
        if method == "GET" and path == "/sync":
            return await self._sync(request)
        if method == "POST" and path == "/createRoom":
            js = await request.json()
            with self.cond:
                room = f"!dm{next(self._ids)}:fake.test"
                self.created.append((room, js))
            self.create_room(room, members=(BOT,), bot_joined=False)
            return web.json_response({"room_id": room})
        m = re.fullmatch(r"/join/(.+)", path)
        if method == "POST" and m:
            room = m.group(1)
            self.join(room, BOT)
            return web.json_response({"room_id": room})
        m = re.fullmatch(r"/rooms/([^/]+)/send/m\.room\.message/(.+)", path)
        if method == "PUT" and m:
            room, txn = m.groups()
            if len(await request.read()) > self.max_event_bytes:
                return web.json_response({"errcode": "M_TOO_LARGE",
                                          "error": "event too large"}, status=413)
            with self.cond:
                eid = self.txns.get((room, txn))
            if not eid:
                eid = self._append(room, {"type": "m.room.message", "sender": BOT,
                                          "content": await request.json()})
            with self.cond:
                self.txns[(room, txn)] = eid
                lose = self.lose_answers > 0
                self.lose_answers -= lose
            if lose:  # stored, but the answer is lost on the way back (a proxy's 502)
                return web.json_response({"errcode": "M_UNKNOWN"}, status=502)
            return web.json_response({"event_id": eid})
        m = re.fullmatch(r"/rooms/([^/]+)/messages", path)
        if method == "GET" and m:
            room = m.group(1)
            f = json.loads(request.query.get("filter", "{}"))
            limit = int(request.query.get("limit", "10"))
            with self.cond:
                evs = [ev for _, r, ev in self.stream if r == room
                       and ("types" not in f or ev["type"] in f["types"])
                       and ("senders" not in f or ev["sender"] in f["senders"])]
            assert request.query.get("dir") == "b"
            return web.json_response({"chunk": list(reversed(evs))[:limit], "start": "s"})
        m = re.fullmatch(r"/rooms/([^/]+)/state/([^/]+)/(.*)", path)
        if method == "GET" and m:
            room, type_, key = m.groups()
            ev = self.rooms.get(room, {}).get("state", {}).get((type_, key))
            if not ev:
                return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
            if request.query.get("format") == "event":
                return web.json_response(ev)
            return web.json_response(ev["content"])
        return web.json_response({"errcode": "M_UNRECOGNIZED"}, status=404)

    @staticmethod
    def _inline_limit(request):
        """room.timeline.limit of an inline filter (?filter={...}), else None. A stored
        filter's limit is not honoured: a backlog comes whole, as an oversized answer
        from a real server would."""
        f = request.query.get("filter", "")
        if not f.startswith("{"):
            return None
        try:
            limit = json.loads(f)["room"]["timeline"]["limit"]
        except (ValueError, KeyError, TypeError):
            return None
        return limit if isinstance(limit, int) and limit >= 0 else None

    async def _sync(self, request):
        with self.cond:
            self.sync_asks.append((time.monotonic(), request.query.get("since")))
            self.syncing += 1
            self.most_syncing = max(self.most_syncing, self.syncing)
        try:
            return await self._sync_answer(request)
        finally:
            with self.cond:
                self.syncing -= 1

    async def _sync_answer(self, request):
        since = request.query.get("since")
        limit = self._inline_limit(request)
        timeout = int(request.query.get("timeout", "0")) / 1000.0
        start = int(since) if since else 0
        deadline = time.monotonic() + min(timeout, 30)
        while since and self._pos() <= start and time.monotonic() < deadline \
                and not self.closing:
            await asyncio.sleep(0.02)
        with self.cond:
            end = self._pos()
            rooms_join, rooms_invite = {}, {}
            for pos, room, ev in self.stream:
                if pos <= start or pos > end:
                    continue
                if BOT not in self.rooms[room]["members"] and not (
                        ev.get("type") == "m.room.member" and ev.get("state_key") == BOT):
                    continue
                r = rooms_join.setdefault(room, {"state": {"events": []},
                                                 "timeline": {"events": [], "limited": False}})
                r["timeline"]["events"].append(ev)
            for room in list(rooms_join):
                st = rooms_join[room]
                if not since:  # the initial sync: state as state, a short timeline
                    st["state"]["events"] = [e for e in st["timeline"]["events"]
                                             if "state_key" in e]
                    st["timeline"]["events"] = [e for e in st["timeline"]["events"]
                                                if "state_key" not in e][-(limit or 50):]
                elif limit is not None and len(st["timeline"]["events"]) > limit:
                    # A gap: the last `limit` events; state from before them as state.
                    evs = st["timeline"]["events"]
                    cut = len(evs) - limit
                    st["state"]["events"] = [e for e in evs[:cut] if "state_key" in e]
                    st["timeline"]["events"] = evs[cut:]
                    st["timeline"]["limited"] = True
            for pos, room, inviter in self.invites:
                if start < pos <= end and BOT not in self.rooms[room]["members"]:
                    rooms_invite[room] = {"invite_state": {"events": [
                        {"type": "m.room.member", "state_key": BOT, "sender": inviter,
                         "content": {"membership": "invite"}}]}}
        resp = web.json_response({"next_batch": str(end),
                                  "rooms": {"join": rooms_join, "invite": rooms_invite,
                                            "leave": {}}})
        resp.next_batch = str(end)
        return resp
