"""Site operations shared by the CLI and the API: plan, up, down.

This is the small public facade: the front-ends call these functions and render
what they return; they never reach into services or drivers themselves.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from onestack.core.progress import Progress
from onestack.core.step import Plan, Step, make_plan
from onestack.drivers.host import LocalHost
from onestack.drivers.supervisor import Supervisor
from onestack.engine.lock import site_lock
from onestack.engine.runner import apply_plan
from onestack.errors import PortInUseError, PrerequisiteError
from onestack.model.loader import dump_site
from onestack.model.ports import API_PORTS, Ports
from onestack.plans.deploy import deploy_steps
from onestack.state.site import SiteHandle, series_of, service_context
from onestack.steps.context import HostContext


def host_context(handle: SiteHandle, progress: Progress) -> HostContext:
    return HostContext(LocalHost(handle.site.controller.name), handle.paths,
                       handle.supervisor(), progress)


def gather_facts(steps: list[Step], hctx: HostContext) -> dict[str, Any]:
    """Read-only probes of every step's present state."""
    return {s.id: s.action.probe(hctx) for s in steps}


def default_wheelhouse(handle: SiteHandle, series: str) -> Path | None:
    path = handle.paths.wheelhouse / series
    return path if path.is_dir() else None


def plan_up(handle: SiteHandle, hctx: HostContext, generate_secrets: bool = True) -> Plan:
    """What ``up`` would do on this host now."""
    series = series_of(handle)
    ctx = service_context(handle, series, generate=generate_secrets)
    steps = deploy_steps(ctx, default_wheelhouse(handle, series))
    journal = handle.journal() if handle.paths.state_db.exists() else None
    done = journal.completed() if journal else {}
    if journal:
        journal.close()
    return make_plan("up", steps, gather_facts(steps, hctx), done)


def check_prerequisites() -> None:
    """Root, Debian with apt, a usable Python: or a clear error."""
    if os.geteuid() != 0:
        raise PrerequisiteError("onestack up must run as root (it installs packages and "
                                "runs services as their own users)", "run it with sudo")
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        raise PrerequisiteError("apt-get/dpkg not found: the lab needs a Debian 12 host")


def _port_owner(port: int, ports: Ports) -> str:
    for api in API_PORTS:
        if port == ports.frontend(api):
            return "haproxy"
        if port == ports.backend(api):
            return f"{api}-api"
    for name in ("mariadb", "rabbitmq", "memcached"):
        if port == ports.infra(name):
            return name
    return "rabbitmq" if port == ports.infra("rabbitmq-dist") else "haproxy"


def check_ports(handle: SiteHandle, hctx: HostContext) -> None:
    """Every port the site needs is free, or held by the site's own program."""
    ports = Ports(handle.site.port_offset)
    states = hctx.supervisor.states()
    for label, port in ports.all_listening().items():
        owner = _port_owner(port, ports)
        if states.get(owner, {}).get("statename") in ("RUNNING", "STARTING", "BACKOFF"):
            continue
        holder = hctx.host.port_holder(port)
        if holder:
            raise PortInUseError(handle.site.controller.name, port, f"{holder} (needed for "
                                 f"{label})")


def up(handle: SiteHandle, progress: Progress) -> Plan:
    """Bring the site to its declared state. Idempotent; resumes after interruption."""
    check_prerequisites()
    with site_lock(handle.paths.site, handle.site.name, "up"):
        hctx = host_context(handle, progress)
        plan = plan_up(handle, hctx)
        if plan.is_empty:
            return plan
        check_ports(handle, hctx)
        _record_site(handle)
        journal = handle.journal()
        try:
            apply_plan(plan, hctx, journal, progress)
            journal.set_fact("release", series_of(handle))
        finally:
            journal.close()
        return plan


def _record_site(handle: SiteHandle) -> None:
    """Keep the site definition with the site's state (the default lab's too)."""
    hctx = LocalHost()
    hctx.write_file(handle.paths.site_file, dump_site(handle.site), mode=0o640)


def down(handle: SiteHandle, progress: Progress, purge: bool = False) -> None:
    """Stop every service of the site; with ``purge`` also delete its state and secrets."""
    with site_lock(handle.paths.site, handle.site.name, "down"):
        sup = handle.supervisor()
        if sup.is_running():
            _stop_in_order(handle, sup, progress)
            sup.shutdown()
        _stop_epmd_if_unused(progress)
    if purge and handle.paths.site.exists():
        progress.message(f"removing {handle.paths.site}")
        shutil.rmtree(handle.paths.site)


def _stop_in_order(handle: SiteHandle, sup: Supervisor, progress: Progress) -> None:
    """OpenStack services first (together), then infrastructure in reverse deploy order."""
    from onestack.services import registry

    ctx = service_context(handle, generate=False)
    running = set(sup.states())
    openstack = [p.name for m in registry.OPENSTACK for p in m.programs(ctx) if p.name in running]
    progress.message(f"stopping {', '.join(openstack) or 'no OpenStack services'}")
    sup.stop_many(openstack)
    for module in reversed(registry.INFRASTRUCTURE):
        names = [p.name for p in module.programs(ctx) if p.name in running]
        if names:
            progress.message(f"stopping {', '.join(names)}")
            sup.stop_many(names)


def _stop_epmd_if_unused(progress: Progress) -> None:
    host = LocalHost()
    if host.which("epmd") is None:
        return
    names = host.run(["epmd", "-names"], check=False)
    if "epmd: up and running" in names and "name " not in names:
        host.run(["epmd", "-kill"], check=False)
