"""cohort's HTTP server (http.listen): /healthz, /metrics, and what hostile requests get."""
import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from conftest import Running


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Web(Running):
    """cohort run with http.listen on a free port (and whatever else extra says)."""

    def __init__(self, cohort, extra=""):
        super().__init__(cohort)
        self.port = free_port()
        (cohort.workdir / "cohort.toml").write_text(f"""
[http]
listen = "127.0.0.1:{self.port}"
public_url = "http://127.0.0.1:{self.port}"
{extra}
""")

    def start(self):
        super().start()
        deadline = time.time() + 10
        while time.time() < deadline:
            if "listening on http://" in self.stderr():
                return self
            assert self.proc.poll() is None, self.stderr()
            time.sleep(0.05)
        raise AssertionError("the HTTP server did not start: " + self.stderr())

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def web(cohort):
    made = []

    def make(extra=""):
        w = Web(cohort, extra).start()
        made.append(w)
        return w
    yield make
    for w in made:
        w.stop()


def get(url, method="GET", headers=None, data=None, timeout=10):
    """(status, headers, body) without raising on 4xx/5xx."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def raw(port, data, timeout=10):
    """Sends bytes as they are; returns everything the server sent before it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return out


def status_of(response):
    line = response.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/1.") else None


SECURITY = {
    "Content-Security-Policy": "default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def assert_hardened(headers):
    for name, want in SECURITY.items():
        assert want in (headers.get(name) or ""), (name, dict(headers))
    assert "Set-Cookie" not in headers


def test_healthz_answers_with_the_store_and_no_platform(web):
    w = web()
    status, headers, body = get(w.url("/healthz"))
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "store": "ok", "platforms": []}
    assert_hardened(headers)


def test_http_listen_is_strict(cohort):
    for bad in ["8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "example.org:80",
                "127.0.0.1:80x", ":8080"]:
        (cohort.workdir / "bad.toml").write_text(f'[http]\nlisten = "{bad}"\n')
        res = cohort.run("check-config", "-c", "bad.toml")
        assert res.returncode == 2, (bad, res.stdout, res.stderr)
        assert "bad.toml:2: http.listen" in res.stderr, res.stderr
        assert "127.0.0.1:8080" in res.stderr
    (cohort.workdir / "bad.toml").write_text('[http]\npublic_url = "ftp://x"\n')
    res = cohort.run("check-config", "-c", "bad.toml")
    assert res.returncode == 2 and "bad.toml:2: http.public_url" in res.stderr, res.stderr
    (cohort.workdir / "bad.toml").write_text('[http]\nlistn = "127.0.0.1:8080"\n')
    res = cohort.run("check-config", "-c", "bad.toml")
    assert res.returncode == 2 and 'did you mean "listen"' in res.stderr, res.stderr
    (cohort.workdir / "ok.toml").write_text(
        '[http]\nlisten = "127.0.0.1:8080"\npublic_url = "https://cohort.example.org"\n')
    res = cohort.run("check-config", "-c", "ok.toml")
    assert res.returncode == 0, res.stderr
    assert "http.listen" in res.stdout and "127.0.0.1:8080" in res.stdout


def test_a_port_in_use_is_a_clear_error(cohort):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        (cohort.workdir / "cohort.toml").write_text(f'[http]\nlisten = "127.0.0.1:{port}"\n')
        res = cohort.run("run", "-c", "cohort.toml", timeout=20)
        assert res.returncode == 1, res.stderr
        assert f"cannot listen on 127.0.0.1:{port} (http.listen)" in res.stderr
    finally:
        s.close()


def test_wrong_methods_get_405_with_allow(web):
    w = web()
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]:
        for path in ["/healthz", "/g/abc", "/nothing"]:
            status, headers, body = get(w.url(path), method=method,
                                        data=b"" if method in ("POST", "PUT", "PATCH") else None)
            assert status == 405, (method, path, status, body)
            assert headers["Allow"] == "GET, HEAD", (method, path)
            assert_hardened(headers)
    # A method libwebsockets does not know never reaches a route either.
    out = raw(w.port, b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=8)
    assert status_of(out) in (None, 400, 403, 405), out[:200]  # lws refuses it itself
    assert b'"status"' not in out


def test_head_sends_the_headers_only(web):
    w = web()
    out = raw(w.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(out) == 200, out
    head, _, body = out.partition(b"\r\n\r\n")
    assert body == b""
    assert b"content-length: " in head.lower()


def test_unknown_paths_and_traversal_go_nowhere(web):
    w = web()
    for path in [b"/nothing", b"/g/../../etc/passwd", b"/%2e%2e/%2e%2e/etc/passwd",
                 b"/..%2f..%2fetc%2fpasswd", b"/g/..\\..\\etc\\passwd", b"//etc/passwd",
                 b"/healthz/../../../../etc/passwd", b"/./././etc/passwd", b"/healthz%00",
                 b"/g/%00", b"/etc/passwd"]:
        out = raw(w.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(out) in (None, 400, 403, 404), (path, out[:300])
        assert b"root:" not in out


def test_oversized_headers_are_refused(web):
    w = web()
    big = b"X-Filler: " + b"a" * 8000 + b"\r\n"
    out = raw(w.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert status_of(out) != 200, out[:300]
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 60) for i in range(200))
    out = raw(w.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status_of(out) != 200, out[:300]
    # The server is still there for everyone else.
    assert get(w.url("/healthz"))[0] == 200


def test_bodies_where_none_is_taken_are_refused(web):
    w = web()
    out = raw(w.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
              + b"x" * 1000)
    assert status_of(out) == 413, out[:300]
    out = raw(w.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n0\r\n\r\n")
    assert status_of(out) == 413, out[:300]
    assert get(w.url("/healthz"))[0] == 200


def test_a_long_path_is_refused(web):
    w = web()
    out = raw(w.port, b"GET /g/" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(out) in (None, 404, 414), out[:300]
    assert b'"status"' not in out


def test_a_slow_client_is_dropped_and_others_are_served(web):
    w = web()
    with socket.create_connection(("127.0.0.1", w.port), timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.time()
        # One header byte now and then: the whole request never arrives in time.
        closed = False
        while time.time() - started < 25:
            try:
                s.sendall(b"X")
            except OSError:
                closed = True
                break
            # Meanwhile others are answered at once.
            t0 = time.time()
            assert get(w.url("/healthz"), timeout=5)[0] == 200
            assert time.time() - t0 < 3
            s.settimeout(1.0)
            try:
                if s.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
        elapsed = time.time() - started
        assert closed, "a client trickling its headers was never dropped"
        assert elapsed < 20, elapsed   # WEB_HEADER_TIMEOUT_S is 5 s


def test_keep_alive_serves_several_requests(web):
    w = web()
    with socket.create_connection(("127.0.0.1", w.port), timeout=10) as s:
        for _ in range(3):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(4096)
            head, _, body = buf.partition(b"\r\n\r\n")
            n = int([ln.split(b":")[1] for ln in head.split(b"\r\n")
                     if ln.lower().startswith(b"content-length:")][0])
            while len(body) < n:
                body += s.recv(4096)
            assert status_of(head) == 200
            assert json.loads(body)["status"] == "ok"
