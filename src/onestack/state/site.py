"""A site as onestack finds it on this machine, and the facts its journal keeps.

``engine`` (which changes a site) and ``health`` (which only looks at one) both start
from a :class:`SiteHandle`; keeping it here lets neither import the other's layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.drivers.secrets import SecretStore
from onestack.drivers.supervisor import Supervisor
from onestack.errors import PrerequisiteError
from onestack.model.loader import parse_site
from onestack.model.paths import SitePaths
from onestack.model.ports import Ports
from onestack.model.site import Site, default_lab_site
from onestack.plans.deploy import required_secrets
from onestack.services.base import ServiceContext
from onestack.state.journal import Journal


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


def open_site(home: Path, name: str, site_file: Path | None = None,
              release: str | None = None) -> SiteHandle:
    """Load the site: an explicit file, else the site's own site.yaml, else the lab default."""
    paths = SitePaths(home, name)
    source = site_file or (paths.site_file if paths.site_file.exists() else None)
    if source is not None:
        try:
            text = source.read_text()
        except OSError as exc:
            raise PrerequisiteError(f"cannot read site file {source}: {exc.strerror}") from None
        site = parse_site(text, str(source))
    else:
        site = default_lab_site(name, release or "2026.1")
    return SiteHandle(site, SitePaths(home, site.name), source)


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
