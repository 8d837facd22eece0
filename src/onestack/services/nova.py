"""Nova: compute API, conductor, scheduler, and nova-compute on every compute host with
the site's driver (libvirt, ``services.libvirt``; or fake)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from onestack.core.step import Step
from onestack.drivers import mysql
from onestack.drivers import rabbitmq as rabbitmq_queues
from onestack.drivers.mysql import ServiceReportProbe
from onestack.drivers.openstack import CatalogEntry
from onestack.drivers.probes import HttpProbe
from onestack.drivers.supervisor import Program
from onestack.model.site import ComputeDriver, Host, Role, Site
from onestack.services import libvirt, mariadb, memcached, oslo, ovs, rabbitmq, uwsgi
from onestack.services.base import (
    Check,
    ServiceContext,
    account_steps,
    api_catalog_entry,
    api_probes,
    as_service,
    config_steps,
    host_step,
    placed,
    program_steps,
    step,
)
from onestack.steps.actions import CallOnce, CopyFile, EnsureDirs, RunOnce
from onestack.steps.context import HostContext

name = "nova"
kind = "openstack"
PACKAGE = "nova"
API_MODULE = "nova.wsgi.osapi_compute:application"
# The metadata API (169.254.169.254 as guests see it, through neutron's proxies): on
# the controller, at an address of its own rather than behind HAProxy's blue/green
# pair. It restarts with nova's other programs during an upgrade; guests fetch their
# metadata at boot and retry (ADR 0020).
METADATA_API = "nova-metadata-api"
# Loaded just before its restart in a roll (its stop is the metadata path's outage).
LOAD_AT_RESTART = (METADATA_API,)
METADATA_MODULE = "nova.wsgi.metadata:application"
METADATA_SECRET = "nova.metadata-proxy"
COMPUTE_FANOUT = "nova-compute"  # every compute host's steps at once


_CONTROL_PLANE = placed("nova-api")


def hosts(site: Site) -> list[Host]:
    """API, conductor and scheduler where the architecture places them; nova-compute
    on every compute."""
    control = _CONTROL_PLANE(site)
    names = {h.name for h in control}
    return [*control, *(h for h in site.computes if h.name not in names)]


def remote_computes(ctx: ServiceContext) -> list[Host]:
    """Compute hosts other than the controller (whose compute shares its nova.conf)."""
    return hosts(ctx.site)[1:]


def _is_compute(ctx: ServiceContext, host: Host) -> bool:
    return Role.COMPUTE in host.roles


def serves_metadata(site: Site) -> bool:
    """The metadata service runs with the OVN back end (its proxies are neutron's)."""
    return ovs.in_use(site)


# The metadata API listens on loopback only: the controller's own agent and HAProxy
# reach it there; agents on other hosts through HAProxy's mutual TLS (ADR 0025).
METADATA_LISTEN = "127.0.0.1"


def metadata_url(ctx: ServiceContext) -> str:
    return f"http://{METADATA_LISTEN}:{ctx.ports.infra('nova-metadata')}/"


def metadata_over_tls(site: Site) -> bool:
    """Agents on hosts other than the controller ask for metadata through HAProxy."""
    return serves_metadata(site) and any(h.name != site.controller.name for h in ovs.hosts(site))


def _metadata_settings(ctx: ServiceContext) -> oslo.Ini:
    """nova trusts requests that neutron's proxies signed with the shared secret."""
    if not serves_metadata(ctx.site):
        return {}
    return {"neutron": {"service_metadata_proxy": "true",
                        "metadata_proxy_shared_secret": ctx.secret(METADATA_SECRET)}}


def metadata_ini_path(ctx: ServiceContext) -> Path:
    return ctx.etc(name) / f"{METADATA_API}.ini"


def metadata_program(ctx: ServiceContext) -> Program:
    return Program(METADATA_API, [ctx.bin("uwsgi"), "--ini", str(metadata_ini_path(ctx))],
                   environment=uwsgi.config_environment(ctx, name), user=name,
                   stopsignal="TERM", startsecs=1)


def _compute_settings(ctx: ServiceContext) -> oslo.Ini:
    """What nova-compute needs for the site's driver and network back end: libvirt's
    settings, os-vif on the site's switch, and every instance's metadata on a config
    drive (no metadata service is deployed yet)."""
    settings = [libvirt.nova_settings(ctx)]
    if ovs.in_use(ctx.site):
        settings.append(ovs.os_vif_settings(ctx))
    if ctx.site.compute_driver == ComputeDriver.LIBVIRT:
        settings.append({"DEFAULT": {"force_config_drive": "true"}})
    return oslo.merged(*settings)


def _conf(ctx: ServiceContext) -> str:
    data = ctx.paths.data / name
    return oslo.render_ini(oslo.merged({
        "DEFAULT": {**oslo.common_default(ctx, name),
                    "host": ctx.host, "my_ip": ctx.address, "state_path": str(data),
                    "instances_path": str(data / "instances"),
                    "osapi_compute_workers": "1", "metadata_workers": "1"},
        "api": {"auth_strategy": "keystone"},
        "api_database": {"connection": mariadb.url(ctx, "nova_api"), "max_retries": "-1"},
        "database": {"connection": mariadb.url(ctx, "nova"), "max_retries": "-1"},
        "keystone_authtoken": oslo.authtoken(ctx, "nova"),
        "service_user": {"send_service_user_token": "true", **oslo.service_auth(ctx, "nova")},
        "placement": oslo.service_auth(ctx, "placement"),
        "neutron": oslo.service_auth(ctx, "neutron"),
        "glance": {"region_name": ctx.site.region, "cafile": ctx.cafile},
        "cinder": {"os_region_name": ctx.site.region},
        "upgrade_levels": {"compute": "auto"},
        "conductor": {"workers": "1"},
        "scheduler": {"workers": "1", "discover_hosts_in_cells_interval": "60"},
        "cache": {**oslo.cache(ctx), "memcache_servers": memcached.servers(ctx)},
        "wsgi": {"api_paste_config": str(ctx.etc(name) / "api-paste.ini")},
        "oslo_concurrency": oslo.lock_path(ctx, name),
        "oslo_messaging_notifications": {"driver": "noop"},
        "vnc": {"enabled": "false"},
        "oslo_middleware": oslo.behind_proxy(),
    }, _compute_settings(ctx), _metadata_settings(ctx), rabbitmq.client_settings(ctx)))


def config(ctx: ServiceContext) -> dict[Path, str]:
    etc = ctx.etc(name)
    files = {etc / "nova.conf": _conf(ctx),
             uwsgi.ini_path(ctx, name, ctx.color(name)): uwsgi.ini(ctx, name, API_MODULE)}
    if serves_metadata(ctx.site):
        listen = f"{METADATA_LISTEN}:{ctx.ports.infra('nova-metadata')}"
        files[metadata_ini_path(ctx)] = uwsgi.ini(
            ctx, name, METADATA_MODULE, processes=1, listen=listen,
            extra={"procname-prefix": f"{METADATA_API}-"})
    return files


def _compute_conf(ctx: ServiceContext, host: Host) -> str:
    """nova.conf of a compute host that is not the controller: its own name and address,
    the controller's broker and APIs, and no database (computes go through conductor)."""
    data = ctx.paths.data / name
    return oslo.render_ini(oslo.merged({
        "DEFAULT": {**oslo.common_default(ctx, name),
                    "host": host.name, "my_ip": str(host.address), "state_path": str(data),
                    "instances_path": str(data / "instances")},
        "service_user": {"send_service_user_token": "true", **oslo.service_auth(ctx, "nova")},
        "placement": oslo.service_auth(ctx, "placement"),
        "neutron": oslo.service_auth(ctx, "neutron"),
        "glance": {"region_name": ctx.site.region, "cafile": ctx.cafile},
        "cinder": {"os_region_name": ctx.site.region},
        "upgrade_levels": {"compute": "auto"},
        "oslo_concurrency": oslo.lock_path(ctx, name),
        "oslo_messaging_notifications": {"driver": "noop"},
        "vnc": {"enabled": "false"},
    }, _compute_settings(ctx), rabbitmq.client_settings(ctx)))


def compute_config(ctx: ServiceContext, host: Host) -> tuple[Path, str]:
    """(path, content) of nova.conf on a compute host other than the controller."""
    return ctx.etc(name) / "nova.conf", _compute_conf(ctx, host)


def compute_program(ctx: ServiceContext) -> Program:
    conf: tuple[str, ...] = ("--config-file", str(ctx.etc(name) / "nova.conf"))
    if libvirt.hosts(ctx.site):
        conf = libvirt.nova_config_files(ctx)
    return Program("nova-compute", [ctx.bin("nova-compute"), *conf], user=name, startsecs=5)


def programs(ctx: ServiceContext) -> list[Program]:
    """nova's programs on the controller (nova-compute too when it is a compute host)."""
    conf = ("--config-file", str(ctx.etc(name) / "nova.conf"))
    control = [uwsgi.program(ctx, name),
               Program("nova-conductor", [ctx.bin("nova-conductor"), *conf], user=name),
               Program("nova-scheduler", [ctx.bin("nova-scheduler"), *conf], user=name)]
    if serves_metadata(ctx.site):
        control.append(metadata_program(ctx))
    return control + ([compute_program(ctx)] if _is_compute(ctx, ctx.controller)
                      else [])


def compute_reports(ctx: ServiceContext, host: str | None = None) -> ServiceReportProbe:
    """nova-compute is of use once its heartbeat is fresh (the scheduler sees it up)."""
    return ServiceReportProbe(mariadb.socket_path(ctx), "nova", "nova-compute",
                              host or ctx.host, runs_on=ctx.controller.name)


def checks(ctx: ServiceContext) -> list[Check]:
    computes = [Check("nova-compute" if h.name == ctx.host else f"nova-compute/{h.name}",
                      compute_reports(ctx, h.name)) for h in ctx.site.computes]
    metadata = ([Check(METADATA_API, HttpProbe(metadata_url(ctx)))]
                if serves_metadata(ctx.site) else [])
    return [Check("nova-api", api_probes(ctx, name)[0]), *metadata, *computes]


def catalog_entry(ctx: ServiceContext) -> CatalogEntry:
    return api_catalog_entry(ctx, name, "compute", "/v2.1")


# After every nova process has moved (either way), these restart once more, in this
# order: a conductor that started while the other side's scheduler and computes were
# still running was seen to leave RPC calls unanswered (MessagingTimeout) until then.
SETTLE = ("nova-conductor", "nova-scheduler", "nova-compute")


def roll_order(programs: list[Program]) -> list[Program]:
    """Upstream rolling-upgrade order: conductor, scheduler, API (and the metadata API),
    then compute (the controller's, if it computes; the other computes follow, host by
    host)."""
    api, *rest = programs
    by_name = {p.name: p for p in rest}
    metadata = [by_name[METADATA_API]] if METADATA_API in by_name else []
    compute = [by_name["nova-compute"]] if "nova-compute" in by_name else []
    return [by_name["nova-conductor"], by_name["nova-scheduler"], api, *metadata, *compute]


# What a release's nova is: its SERVICE_VERSION and every object's version. One
# Python start per release environment and onestack process (importing nova takes
# seconds, and the rollback needs both while nova's API requests are held).
_RELEASE_FACTS: dict[str, tuple[int, str]] = {}
RELEASE_FACTS_SCRIPT = (
    "import json; from nova import objects; objects.register_all(); "
    "from nova.objects.base import NovaObjectRegistry as R; "
    "from nova.objects.service import SERVICE_VERSION as V; "
    "print(json.dumps([V, {n: c[0].VERSION for n, c in R.obj_classes().items()}]))")


def _release_facts(hc: HostContext, python: str) -> tuple[int, str]:
    """(SERVICE_VERSION, object manifest as JSON) of the nova in this environment."""
    if python not in _RELEASE_FACTS:
        out = hc.host.run([python, "-c", RELEASE_FACTS_SCRIPT])
        version, manifest = json.loads(out.strip().splitlines()[-1])
        _RELEASE_FACTS[python] = (int(version), json.dumps(manifest))
    return _RELEASE_FACTS[python]


def before_downgrade(ctx: ServiceContext, program: Program) -> CallOnce:
    """Let an older nova process start again after a newer one ran.

    Every nova service refuses to save its service record when it is older than the
    newest record of its binary ("This service is older (v72) than the minimum (v74)
    version of the rest of the deployment"). A newer process wrote that record during
    the roll; on the way back, the record's version is set back to the old code's.
    """
    binary = ("nova-osapi_compute" if program.name.startswith("nova-api") else
              "nova-metadata" if program.name == METADATA_API else program.name)
    sock = mariadb.socket_path(ctx)
    python = ctx.bin("python")

    def run(hc: HostContext) -> None:
        version = _release_facts(hc, python)[0]
        for database in ("nova", "nova_cell0"):
            mysql.execute(hc.host, sock, database, f"UPDATE services SET version={version} "
                          f"WHERE `binary`={mysql.literal(binary)} AND version>{version}")

    return CallOnce(f"reset {binary} service version", run, inputs=ctx.series)


# The RPC servers of nova's back end (each listens on ``topic`` and ``topic.<host>``).
RPC_TOPICS = ("conductor", "scheduler", "compute", "compute-alt")


def drain_before_stop(newer: ServiceContext) -> CallOnce:
    """Wait until the newer back end has handled every message queued for it.

    Runs once the API is back on the older release (nothing sends newer messages
    any more) and before the newer conductor, scheduler and compute stop. A message
    the newer release sent carries object versions the older code does not know
    ("Version 1.44 of ImageMetaProps is not supported"); an older conductor that
    receives one asks the conductor, i.e. itself, to backport it, and hangs in RPC
    timeouts for minutes, with nova-compute waiting on it.
    """
    hosts = [newer.host, *(h.name for h in remote_computes(newer))]
    queues = [*RPC_TOPICS, *(f"{t}.{h}" for t in RPC_TOPICS for h in hosts)]
    argv = rabbitmq.rabbitmqctl(newer, *rabbitmq_queues.LIST_QUEUES)
    env = rabbitmq.environment(newer)

    def run(hc: HostContext) -> None:
        left = rabbitmq_queues.wait_until_empty(lambda: hc.host.run(argv, env=env), queues)
        if left:
            # Not a failure: a rollback must not wait forever on a newer process that
            # died (it may be why the upgrade is rolling back). Say what is left.
            hc.progress.message("nova RPC messages left for the older release, which may "
                                "reject them: " + ", ".join(f"{q}={n}" for q, n in left.items()))

    return CallOnce("drain nova's RPC queues", run, inputs=newer.series)


def before_rollback(newer: ServiceContext, older: ServiceContext) -> CallOnce:
    """Make nova objects stored by the newer release readable by the older one."""
    script = Path(__file__).parent / "scripts" / "nova_backport.py"
    env = {"ONESTACK_NOVA_API_DB": mariadb.url(older, "nova_api"),
           "ONESTACK_NOVA_CELL_DBS": " ".join(mariadb.url(older, db)
                                               for db in ("nova", "nova_cell0"))}

    def run(hc: HostContext) -> None:
        manifest = _release_facts(hc, older.bin("python"))[1]
        # The script's text goes with the command (``python -``): the controller may
        # be another machine, without onestack's source (ADR 0027).
        result = hc.host.run([newer.bin("python"), "-"], input=script.read_text(),
                             env={**env, "ONESTACK_NOVA_MANIFEST": manifest})
        hc.progress.message(f"nova objects made readable by {older.series}: "
                            f"{result.strip().splitlines()[-1]}")

    return CallOnce("backport nova objects", run, inputs=f"{newer.series}>{older.series}")


def _manage(ctx: ServiceContext, *args: str) -> tuple[str, ...]:
    return as_service(ctx, name, (ctx.bin("nova-manage"), "--config-file",
                                  str(ctx.etc(name) / "nova.conf"), *args))


def _cells(ctx: ServiceContext) -> list[Step]:
    # shlex.join: the paths in these argvs come from $ONESTACK_HOME and may need quoting.
    create_cell1 = (f"{shlex.join(_manage(ctx, 'cell_v2', 'list_cells'))} | grep -q ' cell1 ' "
                    f"|| {shlex.join(_manage(ctx, 'cell_v2', 'create_cell', '--name', 'cell1'))}")
    return [
        step(ctx, name, "api-db-sync", "migrate the nova API database",
             RunOnce(_manage(ctx, "api_db", "sync"), inputs=ctx.series)),
        step(ctx, name, "map-cell0", "map cell0",
             RunOnce(_manage(ctx, "cell_v2", "map_cell0"))),
        step(ctx, name, "create-cell1", "create cell1", RunOnce(("sh", "-c", create_cell1))),
        step(ctx, name, "db-sync", "migrate the nova cell databases",
             RunOnce(_manage(ctx, "db", "sync"), inputs=ctx.series)),
    ]


def configure(ctx: ServiceContext) -> list[Step]:
    """Configuration files of this release, with nova's own paste pipeline."""
    return [*config_steps(ctx, name, config(ctx)),
            step(ctx, name, "config:api-paste.ini", "copy nova's API paste pipeline",
                 CopyFile(ctx.venv / "etc" / "nova" / "api-paste.ini",
                          ctx.etc(name) / "api-paste.ini"))]


def upgrade_check(ctx: ServiceContext) -> tuple[str, ...]:
    return as_service(ctx, name, (ctx.bin("nova-status"), "--config-file",
                                  str(ctx.etc(name) / "nova.conf"), "upgrade", "check"))


def expand(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    """nova's schema migrations only add within a SLURP step, so old services keep
    running on the new schema ([upgrade_levels] compute=auto pins RPC)."""
    return [("api-db-sync", _manage(ctx, "api_db", "sync")),
            ("db-sync", _manage(ctx, "db", "sync"))]


def contract(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    return [("online-data-migrations", _manage(ctx, "db", "online_data_migrations"))]


def _switch_groups(ctx: ServiceContext) -> tuple[str, ...]:
    """nova-compute plugs instances through the switch's database (os-vif)."""
    return (ovs.CLIENT_GROUP,) if ovs.in_use(ctx.site) else ()


def _state_dirs(ctx: ServiceContext) -> EnsureDirs:
    """nova's state. With the libvirt driver, QEMU's group (kvm) may pass through
    nova's folder to the instances folder and read it, nothing more; the disks inside
    change hands as their guests start and stop (libvirt's dynamic ownership), so
    nothing is given back to nova recursively."""
    data = ctx.paths.data / name
    if not libvirt.hosts(ctx.site):
        return EnsureDirs(((data, name, 0o750), (data / "instances", name, 0o750),
                           (data / "locks", name, 0o750)))
    qemu = f"{name}:{libvirt.QEMU_GROUP}"
    return EnsureDirs(((data, qemu, 0o710), (data / "instances", qemu, 0o750),
                       (data / "locks", name, 0o750)), recursive=False)


def _map_compute(ctx: ServiceContext, host: Host) -> Step:
    """On the controller: wait until ``host``'s nova-compute is mapped into cell1."""
    discover = shlex.join(_manage(ctx, "cell_v2", "discover_hosts"))
    listed = shlex.join(_manage(ctx, "cell_v2", "list_hosts"))
    wanted = shlex.quote(f" {host.name} ")
    wait_compute = (f"for i in $(seq 60); do {discover} >/dev/null; "
                    f"{listed} | grep -q {wanted} && exit 0; sleep 2; done; exit 1")
    return Step(id=f"{name}/discover-hosts" if host.name == ctx.host else
                f"{name}/{host.name}/discover-hosts",
                summary=f"map compute host {host.name} into cell1", service=name,
                host=ctx.host,
                action=RunOnce(("sh", "-c", wait_compute), inputs=host.name,
                               timeout=180))  # type: ignore[arg-type]


def compute_steps(ctx: ServiceContext, host: Host) -> list[Step]:
    """nova-compute on a compute host other than the controller: ids ``nova/<host>/...``,
    run with every other compute host's at once."""
    conf = dict([compute_config(ctx, host)])
    fanout = COMPUTE_FANOUT
    return [*account_steps(ctx, name, on=host, fanout=fanout, groups=_switch_groups(ctx)),
            host_step(ctx, host, name, "dirs", "create state directories", _state_dirs(ctx),
                      fanout=fanout),
            *config_steps(ctx, name, conf, on=host, fanout=fanout),
            *program_steps(ctx, name, [compute_program(ctx)], conf,
                           {"nova-compute": compute_reports(ctx, host.name)},
                           on=host, fanout=fanout)]


def steps(ctx: ServiceContext) -> list[Step]:
    """The control plane on the controller, then nova-compute on every other compute
    host (all at once), then each of those mapped into the cell."""
    controller = ctx.controller
    control = [
        *account_steps(ctx, name, groups=(*oslo.CACHE_GROUPS, *_switch_groups(ctx))),
        step(ctx, name, "dirs", "create state directories", _state_dirs(ctx)),
        *configure(ctx),
        *_cells(ctx),
        *program_steps(ctx, name, programs(ctx), config(ctx),
                       {"nova-api": api_probes(ctx, name),
                        "nova-compute": compute_reports(ctx)}),
        *([_map_compute(ctx, controller)] if _is_compute(ctx, controller) else []),
    ]
    remote = remote_computes(ctx)
    return [*control, *(s for h in remote for s in compute_steps(ctx, h)),
            *(_map_compute(ctx, h) for h in remote)]
