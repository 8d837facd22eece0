"""``onestack status``: every component's version, process state, address and health."""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any

from onestack.drivers import apt, processes
from onestack.drivers.host import LocalHost
from onestack.drivers.probes import HttpProbe, Probe, TcpProbe
from onestack.drivers.python_env import installed_versions
from onestack.drivers.supervisor import program_marker
from onestack.services import registry
from onestack.services.base import ServiceContext
from onestack.state.journal import process_alive
from onestack.state.site import SiteHandle, series_of, service_context


@dataclass
class ComponentStatus:
    """One row of ``onestack status``."""

    service: str
    process: str
    state: str
    pid: int | None  # the program's main process (what runs under its PID namespace)
    uptime: str
    version: str
    address: str
    healthy: bool | None
    detail: str
    supervised_pid: int | None = None  # what supervisord started (the tree wrapper)
    crashes: int = 0  # unexpected exits in the last CRASH_WINDOW seconds
    orphans: tuple[int, ...] = ()  # processes of the program outside its supervised tree


# A program that crashed this often in this window and has not stayed up since for
# STEADY seconds is flapping (a respawn loop shows RUNNING with a few seconds of uptime);
# one that crashed as often but has run steadily since is only counted.
CRASH_WINDOW = 600
FLAPPING = 3
STEADY = 30


def _address(probe: object) -> str:
    if isinstance(probe, HttpProbe):
        return probe.url
    if isinstance(probe, TcpProbe):
        return f"{probe.host}:{probe.port}"
    return ""


def _versions(ctx: ServiceContext) -> dict[str, str]:
    host = LocalHost()
    versions = {}
    for module in registry.INFRASTRUCTURE:
        versions[module.name] = apt.version(host, module.PACKAGES[0]) or "not installed"
    venv = installed_versions(ctx.venv) if ctx.venv.exists() else {}
    for service in registry.OPENSTACK:
        versions[service.name] = venv.get(service.PACKAGE, "not installed")
    return versions


def collect(handle: SiteHandle) -> dict[str, Any]:
    """Status of the whole site as plain data (for the table and ``--json``)."""
    ctx = service_context(handle, generate=False)
    supervisor = handle.supervisor()
    states = supervisor.states()
    crashes = supervisor.unexpected_exits(time.time() - CRASH_WINDOW) if states else {}
    versions = _versions(ctx)
    host = LocalHost()
    parent_of = processes.parents(host)
    rows: list[ComponentStatus] = []
    for module in registry.ALL:
        checks = {c.name: c.probe for c in module.checks(ctx)}
        for program in module.programs(ctx):
            row = _row(module.name, program.name, states.get(program.name, {}),
                       versions[module.name], checks.get(program.name))
            marker = program_marker(ctx.paths.log, program.name)
            rows.append(_supervision(row, host, marker, parent_of,
                                     crashes.get(program.name, 0), checks.get(program.name),
                                     _up_seconds(states.get(program.name, {}))))
    return {"site": handle.site.name, "release": series_of(handle),
            "supervisor": "running" if states else "stopped",
            "last_run": _last_run(handle), "components": [asdict(r) for r in rows],
            "healthy": all(r.healthy for r in rows)}


def _row(service: str, program: str, info: dict[str, Any], version: str,
         probe: Probe | None) -> ComponentStatus:
    state = str(info.get("statename", "STOPPED" if info else "ABSENT"))
    healthy: bool | None = None
    detail = str(info.get("description", ""))
    if probe is not None:
        healthy, detail = probe.check() if state == "RUNNING" else (False, "not running")
    elif info:
        healthy = state == "RUNNING"
    else:
        healthy = False
    return ComponentStatus(service, program, state, info.get("pid") or None,
                           _uptime(info), version, _address(probe), healthy, detail)


def _supervision(row: ComponentStatus, host: LocalHost, marker: str,
                 parent_of: dict[int, int], crashes: int,
                 probe: Probe | None, up_seconds: int) -> ComponentStatus:
    """What the supervisor's state alone hides: the main process under the wrapper,
    processes of the program outside supervision, a port held by another process,
    and crashes (a program respawned every few seconds still shows RUNNING)."""
    supervised = row.pid if row.state in ("RUNNING", "STARTING", "STOPPING") else None
    split = processes.split_processes(processes.marked_pids(host, marker), parent_of,
                                      supervised)
    row.supervised_pid, row.pid = supervised, processes.main_pid(parent_of, supervised)
    row.crashes, row.orphans = crashes, split.outside
    problems = []
    if split.outside:
        problems.append(f"{len(split.outside)} process(es) outside supervision "
                        f"(pids {', '.join(map(str, split.outside))})")
    port = _port(probe)
    if port and supervised:
        tree = processes.descendants(parent_of, supervised)
        strangers = processes.listening_pids(host, port) - tree
        if strangers:
            problems.append(f"port {port} held by pid {', '.join(map(str, sorted(strangers)))}"
                            f", not by the supervised program")
    if flapping(crashes, up_seconds):
        problems.append(f"flapping: {crashes} crashes in the last {CRASH_WINDOW // 60} min, "
                        f"up {up_seconds} s since the last")
    if problems:
        row.healthy, row.detail = False, "; ".join(problems)
    return row


def _port(probe: Probe | None) -> int | None:
    if isinstance(probe, TcpProbe):
        return probe.port
    if isinstance(probe, HttpProbe):
        return urllib.parse.urlsplit(probe.url).port
    return None


def flapping(crashes: int, up_seconds: int) -> bool:
    """Crashing again and again: often in the window, and not steady since."""
    return crashes >= FLAPPING and up_seconds < STEADY


def _up_seconds(info: dict[str, Any]) -> int:
    if info.get("statename") != "RUNNING":
        return 0
    return int(info.get("now", 0)) - int(info.get("start", 0))


def _uptime(info: dict[str, Any]) -> str:
    if info.get("statename") != "RUNNING":
        return "-"
    seconds = int(info.get("now", 0)) - int(info.get("start", 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _last_run(handle: SiteHandle) -> dict[str, Any] | None:
    if not handle.paths.state_db.exists():
        return None
    journal = handle.journal()
    try:
        runs = journal.runs(1)
        if not runs:
            return None
        run = runs[0]
        steps = journal.steps_of(run.id)
        failed = [s for s in steps if s["status"] != "done"]
        status = run.status
        if status == "running" and not process_alive(run.pid):
            status = "interrupted"
        return {"id": run.id, "operation": run.operation, "status": status,
                "detail": run.detail, "stopped_at": failed[-1]["step"] if failed else None}
    finally:
        journal.close()
