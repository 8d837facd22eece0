"""Actions: the pure ``needed`` rules, and apply against a real LocalHost or fakes."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from onestack.core.digest import digest
from onestack.core.progress import SilentProgress
from onestack.drivers.host import LocalHost
from onestack.errors import CommandError, PortInUseError, PrerequisiteError, ServiceStartError
from onestack.model.paths import SitePaths
from onestack.steps.actions import (
    CallOnce,
    CopyFile,
    EnsureDirs,
    InstallPackages,
    RunOnce,
    StartProgram,
    UpdateSupervisor,
    WriteFile,
)
from onestack.steps.context import HostContext
from onestack.steps.upgrade_actions import RetireRelease, SwapApi

P = Path("/x")


class FakeSupervisor:
    """Program states in a dict; records every call."""

    def __init__(self, states: dict[str, str] | None = None, running: bool = True) -> None:
        self.program_states = states or {}
        self.running = running
        self.calls: list[str] = []

    def is_running(self) -> bool:
        return self.running

    def start_daemon(self) -> None:
        self.calls.append("start_daemon")
        self.running = True

    def update(self, only: tuple[str, ...] = ()) -> list[str]:
        self.calls.append(" ".join(("update", *only)))
        return []

    def state(self, name: str) -> str:
        return self.program_states.get(name, "ABSENT")

    def states(self) -> dict[str, dict[str, Any]]:
        return {n: {"statename": s, "pid": 0} for n, s in self.program_states.items()}

    def start(self, name: str) -> None:
        self.calls.append(f"start {name}")
        self.program_states[name] = "RUNNING"

    def restart(self, name: str) -> None:
        self.calls.append(f"restart {name}")

    def log_tail(self, name: str, lines: int = 20) -> list[str]:
        return ["ERROR cannot bind", "exiting"]


class FakeProbe:
    def __init__(self, results: Sequence[bool]) -> None:
        self.results = list(results)

    def check(self, timeout: float = 1.0) -> tuple[bool, str]:
        ok = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        return ok, "GET /v3 -> 200" if ok else "connection refused"


class FakeHost:
    """Just enough of HostConnection for apt: which() and a canned dpkg-query."""

    name = "aio"

    def __init__(self, dpkg_output: str, has_apt: bool = True) -> None:
        self.dpkg_output = dpkg_output
        self.has_apt = has_apt
        self.commands: list[list[str]] = []

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 600, check: bool = True) -> str:
        self.commands.append(list(argv))
        return self.dpkg_output

    def which(self, program: str) -> str | None:
        return f"/usr/bin/{program}" if self.has_apt else None


def _ctx(tmp_path: Path, host: Any = None, supervisor: Any = None) -> HostContext:
    return HostContext(host or LocalHost("aio"), SitePaths(tmp_path, "lab"),
                       supervisor or FakeSupervisor(), SilentProgress())


# --- needed(fact, done): pure rules ------------------------------------------------

NEEDED_CASES: list[tuple[str, Any, Any, str | None, bool]] = [
    ("file missing", WriteFile(P, "a"), [None, None], "fp", True),
    ("file same", WriteFile(P, "a", 0o600), [digest("a"), 0o600], None, False),
    ("file other content", WriteFile(P, "a"), [digest("b"), 0o644], "fp", True),
    ("file other mode", WriteFile(P, "a", 0o600), [digest("a"), 0o644], "fp", True),
    ("dirs missing", EnsureDirs(((P, None, 0o755),)), False, "fp", True),
    ("dirs present, never recorded", EnsureDirs(((P, None, 0o755),)), True, None, True),
    ("dirs present and recorded", EnsureDirs(((P, None, 0o755),)), True, "fp", False),
    ("packages missing", InstallPackages(("a", "b")), ["b"], "fp", True),
    ("packages all there", InstallPackages(("a", "b")), [], None, False),
    ("command never ran", RunOnce(("true",)), None, None, True),
    ("command ran", RunOnce(("true",)), None, "fp", False),
    ("call never ran", CallOnce("c", lambda _: None), None, None, True),
    ("call ran", CallOnce("c", lambda _: None), None, "fp", False),
    ("supervisor down", UpdateSupervisor("d"), False, "fp", True),
    ("supervisor up, defs changed", UpdateSupervisor("d"), True, None, True),
    ("supervisor up, defs loaded", UpdateSupervisor("d"), True, "fp", False),
    ("program healthy, same config", StartProgram("p", "c"), ["RUNNING", True], "fp", False),
    ("program healthy, config changed", StartProgram("p", "c"), ["RUNNING", True], None,
     True),
    ("program running, unhealthy", StartProgram("p", "c"), ["RUNNING", False], "fp", True),
    ("program stopped", StartProgram("p", "c"), ["STOPPED", False], "fp", True),
    ("copy: source missing", CopyFile(P, P), [None, None], "fp", True),
    ("copy: target missing", CopyFile(P, P), ["s", None], "fp", True),
    ("copy: target differs", CopyFile(P, P), ["s", "t"], "fp", True),
    ("copy: target same", CopyFile(P, P), ["s", "s"], None, False),
]


@pytest.mark.parametrize(("name", "action", "fact", "done", "expected"), NEEDED_CASES,
                         ids=[c[0] for c in NEEDED_CASES])
def test_needed(name: str, action: Any, fact: Any, done: str | None, expected: bool) -> None:
    assert action.needed(fact, done) is expected


def test_fingerprints_hide_secrets_but_track_them() -> None:
    a = RunOnce(("manage", "bootstrap"), env=(("PASSWORD", "hunter22"),))
    b = RunOnce(("manage", "bootstrap"), env=(("PASSWORD", "other"),))
    assert "hunter22" not in a.fingerprint()
    assert a.fingerprint() != b.fingerprint()
    assert "hunter22" not in repr(WriteFile(P, "password = hunter22"))


# --- apply on a real LocalHost in tmp_path -----------------------------------------

def test_write_file_apply_mode_content_idempotent(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    target = tmp_path / "etc" / "svc" / "svc.conf"
    action = WriteFile(target, "[DEFAULT]\ndebug = false\n", mode=0o600)
    assert action.needed(action.probe(ctx), None)

    action.apply(ctx)
    assert target.read_text() == "[DEFAULT]\ndebug = false\n"
    assert target.stat().st_mode & 0o7777 == 0o600
    assert not action.needed(action.probe(ctx), None)

    inode = target.stat().st_ino
    assert ctx.host.write_file(target, action.content, mode=0o600) is False
    assert target.stat().st_ino == inode  # nothing rewritten
    assert not list(target.parent.glob(".*.tmp"))


def test_write_file_repairs_mode_drift(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    target = tmp_path / "clouds.yaml"
    action = WriteFile(target, "secret", mode=0o600)
    action.apply(ctx)
    os.chmod(target, 0o644)
    assert action.needed(action.probe(ctx), "fp")
    action.apply(ctx)
    assert target.stat().st_mode & 0o7777 == 0o600


def test_copy_file_apply(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    source = tmp_path / "venv" / "etc" / "api-paste.ini"
    source.parent.mkdir(parents=True)
    source.write_text("[pipeline:main]\n")
    target = tmp_path / "etc" / "nova" / "api-paste.ini"
    action = CopyFile(source, target, mode=0o640)

    assert action.needed(action.probe(ctx), None)
    action.apply(ctx)
    assert target.read_text() == "[pipeline:main]\n"
    assert target.stat().st_mode & 0o7777 == 0o640
    assert not action.needed(action.probe(ctx), None)

    source.write_text("[pipeline:main]\npipeline = new\n")  # a new release ships a new one
    assert action.needed(action.probe(ctx), "fp")


def test_ensure_dirs_apply(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    keys, data = tmp_path / "data" / "keys", tmp_path / "data"
    action = EnsureDirs(((data, None, 0o755), (keys, None, 0o700)))
    assert action.probe(ctx) is False
    action.apply(ctx)
    assert action.probe(ctx) is True
    assert keys.stat().st_mode & 0o777 == 0o700


def test_run_once_passes_env_not_argv(tmp_path: Path) -> None:
    out = tmp_path / "out"
    action = RunOnce(("sh", "-c", f'printf %s "$SECRET" > {out}'), env=(("SECRET", "s3"),))
    action.apply(_ctx(tmp_path))
    assert out.read_text() == "s3"


def test_call_once_calls_with_context(tmp_path: Path) -> None:
    seen: list[HostContext] = []
    ctx = _ctx(tmp_path)
    CallOnce("register", seen.append).apply(ctx)
    assert seen == [ctx]


# --- apply with fakes of our own protocols -----------------------------------------

def test_install_packages_probe_reports_missing(tmp_path: Path) -> None:
    host = FakeHost("haproxy ii \nmemcached un \n")
    action = InstallPackages(("memcached", "haproxy", "rabbitmq-server"))
    assert action.probe(_ctx(tmp_path, host)) == ["memcached", "rabbitmq-server"]
    assert host.commands[0][0] == "dpkg-query"


def test_install_packages_without_apt_is_a_prerequisite_error(tmp_path: Path) -> None:
    action = InstallPackages(("haproxy",))
    ctx = _ctx(tmp_path, FakeHost("", has_apt=False))
    assert action.probe(ctx) == ["haproxy"]
    with pytest.raises(PrerequisiteError, match="apt-get not found"):
        action.apply(ctx)


def test_update_supervisor_apply(tmp_path: Path) -> None:
    sup = FakeSupervisor(running=False)
    ctx = _ctx(tmp_path, supervisor=sup)
    action = UpdateSupervisor("d", ("nova-api", "nova-compute"))
    assert action.probe(ctx) is False
    action.apply(ctx)
    assert sup.calls == ["start_daemon", "update nova-api nova-compute"]
    assert action.probe(ctx) is True


def test_start_program_starts_then_waits_healthy(tmp_path: Path) -> None:
    sup = FakeSupervisor()
    action = StartProgram("keystone-api", "c", (FakeProbe([False, True]),), start_timeout=5)  # type: ignore[arg-type]
    action.apply(_ctx(tmp_path, supervisor=sup))
    assert sup.calls == ["start keystone-api"]


def test_start_program_restarts_a_running_program(tmp_path: Path) -> None:
    sup = FakeSupervisor({"keystone-api": "RUNNING"})
    action = StartProgram("keystone-api", "c", (FakeProbe([True]),))  # type: ignore[arg-type]
    ctx = _ctx(tmp_path, supervisor=sup)
    assert action.probe(ctx) == ["RUNNING", True]
    action.apply(ctx)
    assert sup.calls == ["restart keystone-api"]


def test_start_program_gives_up_with_log_tail(tmp_path: Path) -> None:
    class Crashing(FakeSupervisor):
        def start(self, name: str) -> None:
            self.calls.append(f"start {name}")
            self.program_states[name] = "FATAL"

    sup = Crashing()
    action = StartProgram("glance-api", "c", (FakeProbe([False]),), start_timeout=30)  # type: ignore[arg-type]
    with pytest.raises(ServiceStartError) as info:
        action.apply(_ctx(tmp_path, supervisor=sup))
    err = info.value
    assert err.service == "glance-api"
    assert "state FATAL" in err.reason and "connection refused" in err.reason
    assert "ERROR cannot bind" in str(err)
    assert action.probe(_ctx(tmp_path, supervisor=sup)) == ["FATAL", False]


# --- ports held by someone else -----------------------------------------------------

def test_port_holder_names_a_listener_and_an_outgoing_connection() -> None:
    host = LocalHost("aio")
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client.connect(server.getsockname())
        listening, outgoing = server.getsockname()[1], client.getsockname()[1]
        assert f"pid={os.getpid()}" in (host.port_holder(listening) or "")
        held = host.port_holder(outgoing) or ""
        assert held.startswith("a connection of") and f"pid={os.getpid()}" in held
    assert host.port_holder(listening) is None


def test_swap_refuses_to_start_an_instance_whose_port_is_taken(tmp_path: Path) -> None:
    sup = FakeSupervisor({"glance-api": "RUNNING"})
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        swap = SwapApi("glance", "glance-api", "glance-api-green", "glance-blue", "glance-green",
                       FakeProbe([True]), tmp_path / "haproxy.sock", to_port=port)  # type: ignore[arg-type]
        with pytest.raises(PortInUseError) as info:
            swap.apply(_ctx(tmp_path, supervisor=sup))
    assert info.value.port == port and "glance-api-green" in str(info.value)
    assert f"pid={os.getpid()}" in str(info.value)
    assert sup.calls == []


# --- retiring the older release after commit ---------------------------------------

class LoadedSupervisor(FakeSupervisor):
    def states(self) -> dict[str, dict[str, str]]:
        return {name: {"statename": s} for name, s in self.program_states.items()}

    def update(self, only: tuple[str, ...] = ()) -> list[str]:
        super().update(only)
        for name in only:
            self.program_states.pop(name, None)
        return list(only)


def test_retire_removes_stopped_old_programs_and_old_configuration(tmp_path: Path) -> None:
    defs, etc = tmp_path / "supervisor", tmp_path / "etc" / "2026.1"
    for name in ("glance-api", "glance-api-green", "mariadb"):
        (defs / f"{name}.conf").parent.mkdir(parents=True, exist_ok=True)
        (defs / f"{name}.conf").write_text("[program]")
    (etc / "glance").mkdir(parents=True)
    (etc / "glance" / "glance-api.conf").write_text("x")
    sup = LoadedSupervisor({"glance-api": "STOPPED", "glance-api-green": "RUNNING",
                            "mariadb": "RUNNING"})
    ctx = _ctx(tmp_path, supervisor=sup)
    retire = RetireRelease("2026.1", etc, defs, ("glance-api-green", "mariadb"))
    assert retire.probe(ctx) == [True, ["glance-api"]]
    assert retire.needed(retire.probe(ctx), "fp")
    retire.apply(ctx)
    assert sorted(p.name for p in defs.iterdir()) == ["glance-api-green.conf", "mariadb.conf"]
    assert not etc.exists() and sup.calls == ["update glance-api"]
    assert retire.probe(ctx) == [False, []]
    assert not retire.needed(retire.probe(ctx), "fp")
    retire.apply(ctx)  # idempotent: nothing left to do
    assert sup.calls == ["update glance-api"]


def test_sockets_no_process_owns_do_not_hold_a_port() -> None:
    from onestack.drivers.host import holder_from_ss

    orphans = ("FIN-WAIT-2 0 0 127.0.0.1:19292 127.0.0.1:50000\n"
               "TIME-WAIT 0 0 127.0.0.1:19292 127.0.0.1:50002\n")
    assert holder_from_ss(orphans) is None
    client = 'ESTAB 0 0 127.0.0.1:19292 127.0.0.1:13306 users:(("python",pid=7,fd=3))\n'
    assert holder_from_ss(orphans + client) == \
        'a connection of (("python",pid=7,fd=3)) (state ESTAB)'


# --- every file action acts through its host, never on this machine -----------------

class MemoryHost:
    """A host whose files live in dicts: paths that do not exist on this machine."""

    name = "cmp1"

    def __init__(self, files: dict[Path, tuple[str, int]] | None = None,
                 dirs: set[Path] | None = None) -> None:
        self.files = dict(files or {})
        self.dirs = set(dirs or ())
        self.owners: dict[Path, str] = {}
        self.commands: list[list[str]] = []

    def file_owner(self, path: Path) -> str | None:
        return self.owners.get(path, "root:root") if path in self.files else None

    def file_digest(self, path: Path) -> str | None:
        return digest(self.files[path][0]) if path in self.files else None

    def file_mode(self, path: Path) -> int | None:
        return self.files[path][1] if path in self.files else None

    def is_dir(self, path: Path) -> bool:
        return path in self.dirs

    def read_file(self, path: Path) -> str | None:
        return self.files[path][0] if path in self.files else None

    def write_file(self, path: Path, content: str, *, mode: int = 0o644,
                   owner: str | None = None) -> bool:
        self.files[path] = (content, mode)
        return True

    def ensure_dir(self, path: Path, *, mode: int = 0o755, owner: str | None = None) -> None:
        self.dirs.add(path)

    def run(self, argv: Sequence[str], **kwargs: Any) -> str:
        self.commands.append(list(argv))
        return ""


REMOTE = Path("/nonexistent-on-this-machine/etc")


def test_a_file_of_the_wrong_owner_is_given_to_its_owner(tmp_path: Path) -> None:
    """Found upgrading a lab made before services had users: keystone's unchanged
    configuration stayed root's and keystone could not read it."""
    conf = REMOTE / "keystone.conf"
    host = MemoryHost({conf: ("[DEFAULT]\n", 0o640)})
    action = WriteFile(conf, "[DEFAULT]\n", mode=0o640, owner="root:keystone")
    fact = action.probe(_ctx(tmp_path, host))
    assert fact == [digest("[DEFAULT]\n"), 0o640, "root:root"]
    assert action.needed(fact, "fp")
    action.apply(_ctx(tmp_path, host))
    assert ["chown", "root:keystone", str(conf)] in host.commands
    host.owners[conf] = "root:keystone"
    assert not action.needed(action.probe(_ctx(tmp_path, host)), "fp")
    # An owner without a group is satisfied by any group of that user.
    plain = WriteFile(conf, "[DEFAULT]\n", mode=0o640, owner="root")
    assert not plain.needed(plain.probe(_ctx(tmp_path, host)), "fp")


def test_write_file_probes_through_its_host(tmp_path: Path) -> None:
    conf = REMOTE / "nova.conf"
    host = MemoryHost({conf: ("[DEFAULT]\n", 0o640)})
    action = WriteFile(conf, "[DEFAULT]\n", mode=0o640)
    assert action.probe(_ctx(tmp_path, host)) == [digest("[DEFAULT]\n"), 0o640]
    assert not action.needed(action.probe(_ctx(tmp_path, host)), "fp")
    host.files[conf] = ("[DEFAULT]\n", 0o644)
    assert action.needed(action.probe(_ctx(tmp_path, host)), "fp")


def test_ensure_dirs_probes_through_its_host(tmp_path: Path) -> None:
    host = MemoryHost(dirs={REMOTE})
    assert EnsureDirs(((REMOTE, None, 0o755),)).probe(_ctx(tmp_path, host)) is True
    assert EnsureDirs(((REMOTE / "x", None, 0o755),)).probe(_ctx(tmp_path, host)) is False


def test_copy_file_reads_its_source_on_its_host(tmp_path: Path) -> None:
    source, target = REMOTE / "venv-paste.ini", REMOTE / "api-paste.ini"
    host = MemoryHost({source: ("[pipeline:main]\n", 0o644)})
    action = CopyFile(source, target, mode=0o640)
    ctx = _ctx(tmp_path, host)
    assert action.needed(action.probe(ctx), None)
    action.apply(ctx)
    assert host.files[target] == ("[pipeline:main]\n", 0o640)
    assert not action.needed(action.probe(ctx), "fp")


def test_copy_file_without_its_source_names_the_host(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"(?s)\(on cmp1\).*not there"):
        CopyFile(REMOTE / "gone", REMOTE / "t").apply(_ctx(tmp_path, MemoryHost()))


def test_backup_probe_looks_on_its_host(tmp_path: Path) -> None:
    from onestack.steps.upgrade_actions import BackupDatabases

    action = BackupDatabases(REMOTE / "sock", REMOTE / "b1", ())
    host = MemoryHost({REMOTE / "b1" / "backup.json": ("{}", 0o600)})
    assert action.probe(_ctx(tmp_path, host)) is False
    host.files[action.dump] = ("gz", 0o600)
    assert action.probe(_ctx(tmp_path, host)) is True


# --- the heartbeat probe runs where the database is ---------------------------------

class DatabaseHost:
    """The controller over SSH, as far as the probe sees it: a mariadb client."""

    name = "ctl1"

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.commands: list[list[str]] = []
        self.sql: list[str] = []

    def run(self, argv: Sequence[str], **kwargs: Any) -> str:
        self.commands.append(list(argv))
        self.sql.append(kwargs.get("input") or "")
        return self.answer


def test_the_heartbeat_probe_runs_on_the_database_host(tmp_path: Path) -> None:
    from onestack.drivers.mysql import ServiceReportProbe
    from onestack.steps.actions import where

    probe = ServiceReportProbe(REMOTE / "mysqld.sock", "nova", "nova-compute", "cmp1",
                               runs_on="ctl1")
    db = DatabaseHost("4\n")
    ctx = _ctx(tmp_path, MemoryHost())
    ctx.hosts = {"ctl1": db, "cmp1": ctx.host}  # type: ignore[dict-item]
    assert where(probe, ctx).check() == (True, "nova-compute@cmp1 reported 4s ago")
    argv = db.commands[0]
    assert argv[:2] == ["mariadb", f"--socket={REMOTE / 'mysqld.sock'}"]
    assert "host='cmp1'" in db.sql[0] and "`binary`='nova-compute'" in db.sql[0]
    db.answer = ""
    assert where(probe, ctx).check() == (False, "nova-compute@cmp1 has not registered")
    db.answer = "400\n"
    assert where(probe, ctx).check()[0] is False


def test_on_this_machine_the_probe_is_unchanged(tmp_path: Path) -> None:
    from onestack.drivers.mysql import ServiceReportProbe
    from onestack.steps.actions import where

    probe = ServiceReportProbe(P, "nova", "nova-compute", "aio", runs_on="aio")
    ctx = _ctx(tmp_path)
    ctx.hosts = {"aio": ctx.host}
    assert where(probe, ctx) is probe
    assert where(probe, _ctx(tmp_path)) is probe  # no hosts known: as before


def test_the_operators_credentials_are_written_where_onestack_runs(tmp_path: Path) -> None:
    # issue 22 (ADR 0027): a controller reached over SSH got clouds.yaml, and the
    # deploy host, where the operator and the next plan look, had none.
    from onestack.steps.actions import WriteOperatorFile

    controller = MemoryHost()
    ctx = _ctx(tmp_path, controller)
    action = WriteOperatorFile(tmp_path / "sites" / "s1" / "clouds.yaml", "clouds: {}\n")
    assert action.needed(action.probe(ctx), None)
    action.apply(ctx)
    assert action.path.read_text() == "clouds: {}\n"
    assert action.path.stat().st_mode & 0o777 == 0o600
    assert not controller.files and not action.needed(action.probe(ctx), "done")
