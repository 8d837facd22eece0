"""`onestack host trust` through the real entry point: which site it acts on, and which
known_hosts file it may write (issue 21)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from onestack.cli.main import main

SITE = ('name: edge\nrelease: "2026.1"\nhosts:\n  - name: aio\n'
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
    (tmp_path / "known_hosts").symlink_to(target)
    site = tmp_path / "site.yaml"
    site.write_text(SITE + f"known_hosts: {tmp_path / 'known_hosts'}\n")
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "host", "trust", "--yes",
                         "--site-file", str(site))
    assert code == 1
    assert err.splitlines()[0] == (f"error: {site}:10: known_hosts: not a regular file (a "
                                   "symbolic link, directory or device): name the file "
                                   "itself; onestack writes host keys into it")
    assert target.read_text() == "root:secret\n" and target.stat().st_mode & 0o777 == 0o600
    assert _tree(home) == []
