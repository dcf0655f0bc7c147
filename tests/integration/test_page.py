"""The group's page: /dashboard on every platform, and the page itself in a real browser."""
from conftest import replies
from fake_discord import APP_ID, TOKEN, FakeDiscord, interaction

import pytest


def test_console_dashboard_says_what_the_admin_must_set(cohort):
    out = replies(cohort.console("/dashboard\n/dashboard on\n/help dashboard\n", "--as", "ana"))
    assert "http.listen" in out[0][1] and "http.public_url" in out[0][1]
    assert "http.public_url" in out[1][1] and "Nothing was changed" in out[1][1]
    assert "dashboard [on|off|reset]" in out[2][1]


@pytest.fixture
def fake():
    f = FakeDiscord(heartbeat_interval=1000)
    f.start()
    yield f
    f.stop()


def test_discord_registers_dashboard_and_an_admin_only_setup(cohort, fake):
    (cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "{TOKEN}"
api_url = "{fake.api_url}"
""")
    res = cohort.run("register-commands")
    assert res.returncode == 0, res.stderr
    put = fake.wait_rest("PUT", rf"/applications/{APP_ID}/commands")[0]
    names = {c["name"]: c for c in put["json"]}
    assert "dashboard" in names
    assert "default_member_permissions" not in names["dashboard"]
    setup = names["dashboard-setup"]
    assert setup["default_member_permissions"] == "32"
    action = setup["options"][0]
    assert action["name"] == "action" and action["required"] is True
    assert [c["value"] for c in action["choices"]] == ["on", "off", "reset"]


def test_discord_dashboard_answers_the_asker_only(cohort, fake):
    from conftest import Running
    (cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "{TOKEN}"
api_url = "{fake.api_url}"
""")
    bot = Running(cohort).start()
    try:
        fake.ready_connection()
        action = [{"type": 3, "name": "action", "value": "on"}]
        fake.dispatch("INTERACTION_CREATE", interaction(3100, "dashboard-setup", action,
                                                        permissions=str(1 << 5)))
        fake.dispatch("INTERACTION_CREATE", interaction(3101, "dashboard", []))
        for ix in (3100, 3101):
            msg = fake.wait_rest("POST", rf"/interactions/{ix}/tok-{ix}/callback")[0]
            data = msg["json"]["data"]
            e = data["embeds"][0]
            text = (e.get("title", "") + "\n" + e.get("description", "")).replace("\\", "")
            assert "http.public_url" in text, text
            assert data["flags"] == 64    # ephemeral
    finally:
        bot.stop()


# ---- the page itself, served by `cohort run` and loaded in headless Chromium ----

import json
import os
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from conftest import ROOT, Running

HOSTILE = "<img/src=x/onerror=alert(1)>"
SCRIPT = (f"@ana /done Kafka built a consumer\n@bob /done Redis, Docker\n"
          f"@{HOSTILE} /done Kubernetes | </q><script>alert(2)</script>\n"
          "@ana /start PostgreSQL\n/dashboard on\n")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Site(Running):
    """cohort run serving HTTP on a free port, over a store the console filled."""

    def __init__(self, cohort):
        super().__init__(cohort)
        self.port = free_port()
        (cohort.workdir / "cohort.toml").write_text(f"""
[http]
listen = "127.0.0.1:{self.port}"
public_url = "http://127.0.0.1:{self.port}/"
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


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


def link_in(text):
    m = re.search(r"http://127\.0\.0\.1:\d+/g/([A-Za-z0-9_-]{32})", text)
    assert m, text
    return m.group(0), m.group(1)


@pytest.fixture
def site(cohort):
    s = Site(cohort)
    transcript = cohort.console(SCRIPT, "--as", "ana", "-c", "cohort.toml")
    s.link, s.token = link_in(transcript)
    s.start()
    yield s
    s.stop()


def test_the_page_and_its_json_are_served_under_the_token_only(cohort, site):
    status, headers, html = get(site.link)
    assert status == 200, html
    assert headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "<script" not in html and HOSTILE not in html
    assert "&lt;img/src=x/onerror=alert(1)&gt;" in html
    status, headers, body = get(site.link + ".json")
    assert status == 200 and headers["content-type"].startswith("application/json")
    data = json.loads(body)
    assert data["group"] == "console:local" and data["members"] == 3
    notes = {f["topic"]: f["note"] for f in data["finishes"]}
    assert notes["Kafka"] == "built a consumer"
    assert notes["Kubernetes"] == "</q><script>alert(2)</script>"
    assert data["days"][-1] == {"date": "2026-11-25", "finished": 4, "done": 4}
    assert [r["member"] for r in data["leaderboard"]["all"]][0] == "bob"
    # Unknown, malformed and revoked tokens are all the same 404.
    other = "A" * 32
    for path in (f"/g/{other}", f"/g/{other}.json", "/g/short", "/g/", f"/g/{site.token}x",
                 f"/g/{site.token}/x"):
        status, _, body = get(site.url(path))
        assert status == 404, path
        assert "console:local" not in body
    res = cohort.console("/dashboard reset\n", "--as", "ana", "-c", "cohort.toml")
    new_link, new_token = link_in(res)
    assert new_token != site.token
    assert get(site.link)[0] == 404 and get(site.link + ".json")[0] == 404
    assert get(new_link)[0] == 200
    cohort.console("/dashboard off\n", "--as", "ana", "-c", "cohort.toml")
    assert get(new_link)[0] == 404


def png_size(path):
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def chromium(*args, timeout=90):
    exe = shutil.which("chromium")
    assert exe, "chromium is not installed: make deps (scripts/deps.sh test) installs it"
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run([exe, "--headless=new", "--no-sandbox", "--disable-gpu",
                              "--no-first-run", "--hide-scrollbars",
                              f"--user-data-dir={profile}", *args],
                             capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_chromium_renders_every_chart_with_its_text_equivalent(cohort, site):
    dom = chromium("--dump-dom", site.link)
    # The charts are in the DOM, each an SVG in a <figure> with its caption and a table.
    for fig in ("progress", "coverage", "calendar"):
        m = re.search(rf'<figure id="{fig}">(.*?)</figure>', dom, re.S)
        assert m, fig
        body = m.group(1)
        assert "<svg" in body and 'role="img"' in body, fig
        assert f'<figcaption id="{fig}-cap">' in body and f'aria-labelledby="{fig}-cap"' in body
        assert '<table class="sr-only">' in body and "<caption>" in body, fig
    assert '<th scope="row">2026-11-25</th><td>4</td><td>4</td>' in dom
    for board in ("week", "month", "all"):
        assert f'id="board-{board}"' in dom
    assert "built a consumer" in dom
    # Hostile text stayed text: no element came from it.
    assert "<img" not in dom and "alert(2)</script>" not in dom
    assert "&lt;/q&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in dom
    # Screenshots for a person to look at: a phone and a wide screen.
    shots = ROOT / "build"
    shots.mkdir(exist_ok=True)
    for width in (390, 1280):
        path = shots / f"page-{width}.png"
        if path.exists():
            path.unlink()
        chromium(f"--window-size={width},2200", f"--screenshot={path}", site.link)
        assert png_size(path) == (width, 2200)
    # And in dark mode (prefers-color-scheme: dark), for a person to compare.
    path = shots / "page-1280-dark.png"
    chromium("--blink-settings=preferredColorScheme=0", "--window-size=1280,2200",
             f"--screenshot={path}", site.link)
    assert png_size(path) == (1280, 2200)
