"""Issue 12 §3: editing the roadmap never corrupts the numbers.

Progress on a topic removed from the roadmap is kept but counts nowhere; a
renamed topic ("was: grid") keeps its progress, counted once; `cohort
roadmap` says what the store keeps on topics the roadmap no longer has.
"""
import re
import signal
import time

V1 = ("## Frontend\n- [ ] HTML\n- [ ] React\n- [ ] Grid\n"
      "## Backend\n- [ ] Kafka\n- [ ] Redis\n")
# React removed; Grid renamed, its old id named so its progress follows it.
V2 = ("## Frontend\n- [ ] HTML\n- [ ] [CSS Grid](https://css-tricks.com/snippets/css/"
      "complete-guide-grid/) <!-- aliases: grid layout; was: grid -->\n"
      "## Backend\n- [ ] Kafka\n- [ ] Redis\n")


def write(cohort, name, text):
    path = cohort.workdir / name
    path.write_text(text)
    return str(path)


def record_on_v1(cohort):
    write(cohort, "rm.md", V1)
    write(cohort, "c.toml", '[roadmap]\nfile = "rm.md"\n')
    out = cohort.console("/done HTML\n/done React\n/done Grid\n@bob /done Grid\n"
                         "@bob /done React\n@bob /start Kafka\n", "-c", "c.toml", "--as", "ana")
    assert "3/5 · 60%" in out and "2/5 · 40%" in out


def check_v2_numbers(out):
    # ana: HTML and CSS Grid of 4 (React kept, not counted); bob: CSS Grid only.
    assert "2/4 · 50%" in out and "Rank: #1 with 2 points" in out, out
    assert "1/4 · 25%" in out and "Rank: #2 with 1 point" in out, out
    for board in ("all time", "this week", "this month"):
        block = out.split(f"Leaderboard — {board}")[1].split("\n\n")[0]
        assert re.search(r"#1\s+ana\s+2 pts", block), block
        assert re.search(r"#2\s+bob\s+1 pt\b", block), block
    assert "Group progress: 37% of the roadmap" in out, out  # (50 + 25) / 2
    assert "110%" not in out and "11 points" not in out


def test_a_removed_and_a_renamed_topic_after_a_restart(cohort):
    record_on_v1(cohort)
    write(cohort, "rm.md", V2)
    res = cohort.run("roadmap", "-c", "c.toml")
    assert res.returncode == 0, res.stderr
    assert ("  CSS Grid  [css-grid]  aliases: grid layout  was: grid  "
            "<https://css-tricks.com/snippets/css/complete-guide-grid/>\n") in res.stdout
    assert "\n  grid: 2 records (2 done) - a former id of CSS Grid [css-grid]" in res.stdout
    assert "\n  react: 2 records (2 done)\n" in res.stdout
    out = cohort.console("/progress\n/leaderboard\n/leaderboard week\n/leaderboard month\n"
                         "/digest\n@bob /progress\n", "-c", "c.toml", "--as", "ana")
    check_v2_numbers(out)
    # The rename happened once: what is left is React, and nothing moves twice.
    res = cohort.run("roadmap", "-c", "c.toml")
    assert "grid:" not in res.stdout
    assert "\n  react: 2 records (2 done)\n2 records on 1 topic not on the roadmap" in res.stdout
    out = cohort.console("/progress\n/topics Frontend\n", "-c", "c.toml", "--as", "ana")
    assert "2/4 · 50%" in out and "Rank: #1 with 2 points" in out
    # A section in detail shows its topics' links.
    assert "[x] CSS Grid  (2 finished)  https://css-tricks.com/snippets/css/" \
        "complete-guide-grid/" in out, out
    # The store's own export imports again (it used to refuse "grid").
    exp = cohort.run("export", "-c", "c.toml", "--format", "json")
    assert exp.returncode == 0, exp.stderr
    write(cohort, "d.toml", '[roadmap]\nfile = "rm.md"\n[store]\npath = "copy.db"\n')
    write(cohort, "dump.json", exp.stdout)
    imp = cohort.run("import", "-c", "d.toml", "--format", "json", "dump.json")
    assert imp.returncode == 0, imp.stderr
    out = cohort.console("/progress\n/leaderboard\n/leaderboard week\n/leaderboard month\n"
                         "/digest\n@bob /progress\n", "-c", "d.toml", "--as", "ana")
    check_v2_numbers(out)


def test_a_sighup_reload_recounts(cohort):
    record_on_v1(cohort)
    proc = cohort.popen("console", "-c", "c.toml", "--as", "ana")
    try:
        proc.stdin.write("/progress\n")
        proc.stdin.flush()
        time.sleep(1)
        write(cohort, "rm.md", V2)
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        out, err = proc.communicate("/progress\n/leaderboard\n/leaderboard week\n"
                                    "/leaderboard month\n/digest\n@bob /progress\n",
                                    timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    before, after = out.split("ana> /progress", 2)[1:]
    assert "3/5 · 60%" in before and "Rank: #1 with 3 points" in before
    check_v2_numbers(after)


def test_a_removed_topic_keeps_its_progress_even_beside_a_similar_name(cohort):
    """Removing C leaves its progress under "c": it does not move to C++."""
    write(cohort, "rm.md", "- [ ] C\n- [ ] C++\n- [ ] Rust\n")
    write(cohort, "c.toml", '[roadmap]\nfile = "rm.md"\n')
    assert "ana finished C\n" in cohort.console("/done c\n", "-c", "c.toml", "--as", "ana")
    write(cohort, "rm.md", "- [ ] C++\n- [ ] Rust\n")
    out = cohort.console("/progress\n/who c++\n", "-c", "c.toml", "--as", "ana")
    assert "0/2 · 0%" in out, out
    assert "Finished: ana" not in out, out
    res = cohort.run("roadmap", "-c", "c.toml")
    assert "\n  c: 1 record (1 done)\n" in res.stdout, res.stdout
    assert "moved to it" not in res.stdout
