"""Site operations shared by the CLI and the API: plan, up, down.

This is the small public facade: the front-ends call these functions and render
what they return; they never reach into services or drivers themselves.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.catalog.releases import available_series
from onestack.drivers.host import LocalHost
from onestack.drivers.secrets import SecretStore
from onestack.drivers.site_file import read_site_file
from onestack.drivers.supervisor import Supervisor
from onestack.engine.journal import Journal
from onestack.engine.lock import site_lock
from onestack.engine.progress import Progress
from onestack.engine.runner import apply_plan
from onestack.engine.step import Plan, Step, make_plan
from onestack.errors import (
    InvalidOptionError,
    PortInUseError,
    PrerequisiteError,
    SiteFileError,
    SiteNotFoundError,
)
from onestack.model.loader import dump_site
from onestack.model.paths import SitePaths
from onestack.model.ports import API_PORTS, Ports
from onestack.model.site import SITE_NAME_PATTERN, Site, default_lab_site
from onestack.plans.deploy import deploy_steps, required_secrets
from onestack.services.base import ServiceContext
from onestack.steps.context import HostContext


@dataclass
class SiteHandle:
    """A site as onestack finds it on this machine."""

    site: Site
    paths: SitePaths
    site_file: Path | None

    @property
    def secrets(self) -> SecretStore:
        return SecretStore(self.paths.secrets_file)

    def supervisor(self) -> Supervisor:
        return Supervisor(self.paths.run / "supervisord.conf",
                          self.paths.run / "supervisor.sock")

    def journal(self) -> Journal:
        return Journal(self.paths.state_db)


DEFAULT_SITE = "lab"


def site_exists(paths: SitePaths) -> bool:
    """A site exists here once ``up`` recorded its site file, or it has a journal."""
    return paths.site_file.is_file() or paths.state_db.is_file()


def known_sites(home: Path) -> list[str]:
    """The sites that exist under a home (for hints)."""
    root = home / "sites"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if re.fullmatch(SITE_NAME_PATTERN, p.name)
                  and site_exists(SitePaths(home, p.name)))


def open_site(home: Path, name: str | None = None, site_file: Path | None = None,
              release: str | None = None, *, must_exist: bool = False) -> SiteHandle:
    """The site a command acts on, by one rule for every command; creates nothing.

    Its name is ``name`` (``--site``), else the name inside ``site_file``, else
    ``lab``; the two must agree when both are given. Its definition is
    ``site_file``, else the site's recorded ``site.yaml``, else the default lab.
    ``must_exist``: refuse a site that was never deployed on this machine (every
    command but ``up`` and ``plan``).
    """
    releases = available_series()
    site = read_site_file(site_file, releases) if site_file is not None else None
    if site is not None and name is not None and name != site.name:
        raise InvalidOptionError("--site", name, f"{site_file} describes site {site.name}; "
                                                 f"use --site {site.name}, or leave --site out")
    chosen = site.name if site is not None else name or DEFAULT_SITE
    paths = SitePaths(home, chosen)
    if must_exist and not site_exists(paths):
        raise SiteNotFoundError(chosen, str(home), known_sites(home))
    source = site_file
    if site is None and paths.site_file.exists():
        source, site = paths.site_file, read_site_file(paths.site_file, releases)
        if site.name != chosen:
            raise SiteFileError(str(source), None, "name",
                                f"describes site {site.name} but is stored for site {chosen}")
    if site is None:
        site = default_lab_site(chosen, release or "2026.1")
    return SiteHandle(site, paths, source)


def recorded_fact(handle: SiteHandle, key: str) -> Any:
    """A fact the journal keeps about the site (release in force, live API colors...)."""
    if not handle.paths.state_db.exists():
        return None
    journal = handle.journal()
    try:
        return journal.fact(key)
    finally:
        journal.close()


def series_of(handle: SiteHandle) -> str:
    """The release the site runs now (recorded), or the one its site file asks for."""
    recorded = recorded_fact(handle, "release")
    return str(recorded) if recorded else handle.site.release


def colors_of(handle: SiteHandle) -> dict[str, str]:
    """Which instance (blue/green) of each API is live."""
    return dict(recorded_fact(handle, "api_colors") or {})


def service_context(handle: SiteHandle, series: str | None = None,
                    generate: bool = True,
                    colors: dict[str, str] | None = None) -> ServiceContext:
    """The pure context services describe themselves from (secrets generated if asked)."""
    store = handle.secrets
    names = required_secrets()
    values = ({n: store.ensure(n) for n in names} if generate
              else {n: store.get(n) or "" for n in names})
    chosen = series or series_of(handle)
    return ServiceContext(site=handle.site, series=chosen, paths=handle.paths, secrets=values,
                          venv=handle.paths.venv(chosen), ports=Ports(handle.site.port_offset),
                          colors=colors_of(handle) if colors is None else colors)


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
