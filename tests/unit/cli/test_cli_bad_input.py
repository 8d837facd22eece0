"""Bad input through the real entry point: one line of error, never a traceback,
nothing created (issue 12: items 8, 10, 12, 13)."""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

import pytest

from onestack.cli import site as site_commands
from onestack.cli.main import main
from onestack.model.loader import dump_site
from onestack.model.site import default_lab_site
from onestack.state.journal import Journal

SITE = 'name: lab\nrelease: "2026.1"\nhosts:\n  - name: aio\n'


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
          *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["onestack", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return int(info.value.code or 0), out, err


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def _deployed(home: Path, name: str = "lab") -> Path:
    site_dir = home / "sites" / name
    site_dir.mkdir(parents=True)
    (site_dir / "site.yaml").write_text(dump_site(default_lab_site(name)))
    return site_dir


@pytest.mark.parametrize("args", [
    ["upgrade", "plan", "--to", "2026.2"], ["upgrade", "apply", "--to", "2026.2"],
    ["upgrade", "status"], ["upgrade", "backups"], ["down"], ["down", "--purge", "--yes"],
    ["rollback"], ["restore", "--backup", "x", "--yes"], ["status"], ["verify"],
    ["credentials", "--show-secrets"], ["set-secret", "bmc.password"],
    ["host", "trust", "--yes"],
])
def test_commands_on_a_missing_site_refuse_and_create_nothing(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str]) -> None:
    # issue 12.12: `upgrade plan` wrote state.db and secrets; down/rollback made the
    # site directory and reported success.
    _deployed(home, "other")
    before = _tree(home)
    code, out, err = _main(monkeypatch, capsys, "--home", str(home), *args)
    assert code == 1
    assert f"error: no site lab under {home}: nothing was changed" in err
    assert "hint: sites under" in err and "other" in err
    assert _tree(home) == before


def test_site_option_that_is_not_a_name_is_refused(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("Bad_Name", "../../etc", "a/b", "x" * 40, "lab\n"):
        code, _, err = _main(monkeypatch, capsys, "--home", str(home), "--site", bad, "plan")
        assert code == 1
        assert err.startswith("error: --site ") and len(err.splitlines()) == 1
    assert _tree(home) == []


@pytest.mark.parametrize("bad", ["file", "/proc/self", "/sys/kernel", "with space",
                                 "semi;colon", "new\nline", "dollar$HOME"])
def test_home_option_is_validated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        bad: str) -> None:
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.chdir(tmp_path)
    code, _, err = _main(monkeypatch, capsys, "--home", bad, "plan")
    assert code == 1
    assert err.startswith("error: --home ")
    assert _tree(tmp_path) == ["file"]


@pytest.mark.parametrize(("args", "variable", "first"), [
    (["--home", ""], None, "error: --home is empty: give onestack's state folder, or leave "
                           "--home out for {default}"),
    (["--home="], None, "error: --home is empty"),
    ([], "", "error: ONESTACK_HOME is empty: set it to onestack's state folder, or unset it "
             "for {default}"),
])
def test_an_empty_home_is_a_usage_error_not_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], variable: str | None, first: str) -> None:
    # issue 21: `--home ''` silently meant /var/lib/onestack.
    from onestack.cli import common

    default = tmp_path / "default-home"
    monkeypatch.setattr(common, "DEFAULT_HOME", str(default))
    if variable is None:
        monkeypatch.delenv("ONESTACK_HOME", raising=False)
    else:
        monkeypatch.setenv("ONESTACK_HOME", variable)
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(monkeypatch, capsys, *args, "status")
    assert code == 2
    assert err.startswith(first.format(default=default)) and len(err.splitlines()) == 1
    assert out == "" and _tree(tmp_path) == []


def _every_command() -> list[list[str]]:
    """Every command of the CLI (the lazily imported groups included), as argv words."""
    import click

    from onestack.cli.main import cli

    def walk(command: click.Command | None, words: list[str]) -> list[list[str]]:
        if not isinstance(command, click.Group):
            return [words]
        ctx = click.Context(command)
        return [found for name in command.list_commands(ctx)
                for found in walk(command.get_command(ctx, name), [*words, name])]

    return walk(cli, [])


def test_an_empty_home_is_refused_by_every_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # issue 21: for every command, `host trust`, `lab ...` and `hardware ...` included.
    # `--help` after each: were the refusal ever lost, no command would act here.
    from onestack.cli import common

    monkeypatch.setattr(common, "DEFAULT_HOME", str(tmp_path / "default-home"))
    monkeypatch.chdir(tmp_path)
    commands = _every_command()
    assert {"host trust", "lab hosts create", "hardware discover", "up"} <= \
        {" ".join(c) for c in commands}
    not_refused = []
    for words in commands:
        for option, variable, first in ((["--home", ""], None, "error: --home is empty: "),
                                         ([], "", "error: ONESTACK_HOME is empty: ")):
            monkeypatch.delenv("ONESTACK_HOME", raising=False)
            if variable is not None:
                monkeypatch.setenv("ONESTACK_HOME", variable)
            code, out, err = _main(monkeypatch, capsys, *option, *words, "--help")
            if (code, out, err.startswith(first), len(err.splitlines())) != (2, "", True, 1):
                not_refused.append(" ".join([*option, *words]))
    assert not_refused == [] and _tree(tmp_path) == []


def test_home_option_wins_over_an_empty_variable(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ONESTACK_HOME", "")
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "status")
    assert code == 1
    assert f"no site lab under {home}" in err


def test_site_option_and_site_file_naming_other_sites_is_refused(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(SITE.replace("name: lab", "name: edge"))
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "--site", "lab", "plan",
                         "--site-file", str(path))
    assert code == 1
    assert "describes site edge" in err


def test_site_file_that_is_not_utf8_names_the_line(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(SITE.encode() + b"region: R\xe9gion\n")
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "plan", "--site-file",
                         str(path))
    assert code == 1
    assert f"error: {path}:5: (file): not UTF-8 text (byte 0xe9)" in err


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "directory"])
def test_site_file_must_be_a_regular_file(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], special: str) -> None:
    # issue 12.8: /dev/zero was read until the OOM killer came; a FIFO would block.
    path = Path(special) if special.startswith("/") else tmp_path / special
    if special == "fifo":
        os.mkfifo(path)
    elif special == "directory":
        path.mkdir()
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "plan", "--site-file",
                         str(path))
    assert code == 1
    assert f"error: {path}: (file): not a regular file" in err


def test_site_file_over_the_size_cap(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE + "#" * (1024 * 1024))
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "plan", "--site-file",
                         str(path))
    assert code == 1
    assert "larger than 1024 KiB" in err


def test_corrupt_state_db_is_an_error_naming_the_file(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    state = _deployed(home) / "state.db"
    state.write_bytes(b"this is not sqlite" * 100)
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "upgrade", "status")
    assert code == 1
    assert f"error: {state}: not a usable onestack journal" in err
    assert "hint: onestack did not change it" in err


@pytest.mark.parametrize(("content", "words"), [
    ("- just\n- a list\n", "expected a mapping of secret names to values, found a list"),
    ("a: {nested: map}\n", "the value of 'a' is not a plain value"),
    ("keystone.admin: 'hunter2-secret-value\nnext: x\n", "not valid YAML"),
])
def test_bad_secrets_file_is_an_error_that_shows_no_secret(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        content: str, words: str) -> None:
    secrets = _deployed(home) / "secrets"
    secrets.write_text(content)
    code, out, err = _main(monkeypatch, capsys, "--home", str(home), "credentials",
                           "--show-secrets")
    assert code == 1
    assert words in err
    assert "hunter2" not in out + err


@pytest.mark.parametrize("args", [["verify", "--timeout", "-1"], ["verify", "--timeout", "0"],
                                  ["verify", "--ssh-timeout", "0"],
                                  ["hardware", "discover", "--workers", "0"],
                                  ["hardware", "discover", "--workers", "-3"],
                                  ["hardware", "discover", "--timeout", "-1"],
                                  ["hardware", "firmware", "apply", "--workers", "0"]])
def test_numeric_options_out_of_range_are_usage_errors(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str]) -> None:
    # issue 12.13: negative or zero --workers and negative --timeout were accepted.
    _deployed(home)
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), *args)
    assert code == 2
    assert "Invalid value for '--" in err


def test_unexpected_error_is_one_line_and_a_private_log(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def explode(*_: object, **__: object) -> None:
        raise ValueError("password=hunter2")

    monkeypatch.setattr(site_commands, "open_site", explode)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    code, out, err = _main(monkeypatch, capsys, "--home", str(home), "plan")
    assert code == 70
    assert "hunter2" not in out + err
    first = err.splitlines()[0]
    found = re.search(r"error: unexpected internal error \(ValueError\); the details are in "
                      r"(\S+\.log)$", first)
    assert found, err
    log = Path(found.group(1))
    assert log.parent == tmp_path
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "Traceback" in log.read_text()


def test_set_secret_refuses_bad_names_and_values(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _deployed(home)
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "set-secret", "a b\n[x]")
    assert code == 1 and "secret name" in err
    assert not (home / "sites" / "lab" / "secrets").exists()


def test_journal_of_a_new_site_is_unchanged_by_reading_commands(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    site_dir = _deployed(home)
    Journal(site_dir / "state.db").close()
    before = _tree(home)
    _main(monkeypatch, capsys, "--home", str(home), "upgrade", "plan", "--to", "2099.1")
    assert _tree(home) == before
