"""The deploy plan: every step ``onestack up`` takes, as data (pure, no I/O)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import yaml

from onestack.core.digest import digest
from onestack.core.step import Step
from onestack.drivers.openstack import CatalogEntry
from onestack.drivers.supervisor import (
    LOG_FOLDER_MODE,
    SUPERVISOR_PACKAGE,
    WRAPPER_PACKAGES,
    render_supervisord_conf,
)
from onestack.model.paths import SITE_GROUP
from onestack.model.site import Host
from onestack.plans.content import content_steps
from onestack.services import libvirt, neutron, oslo, ovn, ovs, registry
from onestack.services.base import ServiceContext, ServiceModule, host_step, step
from onestack.steps.actions import (
    CallOnce,
    CreateReleaseEnv,
    EnsureDirs,
    EnsureSystemGroup,
    EnsureSystemUser,
    InstallPackages,
    RetireCompute,
    RunOnce,
    ShipReleaseEnv,
    StartProgram,
    StopSiteOnHost,
    WriteFile,
    WriteOperatorFile,
)
from onestack.steps.context import HostContext

CLOUD_NAME = "onestack"


def required_secrets() -> list[str]:
    """Names of every secret a deploy needs (generated on first use)."""
    users = ["keystone", *registry.service_users()]
    return (["keystone.admin", "rabbitmq.openstack", "rabbitmq.cookie",
             "memcache.secret", "haproxy.stats", "nova.metadata-proxy"] + [f"db.{u}" for u in users]
            + [f"keystone.{u}" for u in registry.service_users()])


def catalog_entries(ctx: ServiceContext) -> list[CatalogEntry]:
    return [m.catalog_entry(ctx) for m in registry.OPENSTACK]


def _register_catalog(ctx: ServiceContext) -> Step:
    from onestack.drivers import openstack

    entries = catalog_entries(ctx)
    auth_url = oslo.keystone_url(ctx) + "/v3"
    admin_password, cafile = ctx.secret("keystone.admin"), ctx.cafile

    def run(_: HostContext) -> None:
        conn = openstack.connect(auth_url, admin_password, ctx.site.region, cacert=cafile)
        openstack.ensure_catalog(conn, ctx.site.region, entries)

    inputs = digest(repr([(e.name, e.type, e.url, e.user, digest(e.password or ""))
                          for e in entries]))
    return step(ctx, "keystone", "catalog", "register service users and endpoints",
                CallOnce("register catalog", run, inputs=inputs))


def clouds_yaml(ctx: ServiceContext) -> str:
    """clouds.yaml for the standard clients (admin credentials: written 0600)."""
    cloud = {"auth": {"auth_url": oslo.keystone_url(ctx) + "/v3", "username": "admin",
                      "password": ctx.secret("keystone.admin"), "project_name": "admin",
                      "user_domain_name": "Default", "project_domain_name": "Default"},
             "region_name": ctx.site.region, "identity_api_version": 3,
             "interface": "public", "cacert": ctx.cafile}
    return yaml.safe_dump({"clouds": {CLOUD_NAME: cloud}}, sort_keys=False)


HOST_FANOUT = "host"  # every host's base steps at once


def deployed_hosts(ctx: ServiceContext) -> list[Host]:
    """The hosts some service runs on: the controller first, then in site order."""
    wanted = {h.name for module in registry.ALL for h in module.hosts(ctx.site)}
    return [ctx.site.controller, *(h for h in ctx.site.hosts
                                   if h.name in wanted and h.name != ctx.host)]


def _base_steps(ctx: ServiceContext, host: Host, wheelhouse: Path | None) -> list[Step]:
    """Packages, directories, the release and supervisord on one host (``host/...``
    on the controller, ``host/<name>/...`` elsewhere); only the controller runs the
    infrastructure, the others need the program wrappers."""
    p = ctx.paths
    programs_dir = p.site / "supervisor"
    packages = registry.system_packages(ctx.site) if host.name == ctx.host else WRAPPER_PACKAGES
    if not host.is_local:  # this machine's supervisord is onestack's own (ADR 0012)
        packages = tuple(sorted({*packages, SUPERVISOR_PACKAGE}))
    what = "infrastructure" if host.name == ctx.host else "program wrapper"

    def on(name: str, summary: str, action: object) -> Step:
        return host_step(ctx, host, "host", name, summary, action, fanout=HOST_FANOUT)

    return [
        on("packages", f"install {what} packages (Debian)", InstallPackages(packages)),
        on("group", f"create system group {SITE_GROUP} (the site's folder is for its "
                    "members)", EnsureSystemGroup(SITE_GROUP)),
        on("dirs", f"create site directories under {p.site}",
           EnsureDirs(((p.site, f"root:{SITE_GROUP}", 0o750), (p.data, None, 0o755),
                       (p.log, None, LOG_FOLDER_MODE), (p.run, None, 0o755),
                       (programs_dir, None, 0o700)), recursive=False)),
        on("ca", f"trust the site CA ({p.ca_cert}: the APIs' certificate chains to it)",
           WriteFile(p.ca_cert, ctx.ca_pem, mode=0o644)),
        *([on("internal-ca", f"trust the site's internal CA ({p.internal_ca_cert}: TLS "
                                 "between hosts, ADR 0025)",
              WriteFile(p.internal_ca_cert, ctx.internal_tls.ca_pem, mode=0o644))]
          if any(h.name == host.name for h in registry.tls_hosts(ctx.site)) else []),
        on("supervisord-conf", "write supervisord configuration",
           WriteFile(p.run / "supervisord.conf",
                     render_supervisord_conf(p.run, p.log, programs_dir))),
    ]


def _release_step(ctx: ServiceContext, host: Host, wheelhouse: Path | None) -> Step:
    """The release environment of a host: built here, or sent from here (ADR 0014)."""
    return host_step(ctx, host, "host", "release-env",
                     f"install release {ctx.series} into {ctx.venv}",
                     release_env(ctx, host, wheelhouse), fanout=INFRA_FANOUT)


def release_env(ctx: ServiceContext, host: Host,
                wheelhouse: Path | None) -> CreateReleaseEnv | ShipReleaseEnv:
    """``ctx``'s release on ``host``: built here when it is this machine, else built
    here and sent to it (ADR 0014, ADR 0027)."""
    kind = CreateReleaseEnv if host.is_local else ShipReleaseEnv
    return kind(ctx.series, ctx.venv, wheelhouse)


def retire_steps(ctx: ServiceContext, host: Host) -> list[Step]:
    """A compute host that left the site file: disabled in nova (refused while servers
    run there), the site stopped and removed on it, its nova record deleted."""
    auth_url, password = oslo.keystone_url(ctx) + "/v3", ctx.secret("keystone.admin")

    def in_nova(name: str, phase: str, summary: str) -> Step:
        return Step(id=f"nova/{host.name}/{name}", summary=summary, service="nova",
                    host=ctx.host, action=RetireCompute(  # type: ignore[arg-type]
                        host.name, phase, auth_url, password, ctx.site.region,
                        ctx.cafile))

    return [in_nova("disable", RetireCompute.DISABLE,
                    f"disable compute host {host.name} (it leaves the site)"),
            host_step(ctx, host, "host", "stop", f"stop and remove the site on {host.name}",
                      _stop_site_on(ctx, host)),
            in_nova("delete-service", RetireCompute.DELETE,
                    f"remove {host.name} from nova (compute node, resource provider, "
                    "cell mapping)"),
            *_forget_chassis(ctx, host)]


def _stop_site_on(ctx: ServiceContext, host: Host) -> StopSiteOnHost:
    """Everything of the site on a leaving host, also outside its folder (as a purge):
    a chassis's metadata proxies and namespaces, its switch's devices and guest filter,
    the sudoers drop-ins of its services."""
    chassis = ovs.in_use(ctx.site) and host.is_chassis
    cleanup = (neutron.metadata_proxies_script(ctx, purge=True),
               ovs.remove_ports_argv(ctx)) if chassis else ()
    files = (*neutron.host_files(ctx), *libvirt.host_files(ctx)) if chassis else ()
    return StopSiteOnHost(ctx.paths.site, cleanup, files)


def _forget_chassis(ctx: ServiceContext, host: Host) -> list[Step]:
    """A leaving chassis removed from OVN's southbound database (its ovn-controller is
    gone; the other chassis stop tunnelling to it)."""
    if not (ovs.in_use(ctx.site) and host.is_chassis):
        return []
    argv = ("ovn-sbctl", f"--db=unix:{ovn.sb_socket(ctx)}", "--timeout=30", "--if-exists",
            "chassis-del", host.name)
    return [Step(id=f"ovn/{host.name}/forget-chassis", summary=f"remove chassis {host.name} "
                 "from OVN's southbound database", service="ovn", host=ctx.host,
                 action=RunOnce(argv, inputs=host.name))]  # type: ignore[arg-type]


# Deployed side by side (one lane each, ADR 0017): every host's release with the
# infrastructure services; then the OpenStack services, each in its own lane once the
# infrastructure answers. A service in WAITS_FOR_OTHERS starts its programs only after
# every lane is done (nova-compute registers in placement and keystone as it starts).
INFRA_FANOUT = "infrastructure"
SERVICES_FANOUT = "services"
# Infrastructure that needs another's steps done first shares its lane: OVN configures
# its chassis in the switch's database.
SHARED_LANES = {"ovs": "network", "ovn": "network"}
WAITS_FOR_OTHERS = frozenset({"nova"})


def _in_lane(steps: list[Step], fanout: str, lane: str) -> list[Step]:
    return [replace(s, fanout=fanout, lane=lane) for s in steps]


def _creates_user_here(ctx: ServiceContext, s: Step) -> bool:
    return isinstance(s.action, EnsureSystemUser) and s.host == ctx.host


def _split_service(ctx: ServiceContext, module: ServiceModule,
                   extra: list[Step]) -> tuple[list[Step], list[Step], list[Step]]:
    """A service's steps as (system users, its lane, what waits for every lane):
    users are created one after the other (useradd locks /etc/passwd); its lane holds
    its steps on the controller, up to its first program definition if it waits for
    the others; other hosts' steps keep their own fan-out, after the lanes."""
    users: list[Step] = []
    lane: list[Step] = []
    rest: list[Step] = []
    for s in [*module.steps(ctx), *extra]:
        if _creates_user_here(ctx, s):
            users.append(s)
        elif rest or s.host != ctx.host or s.fanout or (
                module.name in WAITS_FOR_OTHERS and s.id.startswith(f"{module.name}/program:")):
            rest.append(s)
        else:
            lane.append(s)
    return users, lane, rest


def deploy_steps(ctx: ServiceContext, wheelhouse: Path | None = None,
                 retired: tuple[Host, ...] = ()) -> list[Step]:
    """Every step of a deploy, in order: each host's base (all hosts at once), the
    services' system users, every host's release beside the infrastructure services
    (one lane each), the OpenStack services side by side (one lane each), what waits
    for all of them (nova's programs, other hosts' nova-compute), Day-1 content
    (flavors, the test image), the clients' clouds.yaml, then the retirement of hosts
    that left the site (``retired``)."""
    hosts = deployed_hosts(ctx)
    steps = [s for host in hosts for s in _base_steps(ctx, host, wheelhouse)]
    infra = [_release_step(ctx, host, wheelhouse) for host in hosts]
    users: list[Step] = []
    for module in registry.INFRASTRUCTURE:
        own = module.steps(ctx)
        users += [replace(s, fanout="") for s in own if _creates_user_here(ctx, s)]
        infra += _in_lane([s for s in own if not _creates_user_here(ctx, s)], INFRA_FANOUT,
                          SHARED_LANES.get(module.name, module.name))
    lanes: list[Step] = []
    after: list[Step] = []
    for service in registry.OPENSTACK:
        extra = [_register_catalog(ctx)] if service.name == "keystone" else []
        own_users, lane, rest = _split_service(ctx, service, extra)
        users += own_users
        lanes += _in_lane(lane, SERVICES_FANOUT, service.name)
        after += rest
    steps += [*users, *infra, *lanes, *after, *content_steps(ctx)]
    steps.append(step(ctx, "host", "clouds-yaml", f"write {ctx.paths.clouds_yaml} (on the "
                      "machine onestack runs on: the operator's credentials)",
                      WriteOperatorFile(ctx.paths.clouds_yaml, clouds_yaml(ctx))))
    return steps + [s for host in retired for s in retire_steps(ctx, host)]


def placed_programs(ctx: ServiceContext) -> list[tuple[str, str, str]]:
    """(host, service, program) of every supervised program of the site, in deploy
    order: what runs where, read off the deploy plan itself (status and down use it)."""
    return [(s.host, s.service, s.action.program) for s in deploy_steps(ctx)
            if isinstance(s.action, StartProgram)]
