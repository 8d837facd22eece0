"""Site operations: opening a site, secrets on demand, prerequisites and port checks."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.drivers.host import LocalHost
from onestack.engine import operations
from onestack.engine.journal import Journal
from onestack.engine.progress import SilentProgress
from onestack.errors import (
    InvalidOptionError,
    PortInUseError,
    PrerequisiteError,
    SiteFileError,
    SiteNotFoundError,
)
from onestack.model.ports import Ports
from onestack.plans.deploy import required_secrets
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


def _hctx(handle: operations.SiteHandle, host: Any = None,
          states: dict[str, str] | None = None) -> HostContext:
    return HostContext(host or LocalHost("aio"), handle.paths, FakeSupervisor(states),  # type: ignore[arg-type]
                       SilentProgress())


def test_open_site_default_lab(tmp_path: Path) -> None:
    handle = operations.open_site(tmp_path, "lab")
    assert handle.site_file is None
    assert (handle.site.name, handle.site.release) == ("lab", "2026.1")
    assert handle.paths.site == tmp_path / "sites" / "lab"
    assert operations.open_site(tmp_path, "lab", release="2026.2").site.release == "2026.2"
    assert not (tmp_path / "sites").exists()  # opening reads only


def test_open_site_explicit_file(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(SITE)
    handle = operations.open_site(tmp_path, None, path)
    assert handle.site_file == path
    assert (handle.site.name, handle.site.release, handle.site.port_offset) == ("edge",
                                                                               "2026.2", 7)
    assert handle.paths.site == tmp_path / "sites" / "edge"


def test_open_site_uses_recorded_site_file(tmp_path: Path) -> None:
    own = tmp_path / "sites" / "lab" / "site.yaml"
    own.parent.mkdir(parents=True)
    own.write_text(SITE.replace("edge", "lab"))
    handle = operations.open_site(tmp_path, "lab")
    assert handle.site_file == own
    assert handle.site.hosts[0].name == "ctl1"


def test_open_site_bad_files(tmp_path: Path) -> None:
    with pytest.raises(SiteFileError, match="cannot read site file"):
        operations.open_site(tmp_path, None, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SITE.replace("port_offset: 7", "port_offset: -1"))
    with pytest.raises(SiteFileError, match=f"{bad}:3: port_offset: "):
        operations.open_site(tmp_path, None, bad)


def test_site_option_and_site_file_must_agree(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(SITE)
    assert operations.open_site(tmp_path, "edge", path).site.name == "edge"
    with pytest.raises(InvalidOptionError, match="describes site edge"):
        operations.open_site(tmp_path, "lab", path)


def test_unknown_release_is_refused_when_the_site_is_opened(tmp_path: Path) -> None:
    # issue 12.12: found only after the lock and secrets were written, naming no file.
    path = tmp_path / "edge.yaml"
    path.write_text(SITE.replace("2026.2", "2099.1"))
    with pytest.raises(SiteFileError) as info:
        operations.open_site(tmp_path, None, path)
    assert (info.value.path, info.value.line, info.value.field_path) == (str(path), 2,
                                                                         "release")
    assert list(tmp_path.iterdir()) == [path]


def test_a_site_that_does_not_exist_is_refused_creating_nothing(tmp_path: Path) -> None:
    with pytest.raises(SiteNotFoundError) as info:
        operations.open_site(tmp_path, "lab", must_exist=True)
    assert "no site lab under" in str(info.value)
    assert not (tmp_path / "sites").exists()
    own = tmp_path / "sites" / "edge" / "site.yaml"
    own.parent.mkdir(parents=True)
    own.write_text(SITE)
    with pytest.raises(SiteNotFoundError) as info:
        operations.open_site(tmp_path, "lab", must_exist=True)
    assert info.value.hint == f"sites under {tmp_path}: edge"
    assert operations.open_site(tmp_path, "edge", must_exist=True).site_file == own


def test_series_recorded_in_journal_wins(tmp_path: Path) -> None:
    handle = operations.open_site(tmp_path, "lab")
    assert operations.series_of(handle) == "2026.1"
    journal = Journal(handle.paths.state_db)
    journal.set_fact("release", "2026.2")
    journal.close()
    assert operations.series_of(handle) == "2026.2"


def test_service_context_generates_secrets_only_when_asked(tmp_path: Path) -> None:
    handle = operations.open_site(tmp_path, "lab")
    ctx = operations.service_context(handle, generate=False)
    assert not handle.paths.secrets_file.exists()
    assert set(ctx.secrets.values()) == {""}
    ctx = operations.service_context(handle)
    assert handle.paths.secrets_file.stat().st_mode & 0o777 == 0o600
    assert sorted(ctx.secrets) == sorted(required_secrets())
    assert ctx.secrets == operations.service_context(handle).secrets  # stable
    assert ctx.venv == tmp_path / "releases" / "2026.1" / "venv"


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
    handle = operations.open_site(tmp_path, "edge", path)
    port = sock.getsockname()[1]
    with pytest.raises(PortInUseError) as info:
        operations.check_ports(handle, _hctx(handle))
    err = info.value
    assert (err.host, err.port) == ("ctl1", port)
    assert "keystone (api)" in err.holder
    assert f"pid={os.getpid()}" in err.holder  # ss names the process holding it
    assert f"port {port} on ctl1 is already in use" in str(err)


OWNERS = ["haproxy", "keystone-api", "glance-api", "placement-api", "nova-api",
          "neutron-api", "mariadb", "rabbitmq", "memcached"]


def test_ports_held_by_the_sites_own_programs_are_fine(tmp_path: Path) -> None:
    handle = operations.open_site(tmp_path, "lab")
    host = EveryPortTaken("aio")
    operations.check_ports(handle, _hctx(handle, host, dict.fromkeys(OWNERS, "RUNNING")))


@pytest.mark.parametrize(("stopped", "port"), [
    ("haproxy", 5000), ("keystone-api", 25000), ("mariadb", 13306), ("rabbitmq", 5682),
    ("memcached", 11212)])
def test_port_of_a_stopped_program_must_be_free(tmp_path: Path, stopped: str,
                                                port: int) -> None:
    handle = operations.open_site(tmp_path, "lab")
    states = dict.fromkeys(OWNERS, "RUNNING") | {stopped: "STOPPED"}
    with pytest.raises(PortInUseError) as info:
        operations.check_ports(handle, _hctx(handle, EveryPortTaken("aio"), states))
    assert info.value.port == port
