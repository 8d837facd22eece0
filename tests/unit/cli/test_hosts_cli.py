"""`onestack host trust` through the real entry point: which site it acts on, and which
known_hosts file it may write (issue 21)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from onestack.cli.main import main

SITE = ('name: edge\nrelease: "2026.1"\nhosts:\n  - name: aio\n    roles: [controller]\n'
        '  - name: cmp1\n    address: 127.0.0.2\n    roles: [compute]\n'
        '    connection: ssh\n    ssh_port: 1\n')


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


def test_a_known_hosts_symlink_in_the_site_file_is_refused_before_any_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home, target = tmp_path / "home", tmp_path / "shadow"
    home.mkdir()
    target.write_text("root:secret\n")
    target.chmod(0o600)
    (home / "known_hosts").symlink_to(target)
    site = tmp_path / "site.yaml"
    site.write_text(SITE + f"known_hosts: {home / 'known_hosts'}\n")
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "host", "trust", "--yes",
                         "--site-file", str(site))
    assert code == 1
    assert err.splitlines()[0] == (f"error: {site}:11: known_hosts: not a regular file (a "
                                   "symbolic link, directory or device): name the file "
                                   "itself; onestack writes host keys into it")
    assert target.read_text() == "root:secret\n" and target.stat().st_mode & 0o777 == 0o600
    assert _tree(home) == ["known_hosts"]


def test_a_known_hosts_outside_the_home_is_refused_before_any_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # issue 21: `known_hosts:` could name any file, which `host trust` rewrote as root.
    home, target = tmp_path / "home", tmp_path / "known_hosts"
    home.mkdir()
    target.write_text("root:secret\n")
    target.chmod(0o600)
    site = tmp_path / "site.yaml"
    site.write_text(SITE + f"known_hosts: {target}\n")
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "host", "trust", "--yes",
                         "--site-file", str(site))
    assert code == 1
    assert err.splitlines()[0] == (f"error: {site}:11: known_hosts: must be a file named "
                                   f"*known_hosts under onestack's home {home} (leave it out "
                                   "for the site's own, sites/<site>/known_hosts): onestack "
                                   "rewrites it as root")
    assert target.read_text() == "root:secret\n" and target.stat().st_mode & 0o777 == 0o600
    assert _tree(home) == []


@pytest.mark.parametrize("site_option", [[], ["--site", "nosuch"]])
def test_trust_without_site_file_refuses_a_site_nobody_deployed_and_creates_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        site_option: list[str]) -> None:
    # issue 21: `host trust` made sites/<name>/known_hosts for any --site.
    home = tmp_path / "home"
    home.mkdir()
    name = site_option[-1] if site_option else "lab"
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), *site_option, "host",
                         "trust", "--yes")
    assert code == 1
    assert err.splitlines()[0] == f"error: no site {name} under {home}: nothing was changed"
    assert _tree(home) == []


def test_trust_with_a_site_file_proceeds_for_a_site_not_deployed_yet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # How an operator trusts the hosts before the first `up`: the site file is enough.
    # Here the SSH host offers no key (nothing listens on port 1): refused, nothing written.
    home = tmp_path / "home"
    home.mkdir()
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "host", "trust", "--yes",
                         "--site-file", str(site))
    assert code == 1
    assert err.splitlines()[0] == ("error: cannot reach host cmp1 at 127.0.0.2:1: no host key "
                                   "offered (ssh-keyscan)")
    assert _tree(home) == []
