"""A fake Discord (REST + gateway on one aiohttp app) for the integration tests.

It runs on 127.0.0.1 in a thread of the test process, records everything it
receives with timestamps, and can inject the faults the gateway and REST API
produce: close codes, op 7 and op 9, missing heartbeat ACKs, replayed events,
malformed or huge frames, 429s (per route and global), 5xx answers and delays.

Shards: GET /gateway/bot recommends `shards` and says `max_concurrency`; each
connection records the [id, count] its IDENTIFY (or the session it resumed)
named, and dispatch() of a guild's event goes to the connection of that
guild's shard, as Discord routes it.
"""
import asyncio
import itertools
import json
import re
import time
import urllib.error
import urllib.request

from aiohttp import WSMsgType, web

from fakebase import FakeServer

TOKEN = "test-bot-token.abc"
APP_ID = "900000000000000001"
BOT_USER_ID = "900000000000000002"


class Connection:
    def __init__(self, index, path):
        self.index = index
        self.path = path
        self.opened = time.monotonic()
        self.hello_at = None
        self.received = []            # (t, payload dict or raw str)
        self.sizes = []               # the byte length of each message received
        self.outbox = asyncio.Queue()
        self.closed_by_client = None  # the client's close code
        self.closed_by_server = None
        self.live = True
        self.shard = None             # [id, count] from its IDENTIFY or resumed session


class FakeDiscord(FakeServer):
    def __init__(self, heartbeat_interval=1000, shards=1, max_concurrency=1):
        super().__init__()
        self.shards = shards                  # what GET /gateway/bot recommends
        self.max_concurrency = max_concurrency
        self.session_shard = {}               # session_id -> [id, count]
        self.hold_hello = False               # new connections get no HELLO (never ready)
        self.heartbeat_interval = heartbeat_interval
        self.connections = []
        self.sessions = {}            # session_id -> list of (seq, type, d)
        self.ack = True
        self.replay_on_resume = 0     # re-send this many already-sent events after RESUMED
        self._ids = itertools.count(1)
        self.messages = {}            # nonce -> message id (enforce_nonce)
        self.last_session = None
        self.commands = {}            # None (global) or guild id -> the registered commands
        self.channels = {}            # channel id -> messages posted there, oldest first
        self.lose_answers = 0         # answer this many message posts 500 *after* posting
        self.slow_posts = 0           # answer this many message posts late (posted at once)
        self.slow_post_s = 0.0        # by this many seconds
        self.arrived = []             # (channel, nonce) of each message post, as it arrives
        self.counted = []             # wall time of each request the global limit counts
        self.guilds = []              # the servers the bot is in (GET /users/@me/guilds)
        self.originals = {}           # interaction token -> its answer (callback, edits)
        self.followups = {}           # interaction token -> follow-up messages, oldest first
        self.dm_channels = {}         # DM channel id -> the user (POST /users/@me/channels)
        self.dm_blocked = set()       # users who accept no DMs: posts there get 403 50007

    def routes(self, app):
        app.router.add_get("/gateway", self._ws)
        app.router.add_get("/resume", self._ws)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)

    @property
    def api_url(self):
        return f"http://127.0.0.1:{self.port}/api/v10"

    # ---- waiting (test thread) ----

    def gateway_ops(self, op, conn=None):
        conns = self.connections if conn is None else [self.connections[conn]]
        return [(c.index, t, p) for c in conns for (t, p) in c.received
                if isinstance(p, dict) and p.get("op") == op]

    def wait_op(self, op, count=1, timeout=10.0):
        return self.wait_for(lambda: len(self.gateway_ops(op)) >= count and self.gateway_ops(op),
                             timeout, f"{count} gateway op {op}")

    def ready_connection(self, timeout=10.0):
        """Waits until the client identified or resumed on the newest connection."""
        def ok():
            if not self.connections:
                return None
            c = self.connections[-1]
            return c if any(isinstance(p, dict) and p.get("op") in (2, 6)
                            for _, p in c.received) else None
        return self.wait_for(ok, timeout, "an identified connection")

    def rest(self, method=None, pattern=None):
        return [r for r in self.requests
                if (method is None or r["method"] == method)
                and (pattern is None or re.search(pattern, r["path"]))]

    def wait_rest(self, method, pattern, count=1, timeout=5.0):
        return self.wait_for(lambda: len(self.rest(method, pattern)) >= count
                             and self.rest(method, pattern), timeout,
                             f"{count} {method} {pattern}")

    # ---- injecting (test thread) ----

    def _put(self, item, conn=None):
        c = self.connections[-1] if conn is None else self.connections[conn]
        self.loop.call_soon_threadsafe(c.outbox.put_nowait, item)

    @staticmethod
    def shard_of(guild_id, count):
        """The shard Discord sends a guild's events to; a DM (None) goes to shard 0."""
        return 0 if guild_id is None else (int(guild_id) >> 22) % count

    def shard_connection(self, shard_id):
        """The index of the newest live connection of a shard, or None."""
        for c in reversed(self.connections):
            if c.live and c.shard and c.shard[0] == shard_id:
                return c.index
        return None

    def identifies(self):
        """[(monotonic time, [id, count] or None)] of every IDENTIFY, in order."""
        return sorted((t, p["d"].get("shard")) for (_, t, p) in self.gateway_ops(2))

    def dispatch(self, type_, d, conn=None):
        """Sends an event on conn, or where Discord would: with sharded connections, the
        connection of the guild's shard; otherwise the newest connection."""
        if conn is None:
            counts = {c.shard[1] for c in self.connections if c.shard}
            if counts and max(counts) > 1:
                shard = self.shard_of(d.get("guild_id"), max(counts))
                conn = self.shard_connection(shard)
                assert conn is not None, f"no live connection of shard {shard}"
        self._put(("dispatch", type_, d), conn)

    # ---- several processes: each runs some shards, all on this one fake ----

    def guild_connections(self, guild_id):
        """The indexes of the live connections Discord sends a guild's events to: every
        connection whose own [id, count] covers the guild. Several processes each run
        their shards on this fake; while a bot reshards, connections of two counts are
        live at once and a guild's events reach one connection of each."""
        with self.cond:
            return [c.index for c in self.connections
                    if c.live and c.shard and c.shard[0] == self.shard_of(guild_id, c.shard[1])]

    def dispatch_shard(self, type_, d, shard, count):
        """Sends an event to shard [shard, count] as Discord does: on its live connection,
        or, while it has none (its process died), into its newest session's log, which a
        RESUME of that session delivers."""
        def put():
            for c in reversed(self.connections):
                if c.live and c.shard == [shard, count]:
                    c.outbox.put_nowait(("dispatch", type_, d))
                    return
            sids = [s for s, sh in self.session_shard.items() if sh == [shard, count]]
            assert sids, f"shard [{shard}, {count}] never identified"
            log = self.sessions[sids[-1]]
            log.append((len(log) + 1, type_, d))
        self.loop.call_soon_threadsafe(put)

    def send_raw(self, text):
        self._put(("raw", text))

    def send_op(self, op, d=None, conn=None):
        self._put(("op", op, d), conn)

    def close(self, code, conn=None):
        self._put(("close", code), conn)

    def blast(self, payloads, rate):
        """Sends INTERACTION_CREATE payloads at a fixed rate on the newest connection
        (the benchmark's load); returns {interaction id: monotonic time sent}."""
        sent = {}

        async def run():
            conn = self.connections[-1]
            start = time.monotonic()
            for i, d in enumerate(payloads):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent[d["id"]] = time.monotonic()
                await self._dispatch(conn.ws, conn.session, "INTERACTION_CREATE", d)
        asyncio.run_coroutine_threadsafe(run(), self.loop).result(len(payloads) / rate + 60)
        return sent

    # ---- the gateway ----

    def _note(self, fn):
        with self.cond:
            fn()
            self.cond.notify_all()

    async def _ws(self, request):
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = Connection(len(self.connections), request.path_qs)
        session = {"id": None}
        conn.ws, conn.session = ws, session
        self._note(lambda: self.connections.append(conn))
        if self.hold_hello:
            async for _ in ws:
                pass
            conn.live = False
            return ws
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval}})
        conn.hello_at = time.monotonic()
        receive = asyncio.ensure_future(ws.receive())
        outgoing = asyncio.ensure_future(conn.outbox.get())
        item_sent = None
        try:
            while True:
                done, _ = await asyncio.wait({receive, outgoing},
                                             return_when=asyncio.FIRST_COMPLETED)
                if receive in done:
                    msg = receive.result()
                    if msg.type == WSMsgType.TEXT:
                        await self._on_client(ws, conn, session, msg.data)
                        receive = asyncio.ensure_future(ws.receive())
                    else:
                        if msg.type == WSMsgType.CLOSE:
                            self._note(lambda: setattr(conn, "closed_by_client", msg.data))
                        break
                if outgoing in done:
                    item = outgoing.result()
                    if item[0] == "close":
                        self._note(lambda: setattr(conn, "closed_by_server", item[1]))
                        await ws.close(code=item[1])
                        break
                    await self._send_item(ws, session, item)
                    item_sent = item
                    outgoing = asyncio.ensure_future(conn.outbox.get())
        finally:
            conn.live = False
            # Events queued for this connection go to the session log: a resume sends them.
            pending = []
            if outgoing.done() and not outgoing.cancelled():
                taken = outgoing.result()
                if taken is not item_sent:
                    pending.append(taken)
            while not conn.outbox.empty():
                pending.append(conn.outbox.get_nowait())
            for item in pending:
                if item[0] == "dispatch" and session["id"]:
                    log = self.sessions[session["id"]]
                    log.append((len(log) + 1, item[1], item[2]))
            receive.cancel()
            outgoing.cancel()
            if not ws.closed:
                await ws.close()
        return ws

    async def _send_item(self, ws, session, item):
        if item[0] == "raw":
            await ws.send_str(item[1])
        elif item[0] == "op":
            await ws.send_json({"op": item[1], "d": item[2]})
        elif item[0] == "dispatch":
            await self._dispatch(ws, session, item[1], item[2])

    async def _dispatch(self, ws, session, type_, d):
        # Logged first, as Discord does: a client that resumes gets what it missed.
        log = self.sessions.setdefault(session["id"], [])
        seq = len(log) + 1
        log.append((seq, type_, d))
        if not ws.closed:
            await ws.send_json({"op": 0, "s": seq, "t": type_, "d": d})

    def dispatch_logged(self, type_, d):
        """Queues an event in the newest session even while no connection is open: a
        resume delivers it. (dispatch() needs a live connection.)"""
        def put():
            conn = self.connections[-1] if self.connections else None
            if conn is not None and conn.live:
                conn.outbox.put_nowait(("dispatch", type_, d))
            else:
                sid = self.last_session
                log = self.sessions.setdefault(sid, [])
                log.append((len(log) + 1, type_, d))
        self.loop.call_soon_threadsafe(put)

    async def _on_client(self, ws, conn, session, text):
        try:
            p = json.loads(text)
        except ValueError:
            p = text
        self._note(lambda: (conn.received.append((time.monotonic(), p)),
                            conn.sizes.append(len(text.encode()))))
        if not isinstance(p, dict):
            return
        op, d = p.get("op"), p.get("d")
        if op == 1:
            if self.ack:
                await ws.send_json({"op": 11})
        elif op == 2:
            if d.get("token") != TOKEN:
                self._note(lambda: setattr(conn, "closed_by_server", 4004))
                await ws.close(code=4004)
                return
            if d.get("intents", 0) & ~((1 << 9) | (1 << 15)):
                await ws.close(code=4013)
                return
            shard = d.get("shard")
            if shard is not None and not (isinstance(shard, list) and len(shard) == 2
                                          and 0 <= shard[0] < shard[1]):
                await ws.close(code=4010)
                return
            session["id"] = f"session-{next(self._ids)}"
            self.sessions[session["id"]] = []
            self.last_session = session["id"]
            self.session_shard[session["id"]] = shard
            self._note(lambda: setattr(conn, "shard", shard))
            await self._dispatch(ws, session, "READY", {
                "v": 10, "session_id": session["id"],
                "resume_gateway_url": f"ws://127.0.0.1:{self.port}/resume",
                "user": {"id": BOT_USER_ID, "username": "cohort", "bot": True},
                "application": {"id": APP_ID, "flags": 0}, "guilds": []})
        elif op == 6:
            sid, seq = d.get("session_id"), d.get("seq", 0)
            if d.get("token") != TOKEN:
                await ws.close(code=4004)
                return
            if sid not in self.sessions:
                await ws.send_json({"op": 9, "d": False})
                return
            session["id"] = sid
            self.last_session = sid
            self._note(lambda: setattr(conn, "shard", self.session_shard.get(sid)))
            log = self.sessions[sid]
            first = max(0, seq - self.replay_on_resume)
            for s, t, dd in log[first:]:
                await ws.send_json({"op": 0, "s": s, "t": t, "d": dd})
            await self._dispatch(ws, session, "RESUMED", {})

    # ---- REST ----

    @web.middleware
    async def _middleware(self, request, handler):
        if request.path.startswith("/api/") and "/interactions/" not in request.path \
                and "/webhooks/" not in request.path:
            with self.cond:
                self.counted.append(time.time())   # Discord's global limit counts it
        entry, rule = await self.record(request)
        if rule and rule["status"]:
            resp = web.json_response(rule["body"] or {"message": "fault"}, status=rule["status"])
            if rule["status"] == 429 and rule["body"]:
                resp.headers["Retry-After"] = str(int(rule["body"].get("retry_after", 1)) + 1)
                if rule["body"].get("global"):
                    resp.headers["X-RateLimit-Global"] = "true"
        else:
            resp = await handler(request)
        self.done(entry, resp.status)
        return resp

    async def _rest(self, request):
        path = "/" + request.match_info["tail"]
        auth = request.headers.get("Authorization")
        if auth != f"Bot {TOKEN}":
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        if request.method == "GET" and path == "/gateway/bot":
            return web.json_response({
                "url": f"ws://127.0.0.1:{self.port}/gateway", "shards": self.shards,
                "session_start_limit": {"total": 1000, "remaining": 999,
                                        "reset_after": 1000,
                                        "max_concurrency": self.max_concurrency}})
        if request.method == "GET" and path == "/applications/@me":
            return web.json_response({"id": APP_ID, "name": "cohort"})
        m = re.fullmatch(r"/applications/\d+(?:/guilds/(\d+))?/commands", path)
        if request.method == "PUT" and m:
            body = await request.json()
            with self.cond:
                self.commands[m.group(1)] = body
            return web.json_response(body)
        if request.method == "GET" and m:
            with self.cond:
                return web.json_response(self.commands.get(m.group(1), []))
        if request.method == "GET" and path == "/users/@me/guilds":
            after = int(request.query.get("after", "0"))
            limit = int(request.query.get("limit", "200"))
            ids = sorted(int(g) for g in self.guilds if int(g) > after)[:limit]
            return web.json_response([{"id": str(g), "name": f"server {g}"} for g in ids])
        m = re.fullmatch(r"/interactions/\d+/([^/]+)/callback", path)
        if request.method == "POST" and m:
            body = await request.json()
            with self.cond:
                if m.group(1) in self.originals:
                    return web.json_response({"message": "Interaction has already been "
                                              "acknowledged.", "code": 40060}, status=400)
                if body.get("type") == 4:
                    self.originals[m.group(1)] = dict(body.get("data") or {},
                                                      id=str(next(self._ids)))
                elif body.get("type") == 5:  # the "thinking" placeholder
                    self.originals[m.group(1)] = {"id": str(next(self._ids)), "content": "",
                                                  "embeds": [], "flags": 128}
            return web.Response(status=204)
        m = re.fullmatch(r"/webhooks/\d+/([^/]+)/messages/@original", path)
        if request.method == "PATCH" and m:
            body = await request.json()
            with self.cond:
                orig = self.originals.setdefault(m.group(1), {"id": str(next(self._ids))})
                orig.update(body)
                orig["flags"] = orig.get("flags", 0) & ~128
                return web.json_response(dict(orig))
        if request.method == "GET" and m:
            with self.cond:
                orig = self.originals.get(m.group(1))
            if orig is None:
                return web.json_response({"message": "Unknown Message", "code": 10008},
                                         status=404)
            return web.json_response(orig)
        m = re.fullmatch(r"/webhooks/\d+/([^/]+)", path)
        if request.method == "POST" and m:
            body = await request.json()
            mid = str(next(self._ids))
            with self.cond:
                self.followups.setdefault(m.group(1), []).append(dict(body, id=mid))
            if request.query.get("wait") == "true":
                return web.json_response(dict(body, id=mid))
            return web.Response(status=204)
        if request.method == "POST" and path == "/users/@me/channels":
            user = str((await request.json()).get("recipient_id", ""))
            if not user.isdigit():
                return web.json_response({"message": "Invalid Form Body", "code": 50035},
                                         status=400)
            cid = "9" + user  # Discord gives the same DM channel every time
            with self.cond:
                self.dm_channels[cid] = user
            return web.json_response({"id": cid, "type": 1, "recipients": [
                {"id": user, "username": f"user{user}"}]})
        m = re.fullmatch(r"/channels/(\d+)/messages", path)
        if request.method == "POST" and m and self.dm_channels.get(m.group(1)) in self.dm_blocked:
            return web.json_response({"message": "Cannot send messages to this user",
                                      "code": 50007}, status=403)
        if request.method == "GET" and m:
            limit = int(request.query.get("limit", "50"))
            with self.cond:
                newest_first = list(reversed(self.channels.get(m.group(1), [])))[:limit]
            return web.json_response(newest_first)
        if request.method == "POST" and m:
            body = await request.json()
            nonce = body.get("nonce")
            with self.cond:
                self.arrived.append((m.group(1), nonce))
                self.cond.notify_all()
            if nonce and body.get("enforce_nonce") and nonce in self.messages:
                mid = self.messages[nonce]
            else:
                mid = str(next(self._ids))
                if nonce:
                    self.messages[nonce] = mid
                with self.cond:
                    self.channels.setdefault(m.group(1), []).append(dict(
                        body, id=mid, channel_id=m.group(1),
                        author={"id": BOT_USER_ID, "username": "cohort", "bot": True}))
            with self.cond:
                lose = self.lose_answers > 0
                self.lose_answers -= lose
                slow = self.slow_posts > 0
                self.slow_posts -= slow
            if slow:  # posted; the answer takes its time (a sender may die meanwhile)
                await asyncio.sleep(self.slow_post_s)
            if lose:  # posted, but the bot never learns it
                return web.json_response({"message": "upstream lost"}, status=502)
            resp = web.json_response({"id": mid, "channel_id": m.group(1), "nonce": nonce})
            resp.headers["X-RateLimit-Limit"] = "5"
            resp.headers["X-RateLimit-Remaining"] = "4"
            resp.headers["X-RateLimit-Reset-After"] = "1.0"
            resp.headers["X-RateLimit-Bucket"] = "channel-messages"
            return resp
        return web.json_response({"message": "404: Not Found", "code": 0}, status=404)


class InteractionSender:
    """Discord's side of HTTP interactions: an application key pair made here (Ed25519,
    python3-cryptography), and signed POSTs of interactions to cohort's /interactions
    as Discord sends them (X-Signature-Ed25519 over X-Signature-Timestamp + body)."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        self.key = Ed25519PrivateKey.generate()
        self.public_key = self.key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw).hex()
        self.sent = []   # (monotonic time sent, status, answer) of each post

    def sign(self, timestamp, body):
        return self.key.sign(timestamp.encode() + body).hex()

    def post(self, url, payload, timestamp=None, signature=None, headers=None, timeout=10):
        """POSTs payload (a dict, or bytes as they are) signed, unless signature or
        headers say otherwise (headers: the exact headers to send, None values left
        out). Returns (HTTP status, the answer parsed as JSON or its text, seconds)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        ts = timestamp or str(int(time.time()))
        h = {"Content-Type": "application/json", "User-Agent": "Discord-Interactions/1.0",
             "X-Signature-Timestamp": ts,
             "X-Signature-Ed25519": signature or self.sign(ts, body)}
        if headers is not None:
            h = {k: v for k, v in dict(h, **headers).items() if v is not None}
        req = urllib.request.Request(url, data=body, headers=h, method="POST")
        t = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        took = time.monotonic() - t
        try:
            answer = json.loads(text)
        except ValueError:
            answer = text
        self.sent.append((t, status, answer))
        return status, answer, took


# The bot's permissions in a channel where the digest can go: View Channel, Send Messages,
# Embed Links, Read Message History.
DIGEST_PERMS = str((1 << 10) | (1 << 11) | (1 << 14) | (1 << 16))


def interaction(id_, name, options=None, guild="100", channel="200", user="300",
                username="ana", permissions="0", type_=2, app_permissions=DIGEST_PERMS,
                channel_type=0):
    """An INTERACTION_CREATE payload for a slash command (type 2) or autocomplete (4).
    app_permissions: the bot's own permissions in the channel, as Discord sends them."""
    return {
        "id": str(id_), "application_id": APP_ID, "type": type_,
        "token": f"tok-{id_}", "version": 1, "guild_id": guild, "channel_id": channel,
        "channel": {"id": channel, "type": channel_type},
        "app_permissions": app_permissions,
        "member": {"user": {"id": user, "username": username, "global_name": None},
                   "nick": None, "permissions": permissions},
        "data": {"id": "1", "name": name, "type": 1, "options": options or []},
    }
