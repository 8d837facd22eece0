"""Programs' logs against a real supervisord: root's alone (issue 21: they were 0644),
while the programs themselves keep the umask and start folder they can use."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.drivers.host import LocalHost
from onestack.drivers.supervisor import (
    LOG_FOLDER_MODE,
    HostSupervisor,
    Program,
    SiteSupervisor,
    Supervisor,
    render_program,
    render_supervisord_conf,
)

# What a program reports of itself: its umask and the folder it started in. `daemon` is
# a user with a group of its name on every Debian (base-passwd), as a service user has.
REPORT = ["/bin/sh", "-c", "echo umask=$(umask) folder=$(pwd); exec sleep 60"]
PROGRAMS = (Program("as-root", REPORT, startsecs=0, stopwaitsecs=2),
            Program("as-user", REPORT, user="daemon", startsecs=0, stopwaitsecs=2),
            Program("own-umask", REPORT, umask=0o007, startsecs=0, stopwaitsecs=2))


def _launcher(kind: str, conf: Path, socket: Path) -> SiteSupervisor:
    if kind == "here":
        return Supervisor(conf, socket)
    # Debian's supervisord on another host, started through its connection (ADR 0012):
    # here this machine's, through a LocalHost.
    supervisord = str(Path(sys.executable).parent / "supervisord")
    return HostSupervisor(LocalHost("cmp1"), conf, socket, supervisord=supervisord)


@pytest.fixture(params=["here", "through a host connection"])
def site(request: pytest.FixtureRequest, tmp_path: Path,
         wrapper_packages: None) -> Iterator[tuple[SiteSupervisor, Path]]:
    if os.geteuid() != 0:
        pytest.skip("programs switch users and PID namespaces as root")
    # A short directory: the unix socket path must stay under 108 bytes.
    run, log, progs = tmp_path / "r", tmp_path / "l", tmp_path / "p"
    for folder in (run, log, progs):
        folder.mkdir()
    log.chmod(LOG_FOLDER_MODE)
    conf = run / "supervisord.conf"
    conf.write_text(render_supervisord_conf(run, log, progs))
    for program in PROGRAMS:
        (progs / f"{program.name}.conf").write_text(render_program(program, log))
    sup = _launcher(request.param, conf, run / "supervisor.sock")
    sup.start_daemon()
    try:
        for program in PROGRAMS:
            sup.start(program.name)
        yield sup, log
    finally:
        sup.shutdown()


def _report(log: Path, name: str) -> str:
    path = log / f"{name}.log"
    for _ in range(50):
        if path.exists() and "umask=" in path.read_text():
            break
        time.sleep(0.1)
    return path.read_text().strip()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_logs_are_roots_alone_and_programs_keep_their_umask_and_folder(
        site: tuple[SiteSupervisor, Path]) -> None:
    sup, log = site
    assert _report(log, "as-root") == f"umask=0022 folder={log}"
    assert _report(log, "as-user") == "umask=0022 folder=/"  # daemon cannot enter the folder
    assert _report(log, "own-umask") == f"umask=0007 folder={log}"
    assert {p.name: _mode(p) for p in log.iterdir()} == {
        "supervisord.log": 0o600, "as-root.log": 0o600, "as-user.log": 0o600,
        "own-umask.log": 0o600}
    # A log supervisord rotates is created anew by supervisord itself, with its umask.
    pid = (log.parent / "r" / "supervisord.pid").read_text().strip()
    status = Path(f"/proc/{pid}/status").read_text()
    assert "Umask:\t0077" in status
