"""docker-compose.yml must work with Debian 12's docker-compose 1.29 and with compose v2."""
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def top_level_keys(text):
    return [m.group(1) for m in re.finditer(r"^([A-Za-z_][\w-]*):", text, re.M)]


def test_compose_file_uses_only_what_both_compose_versions_read():
    text = COMPOSE.read_text()
    # v1.29 refuses a top-level `name:`; `version:` is obsolete in v2 (a warning there).
    assert top_level_keys(text) == ["services", "volumes"]
    restarts = re.findall(r"^\s+restart:\s*(\S+)", text, re.M)
    # A rejected token exits 2 and never fixes itself: a bounded on-failure, never a loop.
    assert len(restarts) == 1 and re.fullmatch(r"on-failure:[1-9]\d?", restarts[0]), restarts


def test_debians_docker_compose_accepts_the_file(tmp_path):
    exe = shutil.which("docker-compose")
    if exe is None:  # Debian's docker-compose is not a build dependency: say it was not run
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    (tmp_path / "docker-compose.yml").write_text(COMPOSE.read_text())
    (tmp_path / "config").mkdir()
    res = subprocess.run([exe, "config"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert "restart: on-failure:5" in res.stdout
