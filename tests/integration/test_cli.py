"""The command line: configuration errors, check-config, roadmap, usage."""
import pathlib
import re
import socket
import sqlite3

from store_view import dump

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


class Listener:
    """A 127.0.0.1 port that only records whether anything connected to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def contacted(self):
        try:
            self.sock.accept()[0].close()
            return True
        except BlockingIOError:
            return False


def platforms_without_tokens(cohort, listener, name="platforms.toml"):
    return write(cohort, name, f'[discord]\nenabled = true\napi_url = "{listener.url}"\n'
                 f'[matrix]\nenabled = true\nhomeserver = "{listener.url}"\n')


def test_offline_commands_need_no_token_and_contact_no_platform(cohort):
    listener = Listener()
    cohort.console("/done Kafka\n", "--as", "ana")   # a store with a group in it
    cfg = platforms_without_tokens(cohort, listener)
    exported = cohort.run("export", "-c", cfg, "--format", "json")
    assert exported.returncode == 0, exported.stderr
    dump = write(cohort, "dump.json", exported.stdout)
    fresh = write(cohort, "fresh.toml", (cohort.workdir / "platforms.toml").read_text()
                  + '[store]\npath = "fresh.db"\n')
    commands = [
        ("check-config",), ("roadmap",), ("export", "--format", "csv"),
        ("digest", "--group", "console:local"), ("backup", "copy.db"),
    ]
    for args in commands:
        res = cohort.run(args[0], "-c", cfg, *args[1:])
        assert res.returncode == 0, (args, res.stderr)
        assert "no bot token" not in res.stderr and "no access token" not in res.stderr
    res = cohort.run("import", "-c", fresh, "--format", "json", dump)
    assert res.returncode == 0, res.stderr
    res = cohort.run("status", "-c", cfg)     # the health check: not running, but no error
    assert res.returncode == 1 and "has not run" in res.stdout, res.stderr
    # check-config says what `run` will need, without failing.
    res = cohort.run("check-config", "-c", cfg)
    assert "discord.token: Discord is enabled but no bot token is set" in res.stdout
    assert not listener.contacted()


def test_starting_a_platform_without_its_token_is_refused_before_anything(cohort):
    listener = Listener()
    cfg = platforms_without_tokens(cohort, listener)
    for args in (("run",), ("register-commands",)):
        res = cohort.run(args[0], "-c", cfg, input="")
        assert res.returncode == 2, res.stderr
        assert "no Discord bot token" in res.stderr or \
            "discord.token: Discord is enabled but no bot token is set (set token or " \
            "COHORT_DISCORD_TOKEN)" in res.stderr, res.stderr
    assert not cohort.db.exists()
    # A Discord group with a digest channel, which no offline command can make: written
    # into the SQLite file directly.
    con = sqlite3.connect(cohort.db)
    cohort.console("/help\n", "-c", cfg)
    with con:
        con.execute("INSERT INTO group_settings (group_id, digest_channel) "
                    "VALUES ('discord:1', '2')")
    con.close()
    res = cohort.run("digest", "-c", cfg, "--group", "discord:1", "--post")
    assert res.returncode == 2 and "no bot token is set" in res.stderr
    assert not listener.contacted()


def test_offline_commands_never_create_a_store(cohort):
    for args in (("status",), ("export", "--format", "json"),
                 ("digest", "--group", "console:local"), ("backup", "copy.db")):
        res = cohort.run(*args)
        assert res.returncode == (1 if args[0] == "status" else 2), (args, res.stderr)
        assert f"no store at {cohort.db} " in res.stderr, res.stderr
        assert "store.path" in res.stderr
        assert sorted(p.name for p in cohort.workdir.iterdir()) == [], args


def test_run_with_nothing_enabled_and_no_terminal_is_an_error(cohort):
    cfg = write(cohort, "c.toml", '[digest]\ntime = "18:00"\n')
    res = cohort.run("run", "-c", cfg, input="/done Kafka\n")
    assert res.returncode == 2
    assert "no chat platform is enabled and stdin is not a terminal" in res.stderr
    assert "enabled = true in [discord]" in res.stderr and res.stdout == ""
    assert not cohort.db.exists()
    # A token without enabled = true is pointed out.
    cohort.env["COHORT_DISCORD_TOKEN"] = "abc-secret"
    res = cohort.run("run", "-c", cfg, input="")
    assert res.returncode == 2
    assert "a Discord bot token is set (COHORT_DISCORD_TOKEN) but [discord] enabled is " \
        "false" in res.stderr
    res = cohort.run("check-config", "-c", cfg)
    assert res.returncode == 0
    assert "warning: " in res.stdout and "[discord] enabled is false" in res.stdout
    assert "abc-secret" not in res.stdout + res.stderr
    del cohort.env["COHORT_DISCORD_TOKEN"]
    # The quick start: no configuration file at all answers on piped stdin.
    res = cohort.run("run", input="/done Kafka\n/progress\n")
    assert res.returncode == 0, res.stderr
    assert "finished Kafka" in res.stdout and "1/84" in res.stdout


def test_check_config_reports_a_missing_store_folder_warnings_and_values(cohort):
    cfg = write(cohort, "c.toml", '[store]\npath = "/nonexistent/dir/x.db"\n')
    res = cohort.run("check-config", "-c", cfg)
    assert res.returncode == 2
    assert f"{cfg}: store.path: the folder /nonexistent/dir does not exist" in res.stderr
    assert "configuration OK" not in res.stdout
    cfg = write(cohort, "d.toml", '[discord]\nguild_ids = [123]\n')
    res = cohort.run("check-config", "-c", cfg)
    assert res.returncode == 2
    assert f'{cfg}:2: "guild_ids" in [discord]: 123 is a number, but these are strings: ' \
        'write ["123"]' in res.stderr
    cfg = write(cohort, "e.toml", '[discord]\nenabled = true\ntoken = "t"\n'
                'guild_ids = ["123", "456"]\n')
    res = cohort.run("check-config", "-c", cfg)
    assert res.returncode == 0, res.stderr
    assert 'discord.guild_ids    "123", "456"\n' in res.stdout
    assert "warning" not in res.stdout
    res = cohort.run("check-config")
    assert res.returncode == 0
    assert "warning: configuration: no chat platform is enabled" in res.stdout


def test_the_console_shows_only_its_own_groups_digests(cohort):
    cohort.console("/done Kafka\n", "--as", "ana", "--group", "a")
    cohort.console("/done Docker\n", "--as", "bob", "--group", "b")
    cohort.at("2026-11-25T18:30:00Z")          # past the 18:00 digest time
    proc = cohort.popen("console", "--as", "zed", "--group", "brandnew")
    out, err = proc.communicate("/done Redis\n", timeout=30)
    assert proc.returncode == 0, err
    assert "zed finished Redis" in out
    assert "ana" not in out and "bob" not in out, out
    posted = {d["group"] for d in dump(cohort)["digests"]}
    assert not posted & {"console:a", "console:b"}   # theirs are still to come


def test_console_group_accepts_its_id(cohort):
    cohort.console("/done Kafka\n", "--as", "ana", "--group", "console:local")
    out = cohort.console("/progress\n", "--as", "ana")
    assert "1/84" in out
    groups = {m["group"] for m in dump(cohort)["members"]}
    assert groups == {"console:local"}


def test_digest_of_a_missing_group_and_of_a_group_that_turned_it_off(cohort):
    cohort.console("/done Kafka\n", "--as", "ana")
    cohort.console("/done Kafka\n", "--as", "bob", "--group", "other")
    res = cohort.run("digest", "--group", "study")
    assert res.returncode == 2 and res.stdout == ""
    assert f"--group 'study': no such group in {cohort.db}; the groups there are: " \
        "console:local, console:other" in res.stderr
    res = cohort.run("digest", "--group", "study", "--post")
    assert res.returncode == 2 and "no such group" in res.stderr
    res = cohort.run("digest", "--group", "other")     # the console's name, not its id
    assert res.returncode == 2 and "(did you mean console:other?" in res.stderr
    cohort.console("/digest channel off\n", "--as", "ana")
    res = cohort.run("digest", "--group", "console:local", "--post")
    assert res.returncode == 2 and res.stdout == ""
    assert "the digest of console:local is turned off" in res.stderr
    assert "/digest channel here" in res.stderr
    assert dump(cohort)["digests"] == []
