"""``onestack status``: every component's version, process state, address and health."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from onestack.catalog.releases import canonical_name, load_bundle
from onestack.core.host import HostConnection
from onestack.drivers import apt, processes
from onestack.drivers.host import LocalHost
from onestack.drivers.probes import AllOf, HttpProbe, Probe, TcpProbe
from onestack.drivers.python_env import MARKER_FILE, installed_versions, marker_matches
from onestack.drivers.supervisor import program_marker
from onestack.drivers.tls import CertificateProbe
from onestack.errors import HostError
from onestack.model.site import Host
from onestack.plans.deploy import placed_programs
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
    host: str = ""  # the site host it runs on


# A program that crashed this often in this window and has not stayed up since for
# STEADY seconds is flapping (a respawn loop shows RUNNING with a few seconds of uptime);
# one that crashed as often but has run steadily since is only counted.
CRASH_WINDOW = 600
FLAPPING = 3
STEADY = 30


def _listening(probe: object) -> object:
    """The probe of what the component listens on (the first of several)."""
    return probe.probes[0] if isinstance(probe, AllOf) and probe.probes else probe


def _address(probe: object) -> str:
    probe = _listening(probe)
    if isinstance(probe, HttpProbe):
        return probe.url
    if isinstance(probe, TcpProbe):
        return f"{probe.host}:{probe.port}"
    return ""


def _versions(host: HostConnection, ctx: ServiceContext) -> dict[str, str]:
    """Versions on the controller: its Debian packages', and its OpenStack services'
    (read from the environment here, from the bundle's lock on another machine)."""
    versions = {module.name: apt.version(host, module.PACKAGES[0]) or "not installed"
                for module in registry.INFRASTRUCTURE}
    if not isinstance(host, LocalHost):
        return {**versions, **_remote_versions(host, ctx)}
    venv = installed_versions(ctx.venv) if ctx.venv.exists() else {}
    for service in registry.OPENSTACK:
        versions[service.name] = venv.get(service.PACKAGE, "not installed")
    return versions


def _remote_versions(host: HostConnection, ctx: ServiceContext) -> dict[str, str]:
    """Versions of the OpenStack services on another host: its release environment's
    marker names the bundle, whose lock says every version."""
    bundle = load_bundle(ctx.series)
    if not marker_matches(bundle, host.read_file(ctx.venv / MARKER_FILE)):
        return {}
    locked = {p.key: p.version for p in bundle.lock.packages}
    return {m.name: locked.get(canonical_name(m.PACKAGE), "?") for m in registry.OPENSTACK}


def collect(handle: SiteHandle) -> dict[str, Any]:
    """Status of the whole site, every host's programs, as plain data (for the table
    and ``--json``). A host that cannot be reached shows its programs UNREACHABLE."""
    ctx = service_context(handle, generate=False)
    checks = {c.name: c.probe for module in registry.ALL for c in module.checks(ctx)}
    by_host: dict[str, list[tuple[str, str]]] = {}
    for host, service, program in placed_programs(ctx):
        by_host.setdefault(host, []).append((service, program))
    rows: list[ComponentStatus] = []
    reached: dict[str, str] = {}
    connect = _connections(handle)
    for site_host in handle.site.hosts:
        if site_host.name in by_host:
            rows += _host_rows(handle, ctx, site_host, by_host[site_host.name], checks,
                               reached, connect)
    certificates = _certificates(checks)
    return {"site": handle.site.name, "release": series_of(handle),
            "supervisor": reached.get(ctx.host, "stopped"), "hosts": reached,
            "last_run": _last_run(handle), "components": [asdict(r) for r in rows],
            "certificates": certificates,
            "healthy": all(r.healthy for r in rows) and all(c["healthy"] for c in certificates)}


def _certificates(checks: dict[str, Probe]) -> list[dict[str, Any]]:
    """The site's certificates (the APIs'): names, expiry, days left; unhealthy when
    the next ``up`` would renew it (or it is not the site CA's)."""
    out = []
    for name, probe in checks.items():
        if isinstance(probe, CertificateProbe):
            healthy, detail = probe.check()
            out.append({"name": name, "path": str(probe.path), "healthy": healthy,
                        "detail": detail})
    return out


def _host_rows(handle: SiteHandle, ctx: ServiceContext, site_host: Host,
               programs: list[tuple[str, str]], checks: dict[str, Probe],
               reached: dict[str, str],
               connect: Callable[[str], HostConnection | None]) -> list[ComponentStatus]:
    """The rows of one host's programs (``reached``: what its supervisor is, or why
    the host could not be reached)."""
    name, controller = site_host.name, site_host.name == ctx.host
    host = connect(name) or handle.connection(site_host)
    try:
        supervisor = handle.supervisor_on(host)
        states = supervisor.states()
        crashes = supervisor.unexpected_exits(time.time() - CRASH_WINDOW) if states else {}
        versions = _versions(host, ctx) if controller else _remote_versions(host, ctx)
        parent_of = processes.parents(host)
    except HostError as exc:
        reached[name] = f"unreachable: {exc}"
        return [ComponentStatus(service, program, "UNREACHABLE", None, "-", "?", "", False,
                                str(exc), host=name) for service, program in programs]
    reached[name] = "running" if states else "stopped"
    rows = []
    for service, program in programs:
        probe = checks.get(program if controller else f"{program}/{name}")
        probe = _on_its_host(probe, host, connect) if probe is not None else None
        info = states.get(program, {})
        row = _row(service, program, info, versions.get(service, "not installed"), probe)
        row.host = name
        rows.append(_supervision(row, host, program_marker(ctx.paths.log, program),
                                 parent_of, crashes.get(program, 0), probe,
                                 _up_seconds(info)))
    return rows


def _on_its_host(probe: Probe, host: HostConnection,
                 connect: Callable[[str], HostConnection | None]) -> Probe:
    """A probe bound to where it must run, like the steps bind theirs: the host it
    names (``runs_on``), else the host of its program (``host``); unbound it would
    ask this machine."""
    if isinstance(probe, AllOf):
        return AllOf(tuple(_on_its_host(p, host, connect) for p in probe.probes))
    through = getattr(probe, "through", None)
    runs_on = getattr(probe, "runs_on", "")
    target = connect(runs_on) if runs_on else host
    if through is None or target is None:
        return probe
    bound: Probe = through(target)
    return bound


def _connections(handle: SiteHandle) -> Callable[[str], HostConnection | None]:
    """The connection of the site's host of a name (None: no such host), each made
    once for the whole status."""
    hosts = {h.name: h for h in handle.site.hosts}
    made: dict[str, HostConnection] = {}

    def connect(name: str) -> HostConnection | None:
        if name not in made and name in hosts:
            made[name] = handle.connection(hosts[name])
        return made.get(name)
    return connect


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


def _supervision(row: ComponentStatus, host: HostConnection, marker: str,
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
    probe = _listening(probe)  # type: ignore[assignment]
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
