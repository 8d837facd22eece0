"""Neutron: ML2 networking. Three processes: the WSGI API, the RPC server and the
periodic workers. With the OVN back end (``services.ovn``) ML2/OVN drives the data
path (DHCP, routers, floating IPs and security groups in OVN's flows) and a fourth,
neutron's OVN agent, serves the metadata path on every chassis (ADR 0020): each
serves the servers whose ports are bound there; with none, the API and database only
(ports never bind)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from onestack.core.step import Step
from onestack.drivers import mysql, ovsdb
from onestack.drivers import openstack as cloud
from onestack.drivers.mysql import HashRingProbe
from onestack.drivers.openstack import CatalogEntry
from onestack.drivers.probes import AllOf, CommandProbe
from onestack.drivers.processes import THIS_HOST_ONLY, kill_if_running
from onestack.drivers.supervisor import Program
from onestack.errors import CheckFailedError, CommandError
from onestack.model.site import Host, Site
from onestack.services import mariadb, nova, oslo, ovn, ovs, rabbitmq, uwsgi
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
    sudoers_path,
)
from onestack.steps.actions import (
    CallOnce,
    EnsureDirs,
    InstallPackages,
    KeepFolderClosed,
    RunOnce,
    WriteFile,
)
from onestack.steps.context import HostContext

name = "neutron"
kind = "openstack"
hosts = placed("neutron-server")
PACKAGE = "neutron"
API_MODULE = "neutron.wsgi.api:application"
# neutron's OVN agent with its metadata extension, on every chassis (ADR 0020): per
# network with a port here, a namespace ovnmeta-<network> wired into br-int
# and an haproxy on 169.254.169.254:80 that forwards, through the agent's unix socket,
# to nova's metadata API. It runs as neutron, as upstream does (it parses what guests
# send): what needs root goes through sudo, to the privileged helpers of its privsep
# contexts (namespaces, links, iptables, kill) and to neutron-rootwrap with the release's
# filters (``ip netns exec ... haproxy``), both named exactly in its sudoers file
# (ADR 0021). No PID namespace: neutron finds its haproxies again by pid files checked
# against /proc, and they outlive an agent restart as upstream intends.
AGENT = "neutron-ovn-agent"
AGENT_FANOUT = "neutron-ovn-agent"  # every chassis other than the controller at once
# What the agent's metadata path needs on a chassis other than the controller (whose
# come with the site's packages, services.ovn.PACKAGES): namespaces and ``ip netns
# exec``, iptables in them, haproxies, and sudo for its helpers.
AGENT_PACKAGES = ("iproute2", "iptables", "haproxy", "sudo")
# Every privsep context of neutron's code: each starts its helper through sudo.
PRIVSEP_SECTIONS = ("privsep", "privsep_dhcp_release", "privsep_ovs_vsctl",
                    "privsep_namespace", "privsep_conntrack", "privsep_link")


def _conf(ctx: ServiceContext) -> str:
    return oslo.render_ini(oslo.merged({
        "DEFAULT": {**oslo.common_default(ctx, name), "core_plugin": "ml2",
                    "service_plugins": "", "auth_strategy": "keystone",
                    "notify_nova_on_port_status_changes": "false",
                    "notify_nova_on_port_data_changes": "false",
                    "api_workers": "1", "rpc_workers": "1", "rpc_state_report_workers": "1",
                    "state_path": str(ctx.paths.data / name),
                    "api_paste_config": str(ctx.venv / "etc" / "neutron" / "api-paste.ini")},
        "database": {"connection": mariadb.url(ctx, "neutron"), "max_retries": "-1"},
        "keystone_authtoken": oslo.authtoken(ctx, "neutron"),
        "nova": oslo.service_auth(ctx, "nova"),
        "oslo_concurrency": oslo.lock_path(ctx, name),
        "oslo_messaging_notifications": {"driver": "noop"},
        "agent": {"report_interval": "30"},
        "oslo_middleware": oslo.behind_proxy(),
    }, _back_end_settings(ctx), rabbitmq.client_settings(ctx)))


def _back_end_settings(ctx: ServiceContext) -> oslo.Ini:
    """OVN's L3 plugin, and nova told when ports go up (nova-compute waits for it
    before it starts a guest)."""
    if not ovs.in_use(ctx.site):
        return {}
    notify = {"notify_nova_on_port_status_changes": "true",
              "notify_nova_on_port_data_changes": "true",
              # ML2/OVN registers each server process in its hash ring under
              # (host, worker): during a blue/green upgrade both releases' APIs run
              # on one host, and the newer one's start failed on the older one's rows
              # (DBDuplicateEntry on ovn_hash_ring). Each color is a host of its own.
              "host": ring_host(ctx, ctx.color(name))}
    return oslo.merged(ovn.neutron_settings(ctx), {"DEFAULT": notify})


def _ml2_conf(ctx: ServiceContext) -> str:
    if ovs.in_use(ctx.site):
        return oslo.render_ini(ovn.ml2_settings(ctx))
    return oslo.render_ini({
        "ml2": {"type_drivers": "flat,vlan,vxlan", "tenant_network_types": "vxlan",
                "mechanism_drivers": "openvswitch", "extension_drivers": "port_security"},
        "ml2_type_flat": {"flat_networks": "physnet1"},
        "ml2_type_vxlan": {"vni_ranges": "1:10000"},
    })


def agent_hosts(site: Site) -> list[Host]:
    """Every chassis runs the agent: guests ask for metadata on their own chassis."""
    return ovs.hosts(site) if nova.serves_metadata(site) else []


def _agent_here(ctx: ServiceContext) -> bool:
    """Whether the controller runs an agent (it is a chassis of a site with OVN)."""
    return any(h.name == ctx.controller.name for h in agent_hosts(ctx.site))


def remote_agents(ctx: ServiceContext) -> list[Host]:
    """The chassis other than the controller: each runs its agent, deployed with them."""
    return [h for h in agent_hosts(ctx.site) if h.name != ctx.controller.name]


def agent_conf_path(ctx: ServiceContext) -> Path:
    return ctx.etc(name) / "ovn_agent.ini"


def _groups(ctx: ServiceContext) -> tuple[str, ...]:
    """neutron's groups besides the site's: the caches, and the switch's database
    (its OVN agent wires the metadata path into it)."""
    return (*oslo.CACHE_GROUPS, *((ovs.CLIENT_GROUP,) if nova.serves_metadata(ctx.site)
                                  else ()))


def agent_state(ctx: ServiceContext) -> Path:
    """The agent's state: haproxy configurations and pid files (haproxy, started as
    root by neutron-rootwrap, writes its pid file there)."""
    return ctx.paths.data / AGENT


def metadata_socket_dir(ctx: ServiceContext) -> Path:
    """Where the agent listens for its haproxies (user neutron): root:neutron, setgid,
    so the socket it makes with umask 007 is the group's (neutron's agent code does
    not apply ``metadata_proxy_socket_mode`` to it). Outside the site's folder: haproxy
    drops its supplementary groups, so it cannot pass the site group's folder."""
    return ctx.paths.sockets / "neutron-metadata"


def rootwrap_conf_path(ctx: ServiceContext) -> Path:
    return ctx.etc(name) / "rootwrap.conf"


def _rootwrap_conf(ctx: ServiceContext) -> str:
    """neutron-rootwrap's settings: the release's own filters (``ip netns exec`` of an
    haproxy and little else), commands from the system's folders only."""
    return oslo.render_ini({"DEFAULT": {
        "filters_path": str(ctx.venv / "etc" / "neutron" / "rootwrap.d"),
        "exec_dirs": "/sbin,/usr/sbin,/bin,/usr/bin", "use_syslog": "False"}})


def _sudo_helper(ctx: ServiceContext) -> str:
    return f"sudo {ctx.bin('privsep-helper')} --config-file {agent_conf_path(ctx)}"


def _sudo_rootwrap(ctx: ServiceContext) -> str:
    return f"sudo {ctx.bin('neutron-rootwrap')} {rootwrap_conf_path(ctx)}"


def agent_sudoers(ctx: ServiceContext) -> str:
    """What the agent (user neutron) may run as root, for any release of the site (an
    upgrade starts the next release's agent before this file is written again): the
    privileged helper with the agent's configuration, and neutron-rootwrap with the
    site's rootwrap.conf. (sudo resets the environment: the helpers and haproxies it
    starts carry no program marker; they outlive the agent by design.)"""
    venv, etc = ctx.paths.venv("*") / "bin", ctx.paths.etc("*") / name
    return (f"{name} ALL=(root) NOPASSWD: {venv / 'privsep-helper'} --config-file "
            f"{etc / agent_conf_path(ctx).name} *\n"
            f"{name} ALL=(root) NOPASSWD: {venv / 'neutron-rootwrap'} "
            f"{etc / rootwrap_conf_path(ctx).name} *\n")


def host_files(ctx: ServiceContext) -> tuple[Path, ...]:
    """Files of the site outside its folder on the agent's host (removed by a purge)."""
    return (sudoers_path(ctx, name),) if agent_hosts(ctx.site) else ()


def agent_tls_files(ctx: ServiceContext, host: Host) -> dict[Path, str]:
    """The agent's copy of its chassis's certificate and key and the internal CA, for
    mutual TLS from a host other than the controller to the southbound database and
    to nova's metadata API (ADR 0025): neutron's, like its configuration (the chassis's
    own copy is root's)."""
    if host.name == ctx.controller.name:
        return {}
    own, etc = ctx.internal_tls.of(host.name), ctx.etc(name)
    return {etc / "host-key.pem": own.key_pem, etc / "host-cert.pem": own.cert_pem,
            etc / "internal-ca.pem": ctx.internal_tls.ca_pem}


def _metadata_api(ctx: ServiceContext, host: Host,
                  tls: tuple[Path, Path, Path] | None) -> dict[str, str]:
    """Where the agent reaches nova's metadata API: on the controller, its loopback
    listener; from another host, HAProxy on the controller over mutual TLS."""
    if tls is None:
        return {"nova_metadata_host": nova.METADATA_LISTEN,
                "nova_metadata_port": str(ctx.ports.infra("nova-metadata"))}
    key, cert, ca = tls
    return {"nova_metadata_host": str(ctx.controller.address),
            "nova_metadata_port": str(ctx.ports.infra("nova-metadata-tls")),
            "nova_metadata_protocol": "https", "auth_ca_cert": str(ca),
            "nova_client_cert": str(cert), "nova_client_priv_key": str(key)}


def _agent_conf(ctx: ServiceContext, host: Host) -> str:
    helper = _sudo_helper(ctx)
    tls = tuple(agent_tls_files(ctx, host))
    files = (tls[0], tls[1], tls[2]) if tls else None
    return oslo.render_ini(oslo.merged({
        "DEFAULT": {"debug": "false", "log_dir": "", "use_stderr": "true",
                    "state_path": str(agent_state(ctx)), **_metadata_api(ctx, host, files),
                    "metadata_proxy_shared_secret": ctx.secret(nova.METADATA_SECRET),
                    "metadata_proxy_socket": str(metadata_socket_dir(ctx) / "metadata_proxy"),
                    "metadata_proxy_user": name, "metadata_proxy_group": name,
                    "metadata_workers": "1"},
        "agent": {"extensions": "metadata", "root_helper": _sudo_rootwrap(ctx)},
        "oslo_concurrency": oslo.lock_path(ctx, name),
        **{section: {"helper_command": helper} for section in PRIVSEP_SECTIONS},
    }, ovn.metadata_agent_settings(ctx, host, files)))


def agent_program(ctx: ServiceContext) -> Program:
    return Program(AGENT, [ctx.bin(AGENT), "--config-file", str(agent_conf_path(ctx))],
                   user=name, owns_tree=False, umask=0o007)


def agent_probe(ctx: ServiceContext, host: Host | None = None) -> CommandProbe:
    """Healthy when the agent listens on its metadata socket (the kernel's table of
    listening unix sockets: a socket file alone may be a dead agent's; connecting to
    it would log an error in the agent for every check)."""
    sock = metadata_socket_dir(ctx) / "metadata_proxy"
    script = (f'awk -v p="{sock}" \'$NF == p && $4 == "00010000" '
              '{print "metadata socket listening"; exit}\' /proc/net/unix')
    return CommandProbe(("sh", "-c", script), "metadata socket listening",
                        label=f"{AGENT}: metadata socket",
                        runs_on=host.name if host else "")


def metadata_proxies_script(ctx: ServiceContext, purge: bool) -> tuple[str, ...]:
    """argv, run on the agent's host once it stopped (``down``): its haproxies stopped
    (the pid file's process, if it is an haproxy); with ``purge`` also their
    namespaces (the veth in br-int goes with them)."""
    pids, confs = agent_state(ctx) / "external" / "pids", agent_state(ctx) / "ovn-metadata-proxy"
    script = (f'for f in "{pids}"/*.pid.haproxy; do [ -f "$f" ] || continue; p=$(cat "$f"); '
              + kill_if_running('"$p"', "haproxy") + 'rm -f "$f"; done; '
              # and any haproxy of this site's proxies that its pid file no longer names
              f'pkill {THIS_HOST_ONLY} -f "^haproxy -f {confs}/" 2>/dev/null; ')
    if purge:
        script += (f'for c in "{confs}"/*.conf; do [ -f "$c" ] || continue; '
                   f'ip netns delete "ovnmeta-$(basename "$c" .conf)" 2>/dev/null; done; ')
    return ("sh", "-c", script + "true")


def _conf_args(ctx: ServiceContext) -> tuple[str, ...]:
    etc = ctx.etc(name)
    return ("--config-file", str(etc / "neutron.conf"),
            "--config-file", str(etc / "plugins" / "ml2" / "ml2_conf.ini"))


def config(ctx: ServiceContext) -> dict[Path, str]:
    etc = ctx.etc(name)
    files = {etc / "neutron.conf": _conf(ctx),
             etc / "plugins" / "ml2" / "ml2_conf.ini": _ml2_conf(ctx),
             uwsgi.ini_path(ctx, name, ctx.color(name)):
                 uwsgi.ini(ctx, name, API_MODULE, processes=1, extra={"start-time": "%t"})}
    if _agent_here(ctx):
        files.update(agent_config(ctx, ctx.controller))
    return files


def agent_config(ctx: ServiceContext, host: Host) -> dict[Path, str]:
    """The agent's files on ``host`` (it finds its chassis by the switch's
    ``system-id``; on a host other than the controller with its TLS files)."""
    return {agent_conf_path(ctx): _agent_conf(ctx, host),
            rootwrap_conf_path(ctx): _rootwrap_conf(ctx), **agent_tls_files(ctx, host)}


def programs(ctx: ServiceContext) -> list[Program]:
    conf = _conf_args(ctx)
    agent = [agent_program(ctx)] if _agent_here(ctx) else []
    return [uwsgi.program(ctx, name),
            Program("neutron-rpc-server", [ctx.bin("neutron-rpc-server"), *conf], user=name),
            Program("neutron-periodic-workers", [ctx.bin("neutron-periodic-workers"), *conf],
                    user=name), *agent]


def checks(ctx: ServiceContext) -> list[Check]:
    """The API answers; with OVN, its hash ring also holds live processes only; the
    OVN agent listens for its metadata proxies."""
    api = api_probes(ctx, name)[0]
    if not ovs.in_use(ctx.site):
        return [Check("neutron-api", api)]
    ring = HashRingProbe(mariadb.socket_path(ctx), name, HASH_RING_GROUP,
                         HASH_RING_TOUCH_INTERVAL, HASH_RING_NODE_TIMEOUT,
                         runs_on=ctx.controller.name)
    agent = [Check(AGENT, agent_probe(ctx))] if _agent_here(ctx) else []
    remote = [Check(f"{AGENT}/{h.name}", agent_probe(ctx, h)) for h in remote_agents(ctx)]
    return [Check("neutron-api", AllOf((api, ring))), *agent, *remote]


def catalog_entry(ctx: ServiceContext) -> CatalogEntry:
    return api_catalog_entry(ctx, name, "network")


def configure(ctx: ServiceContext) -> list[Step]:
    """Configuration files of this release."""
    return config_steps(ctx, name, config(ctx))


def upgrade_check(ctx: ServiceContext) -> tuple[str, ...]:
    return as_service(ctx, name, (ctx.bin("neutron-status"), *_conf_args(ctx), "upgrade",
                                  "check"))


def expand(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    return [("db-expand", as_service(ctx, name, (ctx.bin("neutron-db-manage"),
                                                 *_conf_args(ctx), "upgrade", "--expand")))]


def contract(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    return [("db-contract", as_service(ctx, name, (ctx.bin("neutron-db-manage"),
                                                   *_conf_args(ctx), "upgrade",
                                                   "--contract")))]


def steps(ctx: ServiceContext) -> list[Step]:
    conf = config(ctx)
    manage = as_service(ctx, name, (ctx.bin("neutron-db-manage"), *_conf_args(ctx)))
    return [
        *account_steps(ctx, name, groups=_groups(ctx)),
        step(ctx, name, "dirs", "create state directories",
             EnsureDirs(((ctx.paths.data / name, name, 0o750),
                         (ctx.paths.data / name / "locks", name, 0o750),
                         *_agent_dirs(ctx)))),
        *_netns_folder(ctx),
        *configure(ctx),
        *_agent_sudoers(ctx),
        step(ctx, name, "db-sync", "migrate the neutron database",
             RunOnce((*manage, "upgrade", "heads"), inputs=ctx.series)),
        *program_steps(ctx, name, programs(ctx), conf,
                       {"neutron-api": api_probes(ctx, name)}),
        *(s for h in remote_agents(ctx) for s in agent_steps(ctx, h)),
    ]


def agent_steps(ctx: ServiceContext, host: Host) -> list[Step]:
    """neutron's OVN agent on a chassis other than the controller (all at once): its
    user (in the switch's group), folders, files, sudoers and program."""
    fanout = AGENT_FANOUT

    def on(step_name: str, summary: str, action: object) -> Step:
        return host_step(ctx, host, name, step_name, summary, action, fanout=fanout)

    conf = agent_config(ctx, host)
    path = sudoers_path(ctx, name)
    return [
        on("packages", "install the metadata path's tools (Debian)",
           InstallPackages(AGENT_PACKAGES)),
        *account_steps(ctx, name, on=host, fanout=fanout, groups=(ovs.CLIENT_GROUP,)),
        on("dirs", "create the agent's state directories",
           EnsureDirs(((ctx.paths.data / name, name, 0o750),
                       (ctx.paths.data / name / "locks", name, 0o750), *_agent_dirs(ctx)))),
        on("netns-folder", f"keep {NETNS_FOLDER} root's, mode 0755",
           KeepFolderClosed(NETNS_FOLDER)),
        *config_steps(ctx, name, conf, on=host, fanout=fanout),
        on("sudoers", f"let {AGENT} start its privileged helpers ({path})",
           WriteFile(path, agent_sudoers(ctx), mode=0o440)),
        *program_steps(ctx, name, [agent_program(ctx)], conf,
                       {AGENT: agent_probe(ctx, host)}, on=host, fanout=fanout),
    ]


# Where iproute2 and neutron's privileged helper keep named network namespaces.
NETNS_FOLDER = Path("/run/netns")


def _netns_folder(ctx: ServiceContext) -> list[Step]:
    """The agent's namespaces' folder, root's 0755 before its privileged helper (umask
    0) would make it 0777: no local user may plant an ``ovnmeta-<network>`` there."""
    if not _agent_here(ctx):
        return []
    return [step(ctx, name, "netns-folder", f"keep {NETNS_FOLDER} root's, mode 0755",
                 KeepFolderClosed(NETNS_FOLDER))]


def _agent_sudoers(ctx: ServiceContext) -> list[Step]:
    if not _agent_here(ctx):
        return []
    path = sudoers_path(ctx, name)
    return [step(ctx, name, "sudoers", f"let {AGENT} start its privileged helpers ({path})",
                 WriteFile(path, agent_sudoers(ctx), mode=0o440))]


def _agent_dirs(ctx: ServiceContext) -> tuple[tuple[Path, str, int], ...]:
    """The agent's state (haproxies' configurations and pid files) is its own; its
    metadata socket's folder is root's and writable by neutron's group (setgid)."""
    if not agent_hosts(ctx.site):
        return ()
    # setgid: the pid file an haproxy writes as root (0640) is neutron's group's, so
    # the agent reads it and finds its haproxy again (else it starts one more at each
    # resync, and cannot stop the others).
    return ((agent_state(ctx), name, 0o2750),
            (metadata_socket_dir(ctx), f"root:{name}", 0o2770))


# --- neutron's OVN hash ring ------------------------------------------------------
#
# ML2/OVN hands each OVN event (a port going up: nova's network-vif-plugged) to one
# API worker, chosen by a hash ring of the workers in the database (ovn_hash_ring).
# A worker counts as alive for HASH_RING_NODE_TIMEOUT s after its last touch (every
# HASH_RING_TOUCH_INTERVAL s), and every worker caches the ring for up to
# HASH_RING_CACHE_TIMEOUT s (neutron.common.ovn.constants, 2026.1 and 2026.2). A
# worker that stops without removing its row (uWSGI's workers do not) keeps getting
# events for up to three minutes, and they are lost: servers stay in BUILD waiting
# for network-vif-plugged. So an API instance leaves the ring before it stops.
HASH_RING_GROUP = "mechanism_driver"
HASH_RING_NODE_TIMEOUT = 120
HASH_RING_TOUCH_INTERVAL = 15
HASH_RING_CACHE_TIMEOUT = 60


def ring_host(ctx: ServiceContext, color: str) -> str:
    """The ``host`` of one API instance in the hash ring: each color is a host of its
    own (both run during a blue/green upgrade)."""
    return f"{ctx.host}-{color}"


def before_api_stops(ctx: ServiceContext, color: str) -> CallOnce | None:
    """What must happen before the ``color`` API instance stops for good (its older
    release retired, or its newer one rolled back): it leaves the hash ring."""
    return leave_hash_ring(ctx, color) if ovs.in_use(ctx.site) else None


def leave_hash_ring(ctx: ServiceContext, color: str) -> CallOnce:
    """The ``color`` API instance leaves the hash ring, then every other process has
    reloaded it (its cache timed out) before the instance may stop: until then the
    instance, still running, handles what is hashed to it."""
    host, sock = ring_host(ctx, color), mariadb.socket_path(ctx)

    def run(hc: HostContext) -> None:
        left = mysql.execute(hc.host, sock, name, f"DELETE FROM ovn_hash_ring WHERE hostname="
                             f"{mysql.literal(host)} AND group_name="
                             f"{mysql.literal(HASH_RING_GROUP)}")
        wait = HASH_RING_CACHE_TIMEOUT + 5
        hc.progress.message(f"neutron: {left} worker(s) of {host} left the OVN hash ring; "
                            f"{wait}s for the other workers to reload it")
        time.sleep(wait)

    return CallOnce(f"{host} leaves the OVN hash ring", run, inputs=f"{ctx.series}|{color}")


# --- the agents in an upgrade -----------------------------------------------------

# Programs that follow neutron's servers in a roll (upstream: servers, then agents);
# ``before_agents`` runs between them.
AGENTS = (AGENT,)
# Loaded just before its restart in a roll (its stop is the metadata path's outage).
LOAD_AT_RESTART = AGENTS


def before_agents(ctx: ServiceContext) -> CallOnce:
    """The OVN rows neutron made are written again by the servers of the release the
    site lands on, before its agents start. The agent of 2026.2 reads the network's
    MTU from the metadata port's row (``neutron:mtu``), which 2026.1's server left
    empty: without this, it cannot provision a network made before the upgrade.
    neutron's ``neutron-ovn-db-sync-util`` and maintenance tasks compare rows by
    existence and revision number only, so they leave such a row as it is; a port
    update through the API runs ML2/OVN's ``update_port``, which writes the row whole."""
    login = oslo.admin_login(ctx)

    def run(hc: HostContext) -> None:
        ports = cloud.rewrite_ports(login.connect(), cloud.METADATA_PORT_OWNER)
        hc.progress.message(f"neutron {ctx.series}: {len(ports)} metadata port(s) "
                            "written again to OVN")

    return CallOnce(f"rewrite metadata ports ({ctx.series})", run, inputs=ctx.series)


def roll_checks(ctx: ServiceContext) -> list[tuple[str, str, CallOnce]]:
    """What must hold once all of neutron runs ``ctx.series`` (an upgrade's verify
    phase, the end of a rollback)."""
    if not nova.serves_metadata(ctx.site):
        return []
    return [("metadata-provisioned", f"every network with servers on {ctx.host} has its "
             f"metadata proxy, provisioned by the agent as it runs now",
             metadata_provisioned(ctx))]


# The agent logs this once it has wired a network's metadata path (2026.1, 2026.2).
PROVISIONED = re.compile(r"^(\S+ \S+) .*Provisioning metadata for network ([0-9a-f-]{36})")
LOG_TIME = "%Y-%m-%d %H:%M:%S"
PROVISION_TIMEOUT = 90.0


def metadata_provisioned(ctx: ServiceContext) -> CallOnce:
    """Every network with a server's port on the agent's chassis was provisioned by
    the agent as it runs now (its log says so since its start), and has its
    namespace and a running proxy. Waits up to PROVISION_TIMEOUT s for the agent."""

    def run(hc: HostContext) -> None:
        deadline = time.monotonic() + PROVISION_TIMEOUT
        while True:
            missing = _unprovisioned(ctx, hc)
            if not missing:
                hc.progress.message("neutron: every network with servers here has its "
                                    "metadata proxy")
                return
            if time.monotonic() > deadline:
                raise CheckFailedError(f"{AGENT} on {ctx.host}", "metadata not provisioned "
                                       "for " + "; ".join(missing))
            time.sleep(3)

    return CallOnce("metadata provisioned", run, inputs=ctx.series)


# The agent logs this once its metadata extension serves (2026.1, 2026.2); its socket
# listens some seconds before.
AGENT_STARTED = re.compile(r"^(\S+ \S+) .*OVN Neutron Agent started")
AGENT_START_TIMEOUT = 180.0


def agent_ready(ctx: ServiceContext) -> CallOnce:
    """Wait until the agent that runs now has started (its log says so since the
    process started): only then does it answer the metadata proxies again, and only
    then may nova's metadata API restart, so that the two outages of the metadata path
    do not add up."""

    def run(hc: HostContext) -> None:
        deadline = time.monotonic() + AGENT_START_TIMEOUT
        while True:
            started = float(hc.supervisor.states().get(AGENT, {}).get("start", 0))
            if logged_since(AGENT_STARTED, hc.supervisor.log_text(AGENT), started):
                return
            if time.monotonic() > deadline:
                raise CheckFailedError(f"{AGENT} on {ctx.host}", "not started within "
                                       f"{AGENT_START_TIMEOUT:.0f}s (no 'OVN Neutron Agent "
                                       "started' in its log)")
            time.sleep(1)

    return CallOnce(f"{AGENT} started", run, inputs=ctx.series)


def logged_since(pattern: re.Pattern[str], log: str, started: float) -> bool:
    """Whether a line matching ``pattern`` (its first group: the line's local time) was
    logged at or after ``started`` (epoch)."""
    return any(match and _log_epoch(match[1]) >= int(started)
               for match in map(pattern.match, log.splitlines()))


def _log_epoch(stamp: str) -> float:
    return time.mktime(time.strptime(stamp.split(".")[0], LOG_TIME))


def _unprovisioned(ctx: ServiceContext, hc: HostContext) -> list[str]:
    networks = networks_with_servers(ctx, hc)
    started = float(hc.supervisor.states().get(AGENT, {}).get("start", 0))
    done = provisioned_since(hc.supervisor.log_text(AGENT), started)
    missing = []
    for network in sorted(networks):
        if network not in done:
            missing.append(f"{network} (not provisioned since the agent started)")
        elif not _proxy_running(ctx, hc, network):
            missing.append(f"{network} (no namespace or proxy)")
    return missing


def provisioned_since(log: str, started: float) -> set[str]:
    """Networks the agent's log says it provisioned at or after ``started`` (epoch)."""
    found = set()
    for line in log.splitlines():
        match = PROVISIONED.match(line)
        if match and _log_epoch(match[1]) >= int(started):
            found.add(match[2])
    return found


def networks_with_servers(ctx: ServiceContext, hc: HostContext) -> set[str]:
    """Networks (ids) with a server's port bound to this host's chassis, from OVN's
    southbound database."""
    sbctl = ("ovn-sbctl", f"--db=unix:{ovn.sb_socket(ctx)}", "--timeout=5", "--format=json")
    chassis = ovsdb.rows(hc.host.run([*sbctl, "--columns=_uuid", "find", "Chassis",
                                      f"name={ctx.host}"], timeout=15))
    if not chassis:
        return set()
    ports = ovsdb.rows(hc.host.run([*sbctl, "--columns=type,external_ids", "find",
                                    "Port_Binding", f"chassis={chassis[0]['_uuid']}"],
                                   timeout=15))
    return {str(p["external_ids"].get("neutron:network_name", ""))[len("neutron-"):]
            for p in ports if p["type"] == "" and
            str(p["external_ids"].get("neutron:device_owner", "")).startswith("compute:")}


def _proxy_running(ctx: ServiceContext, hc: HostContext, network: str) -> bool:
    pid_file = agent_state(ctx) / "external" / "pids" / f"{network}.pid.haproxy"
    script = (f'[ -e /run/netns/ovnmeta-{network} ] && p=$(cat "{pid_file}") && '
              f'grep -q haproxy "/proc/$p/cmdline"')
    try:
        hc.host.run(["sh", "-c", script], timeout=10)
    except CommandError:
        return False
    return True
