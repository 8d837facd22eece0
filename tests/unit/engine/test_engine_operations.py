"""Site operations: prerequisites and port checks."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.core.progress import SilentProgress
from onestack.drivers.host import LocalHost
from onestack.engine import operations
from onestack.errors import PortInUseError, PrerequisiteError
from onestack.model.ports import Ports
from onestack.state.site import SiteHandle, open_site
from onestack.steps.context import HostContext

SITE = 'name: edge\nrelease: "2026.2"\nport_offset: 7\nhosts:\n  - name: ctl1\n'


class FakeSupervisor:
    def __init__(self, states: dict[str, str] | None = None) -> None:
        self._states = states or {}

    def states(self) -> dict[str, dict[str, Any]]:
        return {n: {"name": n, "statename": s} for n, s in self._states.items()}


class EveryPortTaken(LocalHost):
    def port_holder(self, port: int) -> str | None:
        return f"squatter on {port}"


def _hctx(handle: SiteHandle, host: Any = None,
          states: dict[str, str] | None = None) -> HostContext:
    return HostContext(host or LocalHost("aio"), handle.paths, FakeSupervisor(states),  # type: ignore[arg-type]
                       SilentProgress())


def test_prerequisites_non_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PrerequisiteError) as info:
        operations.check_prerequisites()
    assert "must run as root" in str(info.value)
    assert info.value.hint == "run it with sudo"


def test_prerequisites_without_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "apt-get" else "/bin/x")
    with pytest.raises(PrerequisiteError, match="Debian 12"):
        operations.check_prerequisites()


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, int]]:
    """A real listening socket on the keystone frontend port of some free offset."""
    for offset in range(1_500, 3_000, 37):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", Ports(offset).frontend("keystone")))
        except OSError:
            sock.close()
            continue
        sock.listen()
        yield sock, offset
        sock.close()
        return
    pytest.skip("no free port found")


def test_check_ports_names_the_taken_port(tmp_path: Path,
                                          listener: tuple[socket.socket, int]) -> None:
    sock, offset = listener
    path = tmp_path / "site.yaml"
    path.write_text(SITE.replace("port_offset: 7", f"port_offset: {offset}"))
    handle = open_site(tmp_path, "edge", path)
    port = sock.getsockname()[1]
    with pytest.raises(PortInUseError) as info:
        operations.check_ports(handle, _hctx(handle))
    err = info.value
    assert (err.host, err.port) == ("ctl1", port)
    assert "keystone (api)" in err.holder
    assert f"pid={os.getpid()}" in err.holder  # ss names the process holding it
    assert f"port {port} on ctl1 is already in use" in str(err)


OWNERS = ["haproxy", "keystone-api", "glance-api", "placement-api", "nova-api",
          "neutron-api", "mariadb", "rabbitmq"]


def test_ports_held_by_the_sites_own_programs_are_fine(tmp_path: Path) -> None:
    handle = open_site(tmp_path, "lab")
    host = EveryPortTaken("aio")
    operations.check_ports(handle, _hctx(handle, host, dict.fromkeys(OWNERS, "RUNNING")))


@pytest.mark.parametrize(("stopped", "port"), [
    ("haproxy", 5000), ("keystone-api", 25000), ("mariadb", 13306), ("rabbitmq", 5682)])
def test_port_of_a_stopped_program_must_be_free(tmp_path: Path, stopped: str,
                                                port: int) -> None:
    handle = open_site(tmp_path, "lab")
    states = dict.fromkeys(OWNERS, "RUNNING") | {stopped: "STOPPED"}
    with pytest.raises(PortInUseError) as info:
        operations.check_ports(handle, _hctx(handle, EveryPortTaken("aio"), states))
    assert info.value.port == port
