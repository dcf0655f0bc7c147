"""docker-compose.yml must work with Debian 12's docker-compose 1.29 and with compose v2."""
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
# Running at scale: PostgreSQL and two cohort processes on different shards.
SCALE = ROOT / "docker-compose.scale.yml"


def top_level_keys(text):
    return [m.group(1) for m in re.finditer(r"^([A-Za-z_][\w-]*):", text, re.M)]


@pytest.mark.parametrize("path,services", [(COMPOSE, 1), (SCALE, 3)])
def test_compose_file_uses_only_what_both_compose_versions_read(path, services):
    text = path.read_text()
    # v1.29 refuses a top-level `name:`; `version:` is obsolete in v2 (a warning there).
    assert top_level_keys(text) == ["services", "volumes"]
    restarts = re.findall(r"^\s+restart:\s*(\S+)", text, re.M)
    # A rejected token exits 2 and never fixes itself: a bounded on-failure, never a loop.
    assert len(restarts) == services and all(
        re.fullmatch(r"on-failure:[1-9]\d?", r) for r in restarts), restarts


def test_the_scale_example_runs_each_shard_once_on_one_database():
    text = SCALE.read_text()
    configs = re.findall(r'command: \["run", "-c", "/config/(cohort-[ab]\.toml)"\]', text)
    assert configs == ["cohort-a.toml", "cohort-b.toml"]
    # Each process its own shard of the same count, as the header tells the operator.
    assert "cohort-a.toml:  [discord] shard_count = 2  shards = [0]" in text
    assert "cohort-b.toml:  [discord] shard_count = 2  shards = [1]" in text
    urls = re.findall(r"COHORT_STORE_URL=(\S+)", text)
    assert len(urls) == 2 and urls[0] == urls[1] and urls[0].startswith("postgresql://")
    assert "image: postgres:15" in text


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.scale.yml"])
def test_debians_docker_compose_accepts_the_file(tmp_path, name):
    exe = shutil.which("docker-compose")
    if exe is None:  # Debian's docker-compose is not a build dependency: say it was not run
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    (tmp_path / "docker-compose.yml").write_text((ROOT / name).read_text())
    (tmp_path / "config").mkdir()
    (tmp_path / ".env").write_text("POSTGRES_PASSWORD=example\n")
    res = subprocess.run([exe, "config"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert "restart: on-failure:5" in res.stdout
