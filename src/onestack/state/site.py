"""A site as onestack finds it on this machine, and the facts its journal keeps.

``engine`` (which changes a site) and ``health`` (which only looks at one) both start
from a :class:`SiteHandle`; keeping it here lets neither import the other's layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.catalog.releases import available_series
from onestack.core.host import HostConnection
from onestack.drivers.host import LocalHost
from onestack.drivers.secrets import SecretStore
from onestack.drivers.site_file import read_site_file
from onestack.drivers.ssh_host import open_host
from onestack.drivers.supervisor import HostSupervisor, SiteSupervisor, Supervisor
from onestack.errors import InvalidOptionError, SiteFileError, SiteNotFoundError
from onestack.model.paths import SitePaths
from onestack.model.ports import Ports
from onestack.model.site import SITE_NAME_PATTERN, Host, Site, default_lab_site
from onestack.plans.deploy import required_secrets
from onestack.services import registry
from onestack.services.base import ServiceContext
from onestack.state.journal import Journal
from onestack.state.tls import internal_tls, site_tls


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
        """The site's supervisord on this machine."""
        return Supervisor(self.paths.run / "supervisord.conf",
                          self.paths.run / "supervisor.sock")

    def supervisor_on(self, host: HostConnection) -> SiteSupervisor:
        """The site's supervisord on a host: this machine's directly, any other's
        through the host's connection (ADR 0012)."""
        if isinstance(host, LocalHost):
            return self.supervisor()
        return HostSupervisor(host, self.paths.run / "supervisord.conf",
                              self.paths.run / "supervisor.sock")

    def controller(self) -> HostConnection:
        """The connection of the site's (first) controller: this machine's or SSH."""
        return self.connection(self.site.controller)

    def controller_supervisor(self) -> SiteSupervisor:
        """The site's supervisord on its controller, wherever that is."""
        return self.supervisor_on(self.controller())

    def connection(self, host: Host) -> HostConnection:
        """How onestack reaches one host of the site: LocalHost, or SSH with the host's
        user, port and key (default: the site's) and the site's known_hosts."""
        if host.is_local:
            return LocalHost(host.name)
        paths = self.paths
        return open_host(host.name, str(host.address), via="ssh", port=host.ssh_port,
                         user=host.ssh_user,
                         key_file=Path(host.ssh_key) if host.ssh_key else paths.ssh_key,
                         known_hosts=self.known_hosts_file)

    @property
    def known_hosts_file(self) -> Path:
        """The site's known_hosts: the site file's ``known_hosts``, else its own."""
        return Path(self.site.known_hosts) if self.site.known_hosts else \
            self.paths.known_hosts

    def retired_hosts(self) -> tuple[Host, ...]:
        """Hosts of the site definition in force (the recorded ``site.yaml``) that the
        definition given now no longer lists: they leave the site on the next ``up``.
        The controller never leaves this way."""
        if not self.paths.site_file.exists():
            return ()
        # Only its host names are read: a known_hosts it names that is now refused must
        # not block the `up --site-file` that corrects it.
        recorded = read_site_file(self.paths.site_file, available_series(), home=None)
        now = {h.name for h in self.site.hosts}
        return tuple(h for h in recorded.hosts
                     if h.name not in now and h.name != recorded.controller.name)

    def journal(self) -> Journal:
        # A journal from before per-host keys: its rows are the controller's.
        return Journal(self.paths.state_db, legacy_host=self.site.controller.name)


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
    site = read_site_file(site_file, releases, home=home) if site_file is not None else None
    if site is not None and name is not None and name != site.name:
        raise InvalidOptionError("--site", name, f"{site_file} describes site {site.name}; "
                                                 f"use --site {site.name}, or leave --site out")
    chosen = site.name if site is not None else name or DEFAULT_SITE
    paths = SitePaths(home, chosen)
    if must_exist and not site_exists(paths):
        raise SiteNotFoundError(chosen, str(home), known_sites(home))
    source = site_file
    if site is None and paths.site_file.exists():
        source, site = paths.site_file, read_site_file(paths.site_file, releases, home=home)
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
    """The pure context services describe themselves from (secrets, the site CA and the
    APIs' certificate generated if asked)."""
    store = handle.secrets
    names = required_secrets()
    values = ({n: store.ensure(n) for n in names} if generate
              else {n: store.get(n) or "" for n in names})
    chosen = series or series_of(handle)
    ca_pem, api_pem = site_tls(handle.paths, handle.site, generate)
    internal = internal_tls(handle.paths, registry.tls_hosts(handle.site), generate)
    return ServiceContext(site=handle.site, series=chosen, paths=handle.paths, secrets=values,
                          venv=handle.paths.venv(chosen), ports=Ports(handle.site.port_offset),
                          colors=colors_of(handle) if colors is None else colors,
                          ca_pem=ca_pem, api_pem=api_pem, internal_tls=internal)
