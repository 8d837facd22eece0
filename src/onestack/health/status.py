"""``onestack status``: every component's version, process state, address and health."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from onestack.drivers import apt
from onestack.drivers.host import LocalHost
from onestack.drivers.probes import HttpProbe, Probe, TcpProbe
from onestack.drivers.python_env import installed_versions
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
    pid: int | None
    uptime: str
    version: str
    address: str
    healthy: bool | None
    detail: str


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
    for module in registry.OPENSTACK:
        versions[module.name] = venv.get(module.PACKAGE, "not installed")
    return versions


def collect(handle: SiteHandle) -> dict[str, Any]:
    """Status of the whole site as plain data (for the table and ``--json``)."""
    ctx = service_context(handle, generate=False)
    states = handle.supervisor().states()
    versions = _versions(ctx)
    rows: list[ComponentStatus] = []
    for module in registry.ALL:
        checks = {c.name: c.probe for c in module.checks(ctx)}
        for program in module.programs(ctx):
            rows.append(_row(module.name, program.name, states.get(program.name, {}),
                             versions[module.name], checks.get(program.name)))
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
