"""The daily digest through the real binary, on a fast injected clock."""
import sqlite3
import threading
import time

from conftest import replies
from store_view import digests, dump


class Session:
    """A console process whose output is collected as it arrives."""

    def __init__(self, cohort, now, rate):
        cohort.at(now, rate)
        self.proc = cohort.popen("console", "--as", "ana")
        self.out = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.out.append(line)

    def text(self):
        return "".join(self.out)

    def say(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, needle, count=1, timeout=15):
        deadline = time.monotonic() + timeout
        while self.text().count(needle) < count:
            assert time.monotonic() < deadline, f"no {needle!r} x{count} in:\n{self.text()}"
            time.sleep(0.02)

    def close(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0, self.proc.stderr.read()
        self.reader.join(timeout=5)
        return self.text()


def test_two_digest_times_with_a_restart_give_exactly_two_digests(cohort):
    # Run 1: a minute before 18:00 UTC, 10 clock minutes per real second.
    s = Session(cohort, "2026-11-25T17:59:00Z", 600)
    s.say("/done kafka")
    s.wait_for("ana finished Kafka")
    s.wait_for("Daily digest \u2014 Wednesday 25 November")
    s.say("/done docker")
    s.wait_for("ana finished Docker")
    out1 = s.close()
    assert out1.count("Daily digest") == 1
    assert "ana joined the group and finished Kafka" in out1

    # Restart at 18:30: today's digest was posted; tomorrow's comes 23.5 clock hours
    # later (10 clock hours per real second).
    s = Session(cohort, "2026-11-25T18:30:00Z", 36000)
    s.say("/done redis")
    s.wait_for("ana finished Redis")
    s.wait_for("Daily digest \u2014 Thursday 26 November")
    time.sleep(0.5)  # five more clock hours: nothing more is due
    out2 = s.close()
    assert out2.count("Daily digest") == 1
    day2 = out2[out2.index("Daily digest"):]
    assert "ana finished Docker, Redis" in day2  # everything since the last digest
    assert "#1 ana \u2014 3 pts" in day2

    # A third start the same evening posts nothing.
    s = Session(cohort, "2026-11-26T20:00:00Z", 1)
    s.say("/progress")
    s.wait_for("ana's progress")
    assert "Daily digest" not in s.close()
    assert digests(cohort) == [("2026-11-25", 1), ("2026-11-26", 1)]


def test_a_missed_digest_is_posted_when_cohort_comes_back_that_day(cohort):
    cohort.console("/done kafka\n", "--as", "ana")  # at 09:00, before digest time
    s = Session(cohort, "2026-11-25T21:00:00Z", 1)
    s.wait_for("Daily digest \u2014 Wednesday 25 November")
    assert s.close().count("Daily digest") == 1
    # The next morning, the missed evening is not posted late.
    s = Session(cohort, "2026-11-27T08:00:00Z", 1)
    s.say("/help")
    s.wait_for("/done TOPIC")
    assert "Daily digest" not in s.close()
    assert digests(cohort) == [("2026-11-25", 1)]


def test_digest_post_counts_as_todays_digest(cohort):
    cohort.at("2026-11-25T05:00:00Z")  # 06:00 in Berlin
    out = cohort.console("/done kafka\n/digest time 07:30 Europe/Berlin\n", "--as", "ana")
    assert "Daily digest" not in out
    res = cohort.run("digest", "--group", "console:local", "--post")
    assert res.returncode == 0, res.stderr
    assert "Daily digest \u2014 Wednesday 25 November" in res.stdout
    res = cohort.run("digest", "--group", "console:local", "--post")
    assert res.returncode == 0 and res.stdout == ""
    assert "posted already" in res.stderr
    # At 08:00 Berlin time the scheduler sees it was posted and stays quiet.
    cohort.at("2026-11-25T07:00:00Z")
    out = replies(cohort.console("/progress\n", "--as", "ana"))
    assert all("Daily digest" not in body for _, body in out)
    assert digests(cohort) == [("2026-11-25", 1)]
    res = cohort.run("digest", "--group", "discord:1", "--post")
    assert res.returncode == 2 and "no such group" in res.stderr
    # A Discord group with a digest channel, which no console command can make: written
    # into the SQLite file directly.
    con = sqlite3.connect(cohort.db)
    with con:
        con.execute("INSERT INTO group_settings (group_id, digest_channel) VALUES "
                    "('discord:1', '2')")
    con.close()
    res = cohort.run("digest", "--group", "discord:1", "--post")
    assert res.returncode == 2 and "no enabled platform" in res.stderr


def test_a_group_that_turned_the_digest_off_gets_none(cohort):
    cohort.console("/digest channel off\n", "--as", "ana")
    s = Session(cohort, "2026-11-25T18:30:00Z", 1)
    s.say("/help")
    s.wait_for("/done TOPIC")
    assert "Daily digest" not in s.close()


def column(text, name, needle):
    """The display column (wide characters count two) where needle starts on name's line."""
    import unicodedata
    line = next(ln for ln in text.splitlines() if name in ln)
    head = line[:line.index(needle, line.index(name))]
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in head)


def test_small_text_faults_are_gone(cohort):
    out = cohort.console("/leaderboard\n@\u00e9milie_\u00e7\u00e0 /done kafka\n"
                         "@\u65e5\u672c /done redis\n@bo /done docker\n/leaderboard\n"
                         "/done nginx\n/reset nginx\n/undo\n", "--as", "ana")
    assert "Nobody has finished a topic yet." in out
    board = out[out.rindex("Leaderboard"):]
    col = column(board, "bo ", " pt")
    assert column(board, "\u00e9milie_\u00e7\u00e0", " pt") == col
    assert column(board, "\u65e5\u672c", " pt") == col
    assert "It had no status." in out and "It was no status" not in out
    md = cohort.workdir / "one.md"
    md.write_text("- [ ] Basics\n  - [ ] Ownership\n")
    cfg = cohort.workdir / "one.toml"
    cfg.write_text(f'[roadmap]\nfile = "{md}"\n')
    res = cohort.run("roadmap", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "1 topic in 1 section, from" in res.stdout
    res = cohort.run("check-config", "-c", str(cfg))
    assert "roadmap: 1 topic from" in res.stdout


def test_digest_shows_its_settings_and_takes_zones_as_people_type_them(cohort):
    out = cohort.console("/digest\n/digest time europe/berlin\n/digest time 7:30\n"
                         "/digest time Berlin\n/digest time 7:30 Mars/Olympus\n/digest\n",
                         "--as", "ana")
    said = [body for _, body in replies(out)]
    assert "Posted every day at 18:00 (UTC) in this channel." in said[0]
    assert "The digest time is now 18:00 (Europe/Berlin)" in said[1]
    assert "The digest time is now 07:30 (Europe/Berlin)" in said[2]
    assert "\u201cBerlin\u201d is not a time zone" in said[3]
    assert "Did you mean Europe/Berlin? Nothing was changed." in said[3]
    assert "\u201cMars/Olympus\u201d is not a time zone" in said[4]
    assert "Posted every day at 07:30 (Europe/Berlin) in this channel." in said[5]
    assert [(g["digest_time"], g["timezone"]) for g in dump(cohort)["groups"]
            if g["group"] == "console:local"] == [("07:30", "Europe/Berlin")]


def test_a_time_set_after_it_passed_posts_tomorrow_not_now(cohort):
    cohort.console("/done kafka\n", "--as", "ana")  # 09:00 UTC
    cohort.at("2026-11-25T17:00:00Z")
    out = cohort.console("/digest time 16:30\n", "--as", "ana")
    assert "Today's 16:30 has passed: the first digest at the new time comes tomorrow." in out
    assert "Daily digest" not in out
    # The rest of the day (10 clock minutes per real second): nothing.
    s = Session(cohort, "2026-11-25T17:01:00Z", 600)
    time.sleep(2)
    s.say("/help")
    s.wait_for("/done TOPIC")
    assert "Daily digest" not in s.close()
    # The next day at 16:30 it comes.
    s = Session(cohort, "2026-11-26T16:29:00Z", 600)
    s.wait_for("Daily digest \u2014 Thursday 26 November")
    assert s.close().count("Daily digest") == 1
    assert digests(cohort) == [("2026-11-26", 1)]


def test_a_group_nobody_has_spoken_in_gets_no_quiet_day_digest(cohort):
    # It starts after 18:00 with nothing logged: today's digest time has passed in a
    # group nobody has spoken in, so there is no digest, now or after the first /done.
    s = Session(cohort, "2026-11-25T18:01:00Z", 600)
    s.say("/done kafka")
    s.wait_for("ana finished Kafka")
    time.sleep(1)  # the first /done after digest time does not bring it late
    out = s.close()
    assert "Daily digest" not in out and "quiet day" not in out
    s = Session(cohort, "2026-11-26T17:59:00Z", 600)
    s.wait_for("Daily digest \u2014 Thursday 26 November")
    assert "ana joined the group and finished Kafka" in s.close()
    assert digests(cohort) == [("2026-11-26", 1)]


def test_the_digest_shows_notes_and_everyone_tied_at_the_cut(cohort):
    script = "".join(f"@{m} /done kafka\n@{m} /done redis\n" for m in ("ann", "ben", "cat"))
    script += "".join(f"@{m} /done docker\n" for m in ("dan", "eve", "fay", "gus"))
    script += "/done Kafka built a consumer\n"
    cohort.console(script, "--as", "ana")
    res = cohort.run("digest", "--group", "console:local")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "Top " not in out and "  Leaderboard:\n" in out
    # ana, dan, eve, fay and gus share #4: all five are shown, not the first two.
    for m in ("ana", "dan", "eve", "fay", "gus"):
        assert f"  #4 {m} \u2014 1 pt\n" in out, out
    assert "ana joined the group and finished Kafka (\u201cbuilt a consumer\u201d)" in out


def test_import_into_a_store_with_one_event_says_one_event(cohort):
    cohort.console("/done kafka\n", "--as", "ana")
    dump = cohort.workdir / "dump.json"
    res = cohort.run("export", "--format", "json")
    assert res.returncode == 0, res.stderr
    dump.write_text(res.stdout)
    res = cohort.run("import", "--format", "json", str(dump))
    assert res.returncode == 2
    assert "the store already holds 1 event: import restores into an empty store" in res.stderr
