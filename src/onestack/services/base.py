"""What every service module provides, and the helpers they share.

A service module knows its configuration, processes, ports, database and
migrations, health check and place in the upgrade order. Adding a service means
adding one module and listing it in :mod:`onestack.services.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from onestack.core.digest import digest
from onestack.core.step import Step
from onestack.drivers import site_file
from onestack.drivers.openstack import CatalogEntry
from onestack.drivers.probes import HttpProbe, Probe
from onestack.drivers.supervisor import Program, render_program
from onestack.drivers.tls import InternalTls
from onestack.model.paths import SITE_GROUP, SitePaths
from onestack.model.ports import API_HEALTH_PATHS, Ports
from onestack.model.site import Host, Site
from onestack.steps.actions import (
    EnsureSystemUser,
    StartProgram,
    UpdateSupervisor,
    WriteFile,
)


@dataclass(frozen=True)
class ServiceContext:
    """Everything a service module needs to describe itself. Pure data."""

    site: Site
    series: str
    paths: SitePaths
    secrets: Mapping[str, str]
    venv: Path
    ports: Ports
    colors: Mapping[str, str] = field(default_factory=dict)
    # The site CA's certificate and the APIs' certificate with its key (PEM; "" where
    # none was made yet, e.g. ``plan`` of a new site): ``state.tls``.
    ca_pem: str = field(default="", repr=False)
    api_pem: str = field(default="", repr=False)
    # The internal CA and each host's certificate for TLS between hosts (ADR 0025):
    # ``state.tls.internal_tls``; empty on a site whose traffic stays on one host.
    internal_tls: InternalTls = field(default_factory=InternalTls, repr=False)
    # The site's first controller, found once: every step asks for it (a 500-host
    # site otherwise searched its host list once per step).
    controller: Host = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "controller", self.site.controller)

    def color(self, service: str) -> str:
        """Which instance of an API (blue or green) is the live one."""
        return self.colors.get(service, "blue")

    def backend_port(self, service: str) -> int:
        """Port of the live instance of an API."""
        return self.ports.backend(service, self.color(service))

    @property
    def host(self) -> str:
        return self.controller.name

    @property
    def address(self) -> str:
        return str(self.controller.address)

    def etc(self, service: str) -> Path:
        """Configuration of an OpenStack service for this context's release."""
        return self.paths.etc(self.series) / service

    def etc_infra(self, service: str) -> Path:
        """Configuration of infrastructure, which outlives any one release."""
        return self.paths.site / "etc" / "infra" / service

    def bin(self, program: str) -> str:
        return str(self.venv / "bin" / program)

    def secret(self, name: str) -> str:
        return self.secrets[name]

    @property
    def cafile(self) -> str:
        """What every client of the APIs trusts: the site CA's certificate."""
        return str(self.paths.ca_cert)

    def api_url(self, service: str, path: str = "") -> str:
        """An API as clients reach it: HTTPS at HAProxy's frontend."""
        return f"https://{self.address}:{self.ports.frontend(service)}{path}"


@dataclass(frozen=True)
class Check:
    """A named health probe of a service, used by ``status``."""

    name: str
    probe: Probe


class ServiceModule(Protocol):
    """One deployed service (a module of this package; mypy checks each against this)."""

    name: str
    kind: str  # "infra" or "openstack"

    def hosts(self, site: Site) -> list[Host]:
        """The hosts it runs on (``placed`` for the control plane's, by architecture)."""
        ...

    def steps(self, ctx: ServiceContext) -> list[Step]:
        """Its deploy steps on every one of its hosts, in order."""
        ...

    def programs(self, ctx: ServiceContext) -> list[Program]:
        """Its supervised programs on the controller."""
        ...

    def checks(self, ctx: ServiceContext) -> list[Check]: ...


class InfraService(ServiceModule, Protocol):
    """Infrastructure from Debian packages (MariaDB, RabbitMQ, memcached, HAProxy)."""

    @property
    def PACKAGES(self) -> tuple[str, ...]:  # noqa: N802 (a module constant)
        """Its Debian packages."""
        ...


class OpenStackService(ServiceModule, Protocol):
    """An OpenStack service: catalog entry, per-release configuration, migrations.

    nova's extra upgrade hooks (``roll_order``, ``SETTLE``...) are still looked up
    by ``plans.upgrade``; they become members here when a second service needs them.
    """

    @property
    def PACKAGE(self) -> str:  # noqa: N802 (a module constant)
        """Its Python distribution in the release bundle."""
        ...

    def catalog_entry(self, ctx: ServiceContext) -> CatalogEntry: ...

    def config(self, ctx: ServiceContext) -> dict[Path, str]:
        """Its rendered configuration files on the controller."""
        ...

    def configure(self, ctx: ServiceContext) -> list[Step]: ...

    def upgrade_check(self, ctx: ServiceContext) -> tuple[str, ...]: ...

    def expand(self, ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]: ...

    def contract(self, ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]: ...


def placed(component: str) -> Callable[[Site], list[Host]]:
    """A service's ``hosts``: where the site's architecture places ``component``
    (ADR 0024: the all-in-one's controller; ``ha``'s three)."""
    def hosts(site: Site) -> list[Host]:
        return site_file.architecture_of(site).component(component).hosts(site)
    hosts.__doc__ = f"The hosts the site's architecture places {component} on."
    return hosts


def api_probes(ctx: ServiceContext, service: str) -> tuple[Probe, ...]:
    """An API is up when its live instance answers and HAProxy routes to it
    (both on the service's health path, ``model.ports.API_HEALTH_PATHS``)."""
    path = API_HEALTH_PATHS[service]
    return (HttpProbe(f"http://{ctx.address}:{ctx.backend_port(service)}{path}"),
            HttpProbe(ctx.api_url(service, path), cafile=ctx.cafile))


def api_catalog_entry(ctx: ServiceContext, service: str, service_type: str,
                      path: str = "") -> CatalogEntry:
    """An OpenStack API's catalog entry (through HAProxy) and its service user."""
    return CatalogEntry(service, service_type, ctx.api_url(service, path),
                        service, ctx.secret(f"keystone.{service}"))


def step(ctx: ServiceContext, service: str, name: str, summary: str, action: object) -> Step:
    """A step of a service on the controller, id ``service/name``."""
    return Step(id=f"{service}/{name}", summary=summary, service=service, host=ctx.host,
                action=action)  # type: ignore[arg-type]


# OpenStack services run as system users of their own name (as upstream packages do);
# their configuration is root's, readable by the service's group only (it holds secrets).
SERVICE_USERS = frozenset({"keystone", "glance", "placement", "nova", "neutron"})


def as_service(ctx: ServiceContext, service: str, argv: Sequence[str]) -> tuple[str, ...]:
    """A command (migration, status check) run as the service's own user, as its
    programs run. (The release environment is compiled when installed, so nothing
    needs writing there: it stays root's.)"""
    return ("/usr/bin/setpriv", f"--reuid={service}", f"--regid={service}", "--init-groups",
            "--", *argv)


def sudoers_path(ctx: ServiceContext, user: str) -> Path:
    """The site's sudoers drop-in for a service user's privileged helpers (sudo reads
    /etc/sudoers.d; no dot in the name)."""
    return Path("/etc/sudoers.d") / f"onestack-{ctx.site.name.replace('.', '-')}-{user}"


def account_steps(ctx: ServiceContext, service: str, *, on: Host | None = None,
                  fanout: str = "", groups: tuple[str, ...] = ()) -> list[Step]:
    """The service's system user (and group), before anything is given to it (on the
    controller unless ``on``), a member of the site's group and of ``groups``."""
    groups = (SITE_GROUP, *groups)
    return [host_step(ctx, on or ctx.controller, service, "user",
                      f"create system user {service} (member of {', '.join(groups)})",
                      EnsureSystemUser(service, groups), fanout=fanout)]


def site_member_step(ctx: ServiceContext, service: str, user: str,
                     groups: tuple[str, ...] = ()) -> Step:
    """A user that a Debian package made (``mysql``, ``rabbitmq``, ``memcache``) joins
    the site's group (and ``groups``) before its program starts: it works in the site's
    folder."""
    groups = (SITE_GROUP, *groups)
    return step(ctx, service, f"user:{user}", f"let {user} into the site's folder (member "
                f"of {', '.join(groups)})", EnsureSystemUser(user, groups))


def step_id(ctx: ServiceContext, service: str, host: Host, name: str) -> str:
    """``service/name`` on the controller (the ids journals have always had),
    ``service/<host>/name`` for the same step on any other host."""
    return f"{service}/{name}" if host.name == ctx.host else f"{service}/{host.name}/{name}"


def host_step(ctx: ServiceContext, host: Host, service: str, name: str, summary: str,
              action: object, *, fanout: str = "") -> Step:
    """A step of a service on ``host`` (see ``step_id``)."""
    return Step(id=step_id(ctx, service, host, name), summary=summary, service=service,
                host=host.name, action=action, fanout=fanout)  # type: ignore[arg-type]


def config_steps(ctx: ServiceContext, service: str, files: Mapping[Path, str],
                 mode: int = 0o640, owner: str | None = None, *, on: Host | None = None,
                 fanout: str = "") -> list[Step]:
    """One WriteFile step per configuration file (on the controller unless ``on``); an
    OpenStack service's belong to root and its group (``root:<service>``) unless told
    otherwise."""
    if owner is None and service in SERVICE_USERS:
        owner = f"root:{service}"
    host = on or ctx.controller
    return [host_step(ctx, host, service, f"config:{path.name}", f"write {path}",
                      WriteFile(path, content, mode=mode, owner=owner), fanout=fanout)
            for path, content in files.items()]


def host_tls_files(ctx: ServiceContext, host: Host, folder: Path) -> dict[Path, str]:
    """A host's certificate and key of the internal CA, and that CA, as files of
    ``folder`` (``cert.pem``, ``key.pem``, ``ca.pem``; ADR 0025)."""
    own = ctx.internal_tls.of(host.name)
    return {folder / "cert.pem": own.cert_pem, folder / "key.pem": own.key_pem,
            folder / "ca.pem": ctx.internal_tls.ca_pem}


def tls_steps(ctx: ServiceContext, service: str, host: Host, files: Mapping[Path, str],
              owner: str, fanout: str = "") -> list[Step]:
    """One step per TLS file of a service on ``host``, 0600 for the user that reads it."""
    return [host_step(ctx, host, service, f"tls:{path.name}",
                      f"install {path} (TLS between hosts)",
                      WriteFile(path, text, mode=0o600, owner=owner), fanout=fanout)
            for path, text in files.items()]


def program_steps(ctx: ServiceContext, service: str, programs: list[Program],
                  configs: Mapping[Path, str], probes: Mapping[str, Probe | tuple[Probe, ...]],
                  start_timeout: float = 180, *, on: Host | None = None,
                  fanout: str = "") -> list[Step]:
    """Program definitions, supervisor update, then start each program and wait healthy
    (on the controller unless ``on``).

    A program restarts when its definition or any of the service's config changes.
    """
    paths, host = ctx.paths, on or ctx.controller
    rendered = {p.name: render_program(p, paths.log) for p in programs}
    steps = [host_step(ctx, host, service, f"program:{name}", f"define program {name}",
                       WriteFile(paths.site / "supervisor" / f"{name}.conf", text),
                       fanout=fanout)
             for name, text in rendered.items()]
    all_defs = digest("".join(rendered[k] for k in sorted(rendered)))
    steps.append(host_step(ctx, host, service, "supervisor", "load program definitions",
                           UpdateSupervisor(all_defs, tuple(sorted(rendered))),
                           fanout=fanout))
    config_digest = digest("".join(digest(configs[k]) for k in sorted(configs)))
    for name, text in rendered.items():
        probe = probes.get(name, ())
        checks = probe if isinstance(probe, tuple) else (probe,)
        steps.append(host_step(ctx, host, service, f"start:{name}", f"start {name}",
                               StartProgram(name, digest(config_digest + text), checks,
                                            start_timeout), fanout=fanout))
    return steps
