"""What the fake servers share: an aiohttp app on 127.0.0.1 in a thread of the test
process, and waiting on what it recorded."""
import asyncio
import json
import re
import threading
import time
import urllib.parse

from aiohttp import web


class FakeServer:
    def __init__(self):
        self.cond = threading.Condition()   # guards what the fake records
        self.loop = None
        self.port = None
        self.closing = False                 # long polls return at once
        self.requests = []                   # what arrived: see record()
        self.faults = []                     # see fault()

    def routes(self, app):
        """Adds the fake's routes to app (subclasses)."""
        raise NotImplementedError

    def start(self):
        ready = threading.Event()
        self.thread = threading.Thread(target=self._thread, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10), f"{type(self).__name__} did not start"

    def _thread(self, ready):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def stop(self):
        async def shutdown():
            self.closing = True
            await asyncio.sleep(0.1)
            await self.runner.cleanup()
        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def fault(self, method, path, status=None, body=None, times=1, delay=0.0, headers=None):
        """The next `times` requests of method whose path matches the regex path wait
        `delay` seconds, then (with a status) get that status and JSON body instead."""
        with self.cond:
            self.faults.append(dict(method=method, path=re.compile(path), status=status,
                                    body=body, times=times, delay=delay,
                                    headers=headers or {}))

    async def record(self, request):
        """A request as the tests see it, and the fault it meets (or None). The entry is
        recorded by done() once the answer's status is known."""
        body = await request.read()
        try:
            js = json.loads(body) if body else None
        except ValueError:
            js = None
        entry = {"t": time.monotonic(), "method": request.method,
                 "path": urllib.parse.unquote(request.path), "query": dict(request.query),
                 "json": js, "status": None, "headers": dict(request.headers)}
        rule = None
        with self.cond:
            for f in self.faults:
                if f["times"] > 0 and f["method"] == request.method and \
                        f["path"].search(entry["path"]):
                    f["times"] -= 1
                    rule = f
                    break
        if rule and rule["delay"]:
            await asyncio.sleep(rule["delay"])
        return entry, rule

    def done(self, entry, status):
        entry["status"] = status
        with self.cond:
            self.requests.append(entry)
            self.cond.notify_all()

    def wait_for(self, pred, timeout=5.0, what="a condition"):
        """Waits until pred() (called under the lock) returns something true; returns it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = pred()
                if got:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}")
                self.cond.wait(min(left, 0.05))
