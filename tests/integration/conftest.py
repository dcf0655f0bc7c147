"""Fixtures for tests that run the real cohort binary (built by `make`)."""
import datetime
import os
import pathlib
import signal
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("COHORT_BIN", str(ROOT / "build" / "cohort"))


class Cohort:
    """Runs build/cohort in a private working directory with its own store."""

    def __init__(self, workdir: pathlib.Path):
        self.workdir = workdir
        self.db = workdir / "cohort.db"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COHORT_")}
        self.env["COHORT_CONFIG"] = ""
        # A test clock from a known morning: dates in replies are known, and no digest
        # falls due mid-test (digest tests move it with at()). Each process starts a
        # minute after the one before, so time never runs backwards between them.
        self.now = datetime.datetime(2026, 11, 25, 9, 0)
        self.rate = 1

    def at(self, iso, rate=1):
        """Sets the clock the next process starts on ("2026-11-25T18:00:00Z")."""
        self.now = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
        self.rate = rate

    def _clock(self):
        self.env["COHORT_FAKE_NOW"] = self.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.env["COHORT_FAKE_RATE"] = str(self.rate)
        self.now += datetime.timedelta(minutes=1)

    def run(self, *args, input=None, timeout=30):
        self._clock()
        return subprocess.run(
            [BIN, *args], input=input, capture_output=True, text=True,
            cwd=self.workdir, env=self.env, timeout=timeout,
        )

    def console(self, script, *args):
        res = self.run("console", *args, input=script)
        assert res.returncode == 0, res.stderr
        return res.stdout

    def popen(self, *args):
        self._clock()
        return subprocess.Popen(
            [BIN, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1, cwd=self.workdir, env=self.env,
        )


class Running:
    """`cohort run -c cohort.toml` in the background; its stderr goes to cohort.log."""

    def __init__(self, cohort, binary=None):
        self.cohort = cohort
        self.binary = binary or BIN
        self.log_path = cohort.workdir / "cohort.log"
        self.proc = None

    def start(self):
        self.cohort._clock()
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary, "run", "-c", "cohort.toml"],
                                     cwd=self.cohort.workdir, env=self.cohort.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._log)
        return self

    def stderr(self):
        return self.log_path.read_text()

    def wait_exit(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self):
        """SIGTERM; the stop must be clean (exit 0)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.wait_exit(10)
            assert rc == 0, self.stderr()


@pytest.fixture
def cohort(tmp_path):
    assert os.access(BIN, os.X_OK), f"{BIN} is not built: run make"
    return Cohort(tmp_path)


def replies(transcript: str):
    """Splits a piped console transcript into (speaker> line, reply text) pairs."""
    out = []
    for block in transcript.strip().split("\n\n"):
        head, _, body = block.partition("\n")
        out.append((head, body))
    return out
