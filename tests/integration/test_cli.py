"""The command line: configuration errors, check-config, roadmap, usage."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def write(cohort, name, text):
    path = cohort.workdir / name
    path.write_text(text)
    return str(path)


def test_bad_configs_exit_2_with_file_line_and_fix_and_start_nothing(cohort):
    cases = {
        "[discord]\ntokn = \"x\"\n": ':2: unknown key "tokn" in [discord] (did you mean "token"?)',
        "[matrix]\nenabled = \"yes\"\n": ':2: "enabled" in [matrix] must be a boolean',
        "[log]\nlevel = \"info\n": ":2: unterminated string (add the closing \"",
        "[store]\nsynchronous = \"sometimes\"\n": ':2: store.synchronous: "sometimes" is not',
    }
    for i, (text, want) in enumerate(cases.items()):
        path = write(cohort, f"bad{i}.toml", text)
        for command in ("run", "console", "check-config"):
            res = cohort.run(command, "-c", path, input="/done kafka\n")
            assert res.returncode == 2, (text, command, res.stderr)
            assert path + want in res.stderr, res.stderr
            assert res.stdout == ""
    assert not cohort.db.exists()  # nothing started, no store was created
    res = cohort.run("run", "-c", "missing.toml")
    assert res.returncode == 2
    assert "missing.toml: cannot open config file: No such file or directory" in res.stderr


def test_check_config_describes_a_valid_config_without_secrets(cohort):
    path = write(cohort, "ok.toml", '[digest]\ntimezone = "Europe/Berlin"\n'
                 '[matrix]\nenabled = true\naccess_token = "syt_secret"\n')
    res = cohort.run("check-config", "-c", path)
    assert res.returncode == 0, res.stderr
    assert "Europe/Berlin" in res.stdout and "configuration OK" in res.stdout
    assert "84 topics" in res.stdout
    assert "syt_secret" not in res.stdout + res.stderr
    assert "would run: matrix" in res.stdout


def test_the_example_config_is_valid(cohort):
    res = cohort.run("check-config", "-c", str(ROOT / "config.example.toml"))
    assert res.returncode == 0, res.stderr


def test_roadmap_prints_the_tree_with_ids_and_aliases(cohort):
    res = cohort.run("roadmap")
    assert res.returncode == 0
    assert "\n  PostgreSQL  [postgresql]  aliases: postgres, pg, psql\n" in res.stdout
    assert "\n  Kafka  [kafka]  aliases: apache kafka\n" in res.stdout
    assert "\n    How OSs work in General  [how-oss-work-in-general]" in res.stdout
    assert "(same topic as above)" in res.stdout  # Redis, the second time
    assert "84 topics in" in res.stdout


def test_a_custom_roadmap_file(cohort):
    md = write(cohort, "rust.md", "- [ ] Basics\n  - [ ] Ownership <!-- aliases: borrow -->\n"
               "  - [ ] Traits\n- [ ] Async\n")
    cfg = write(cohort, "c.toml", f'[roadmap]\nfile = "{md}"\n')
    out = cohort.console("/done borrow\n", "-c", cfg, "--as", "ana")
    assert "ana finished Ownership (Basics)" in out and "1/3" in out
    bad = write(cohort, "bad.md", "- [ ] A\n\t- [ ] B\n   - [ ] C\n")
    cfg = write(cohort, "d.toml", f'[roadmap]\nfile = "{bad}"\n')
    res = cohort.run("console", "-c", cfg, input="/done a\n")
    assert res.returncode == 2 and f"{bad}:3: indentation does not match" in res.stderr


def test_usage_errors_exit_2(cohort):
    assert cohort.run().returncode == 2
    assert cohort.run("frobnicate").returncode == 2
    assert cohort.run("console", "--bogus").returncode == 2
    assert cohort.run("console", "--as").returncode == 2
    assert cohort.run("console", "--as", "two words").returncode == 2
    res = cohort.run("help")
    assert res.returncode == 0 and "usage: cohort COMMAND" in res.stdout


def test_an_unopenable_store_is_a_runtime_error(cohort):
    cfg = write(cohort, "c.toml", '[store]\npath = "/nonexistent/dir/x.db"\n')
    res = cohort.run("console", "-c", cfg, input="")
    assert res.returncode == 1
    assert "/nonexistent/dir/x.db: cannot open the database" in res.stderr


def test_every_command_has_help(cohort):
    res = cohort.run("help")
    assert res.returncode == 0
    names = [line.split()[0] for line in res.stdout.split("commands:\n")[1].split("\n\n")[0]
             .splitlines()]
    assert {"run", "console", "import", "backup", "status", "register-commands"} <= set(names)
    for name in names:
        if name == "help":
            continue
        res = cohort.run(name, "--help")
        assert res.returncode == 0, (name, res.stderr)
        assert res.stdout.startswith(f"usage: cohort {name}")
        assert len(res.stdout.splitlines()) >= 3
        assert cohort.run("help", name).stdout == res.stdout
    assert cohort.run("help", "nonsense").returncode == 2
    assert cohort.run().returncode == 2   # no command at all


def test_version_and_the_man_page(cohort):
    res = cohort.run("version")
    assert res.returncode == 0 and res.stdout.startswith("cohort ")
    assert cohort.run("--version").stdout == res.stdout
    assert cohort.run("version", "extra").returncode == 2
    # The man page documents every command `cohort help` lists.
    names = [line.split()[0] for line in cohort.run("help").stdout.split("commands:\n")[1]
             .split("\n\n")[0].splitlines()]
    man = (ROOT / "dist" / "cohort.1").read_text()
    documented = {m.replace("\\-", "-")
                  for m in re.findall(r"^\.B[IR]? \"?([a-z\\-]+)", man, re.M)}
    assert set(names) <= documented, set(names) - documented
