"""Supervisor.update against a real supervisord: loading one service's definitions
must not touch another service's program whose file changed on disk meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.drivers.supervisor import (
    TREE_WRAPPER,
    Program,
    Supervisor,
    render_program,
    render_supervisord_conf,
)
from onestack.errors import ServiceStartError

WRAPPED = " ".join(TREE_WRAPPER)


@pytest.fixture
def supervisor(tmp_path: Path, wrapper_packages: None) -> Iterator[tuple[Supervisor, Path, Path]]:
    # A short directory: the unix socket path must stay under 108 bytes.
    run, log, progs = tmp_path / "r", tmp_path / "l", tmp_path / "p"
    for d in (run, log, progs):
        d.mkdir()
    conf = run / "supervisord.conf"
    conf.write_text(render_supervisord_conf(run, log, progs))
    sup = Supervisor(conf, run / "supervisor.sock")
    for name in ("svc-a", "svc-b"):
        _define(progs, log, name, "1000")
    sup.start_daemon()
    try:
        for name in ("svc-a", "svc-b"):
            sup.start(name)
        yield sup, progs, log
    finally:
        sup.shutdown()


def _define(progs: Path, log: Path, name: str, seconds: str) -> None:
    (progs / f"{name}.conf").write_text(render_program(
        Program(name, ["sleep", seconds], startsecs=0, stopwaitsecs=2), log))


def _wait_state(sup: Supervisor, name: str, state: str) -> str:
    for _ in range(50):
        if sup.state(name) == state:
            break
        time.sleep(0.1)
    return sup.state(name)


def test_update_only_touches_the_named_programs(
        supervisor: tuple[Supervisor, Path, Path]) -> None:
    sup, progs, log = supervisor
    assert _wait_state(sup, "svc-b", "RUNNING") == "RUNNING"
    pid_b = sup.states()["svc-b"]["pid"]
    _define(progs, log, "svc-a", "2000")
    _define(progs, log, "svc-b", "2000")  # e.g. written by an interrupted upgrade
    assert sup.update(("svc-a",)) == ["svc-a"]
    assert sup.loaded_command("svc-a") == f"{WRAPPED} sleep 2000"
    assert sup.state("svc-a") == "STOPPED"  # autostart=false: its plan starts it
    assert sup.state("svc-b") == "RUNNING"
    assert sup.states()["svc-b"]["pid"] == pid_b  # not stopped, not restarted
    _define(progs, log, "svc-b", "1000")  # its own plan writes it back...
    assert sup.update(("svc-b",)) == []  # ...and finds nothing to apply
    assert sup.states()["svc-b"]["pid"] == pid_b


def test_update_without_names_loads_every_change(
        supervisor: tuple[Supervisor, Path, Path]) -> None:
    sup, progs, log = supervisor
    _define(progs, log, "svc-a", "2000")
    _define(progs, log, "svc-b", "2000")
    assert sup.update() == ["svc-a", "svc-b"]
    assert sup.loaded_command("svc-b") == f"{WRAPPED} sleep 2000"


# --- the same supervisord through a host connection (ADR 0012) ----------------------

def test_host_supervisor_speaks_to_it_through_the_host(
        supervisor: tuple[Supervisor, Path, Path]) -> None:
    """The RPC script runs by the host's python3 (here: this machine's, through a
    LocalHost), and means what the direct client means."""
    from onestack.drivers.host import LocalHost
    from onestack.drivers.supervisor import HostSupervisor

    sup, progs, log = supervisor
    remote = HostSupervisor(LocalHost("cmp1"), sup.conf, sup.socket_path)
    assert remote.is_running()
    assert _wait_state(remote, "svc-a", "RUNNING") == "RUNNING"
    assert remote.states()["svc-a"]["pid"] == sup.states()["svc-a"]["pid"]
    remote.stop("svc-a")
    assert sup.state("svc-a") == "STOPPED"
    remote.start("svc-a")
    assert sup.state("svc-a") == "RUNNING"
    _define(progs, log, "svc-b", "2000")
    assert remote.update(("svc-b",)) == ["svc-b"]
    assert remote.loaded_command("svc-b") == f"{WRAPPED} sleep 2000"
    with pytest.raises(ServiceStartError, match="BAD_NAME"):
        remote.start("no-such-program")
    gone = HostSupervisor(LocalHost("cmp1"), sup.conf, sup.socket_path.with_name("x.sock"))
    assert not gone.is_running() and gone.states() == {}
