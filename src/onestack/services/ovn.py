"""OVN, neutron's network back end (ADR 0015): the central databases and ovn-northd on
the controller, ovn-controller on every chassis, and the ML2/OVN settings neutron
needs to drive it.

Native OVN does DHCP, routing, NAT and security groups in the switch's flows: no L2,
L3 or DHCP agent. The northbound and southbound databases listen on unix sockets,
root's and neutron's group's only (ovn-northd, neutron, the OVN agent, the
controller's own ovn-controller); on a site with chassis on other hosts also on TCP at
the controller's address, on the site's ports (``model.ports``), for their
ovn-controllers and agents. Everything else is the site's own, as for Open vSwitch
(``services.ovs``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from onestack.core.step import Step
from onestack.drivers import ovsdb
from onestack.drivers.probes import CommandProbe, Probe
from onestack.drivers.supervisor import Program
from onestack.model.paths import SITE_GROUP
from onestack.model.site import Host, Role, Site
from onestack.services import oslo, ovs
from onestack.services.base import (
    Check,
    ServiceContext,
    host_step,
    host_tls_files,
    placed,
    program_steps,
    tls_steps,
)
from onestack.steps.actions import (
    EnsureDirs,
    EnsureSystemUser,
    InstallPackages,
    RunOnce,
)
from onestack.steps.ovs_actions import EnsureExternalIds

name = "ovn"
kind = "infra"
# neutron's metadata agent on the controller's chassis: iproute2 (its namespaces,
# ``ip netns exec`` for its haproxies) and iptables (it fills checksums in those
# namespaces with an iptables rule on a userspace, netdev, datapath); sudo (the agent
# runs as neutron and starts its privileged helpers through it).
PACKAGES = ("ovn-central", "ovn-host", "iproute2", "iptables", "sudo")
CHASSIS_PACKAGES = ("ovn-host",)  # what a chassis other than the controller needs
CHASSIS_FANOUT = "ovn-chassis"
ENCAP_TYPE = "geneve"
# Neutron schedules router gateways on the chassis that say so (network hosts).
GATEWAY_OPTION = "enable-chassis-as-gw"


_CENTRAL = placed("ovn-northbound-db")


def hosts(site: Site) -> list[Host]:
    """The central databases' and northd's hosts (the architecture's), then every
    other chassis (none without the OVN back end)."""
    central = _CENTRAL(site)
    names = {h.name for h in central}
    return [*central, *(h for h in ovs.hosts(site) if h.name not in names)]


def data_dir(ctx: ServiceContext) -> Path:
    return ctx.paths.data / "ovn"


def run_dir(ctx: ServiceContext) -> Path:
    return ctx.paths.run / "ovn"


def nb_socket(ctx: ServiceContext) -> Path:
    return run_dir(ctx) / "ovnnb_db.sock"


def sb_socket(ctx: ServiceContext) -> Path:
    return run_dir(ctx) / "ovnsb_db.sock"


# neutron (server and OVN agent) is the databases' client: their sockets are rw for
# its group, and nobody else's but root's (umask 007).
CLIENT_GROUP = "neutron"


def remote_chassis(site: Site) -> list[Host]:
    """The chassis on hosts other than the controller: they reach the databases over
    the network (none on an all-in-one site, whose databases have no TCP listener)."""
    return [h for h in ovs.hosts(site) if h.name != site.controller.name]


def tls_hosts(site: Site) -> list[Host]:
    """The hosts that talk TLS to another (ADR 0025): on a site with chassis on other
    hosts, the controller (the southbound database's server) and each of them."""
    remote = remote_chassis(site)
    return [site.controller, *remote] if remote else []


def nb_connection(ctx: ServiceContext) -> str:
    """The northbound database as neutron's server reaches it on the controller: its
    socket. No other host needs it (neutron's OVN agent reads the southbound only), so
    it never listens on the network."""
    return f"unix:{nb_socket(ctx)}"


def sb_connection(ctx: ServiceContext, host: Host | None = None) -> str:
    """The southbound database as a client on ``host`` reaches it: on the controller
    its socket; from another chassis TLS to the controller, with that host's own
    certificate, under OVN's RBAC role for chassis (ADR 0025)."""
    if host is None or host.name == ctx.controller.name:
        return f"unix:{sb_socket(ctx)}"
    return f"ssl:{ctx.address}:{ctx.ports.infra('ovn-sb')}"


def sb_listener(ctx: ServiceContext) -> str:
    """Where the southbound database takes other hosts' chassis: TLS on the
    controller's address (its Connection row, role ``ovn-controller``)."""
    return f"pssl:{ctx.ports.infra('ovn-sb')}:{ctx.address}"


# RBAC: a chassis that connects over the network may change its own rows only
# (Chassis, Chassis_Private, Encap by its certificate's common name; its ports'
# bindings), never another chassis's or the logical flows.
CHASSIS_ROLE = "ovn-controller"


def tls_dir(ctx: ServiceContext) -> Path:
    """OVN's certificate, key (0600) and the internal CA on a host, root's."""
    return ctx.etc_infra(name) / "tls"


def tls_files(ctx: ServiceContext, host: Host) -> dict[Path, str]:
    """The host's certificate and key (``state.tls.internal_tls``) and the internal
    CA, for the southbound database's TLS (none on a site of one chassis host)."""
    if not any(h.name == host.name for h in tls_hosts(ctx.site)):
        return {}
    return host_tls_files(ctx, host, tls_dir(ctx))


def _ssl_options(ctx: ServiceContext) -> list[str]:
    folder = tls_dir(ctx)
    return [f"--private-key={folder / 'key.pem'}", f"--certificate={folder / 'cert.pem'}",
            f"--ca-cert={folder / 'ca.pem'}"]


def _tls_steps(ctx: ServiceContext, host: Host, fanout: str = "") -> list[Step]:
    return tls_steps(ctx, name, host, tls_files(ctx, host), "root", fanout)


def environment(ctx: ServiceContext) -> dict[str, str]:
    """The site's directories for OVN's programs and clients (never /var/run/ovn,
    /etc/ovn, /var/lib/ovn); ovn-controller finds its bridge's OpenFlow socket
    (``br-int.mgmt``) in the switch's run dir, hence the OVS part."""
    return {**ovs.environment(ctx), "OVN_RUNDIR": str(run_dir(ctx)),
            "OVN_DBDIR": str(data_dir(ctx)), "OVN_SYSCONFDIR": str(data_dir(ctx)),
            "OVN_LOGDIR": str(ctx.paths.log)}


def _db_server(ctx: ServiceContext, program: str, base: str, network: list[str]) -> Program:
    """A central database server: its file, the unix socket (and ``network``: the
    southbound's TLS listener when other hosts have chassis), in the foreground, with
    neutron's group and sockets rw for it."""
    run = run_dir(ctx)
    command = ["/usr/sbin/ovsdb-server", str(data_dir(ctx) / f"{base}.db"),
               f"--remote=punix:{run / base}.sock", *network,
               f"--pidfile={run / base}.pid", f"--unixctl={run / base}.ctl",
               *ovs.DAEMON_OPTIONS]
    return replace(ovs.daemon_program(program, command, environment(ctx)),
                   group=CLIENT_GROUP, umask=0o007)


def central_programs(ctx: ServiceContext) -> list[Program]:
    """The northbound and southbound databases and ovn-northd between them."""
    run = run_dir(ctx)
    northd = ["/usr/bin/ovn-northd", f"--ovnnb-db=unix:{nb_socket(ctx)}",
              f"--ovnsb-db=unix:{sb_socket(ctx)}", f"--pidfile={run}/ovn-northd.pid",
              f"--unixctl={run}/ovn-northd.ctl", *ovs.DAEMON_OPTIONS]
    # The listener is the database's Connection row (it carries the RBAC role), set
    # by the sb-connection step once the server runs.
    network = (["--remote=db:OVN_Southbound,SB_Global,connections", *_ssl_options(ctx)]
               if remote_chassis(ctx.site) else [])
    return [_db_server(ctx, "ovn-nb-db", "ovnnb_db", []),
            _db_server(ctx, "ovn-sb-db", "ovnsb_db", network),
            ovs.daemon_program("ovn-northd", northd, environment(ctx))]


def controller_program(ctx: ServiceContext, host: Host) -> Program:
    """ovn-controller against the chassis's own switch database (on another host than
    the controller with its certificate for the southbound's TLS). (OVN 23.03's
    ovn-controller takes no --unixctl: its control socket is
    ``<OVN_RUNDIR>/ovn-controller.<pid>.ctl``.)"""
    ssl = _ssl_options(ctx) if host.name != ctx.controller.name else []
    command = ["/usr/bin/ovn-controller", ovs.ovsdb_connection(ctx), *ssl,
               f"--pidfile={run_dir(ctx)}/ovn-controller.pid", *ovs.DAEMON_OPTIONS]
    return ovs.daemon_program("ovn-controller", command, environment(ctx))


def programs(ctx: ServiceContext) -> list[Program]:
    """The controller's programs: the central ones, and ovn-controller when it is a
    chassis too."""
    if not ovs.in_use(ctx.site):
        return []
    own = [controller_program(ctx, ctx.controller)] if ovs.is_chassis(ctx.controller) else []
    return central_programs(ctx) + own


def central_probes(ctx: ServiceContext) -> dict[str, CommandProbe]:
    """Each database answers the OVSDB protocol where neutron reaches it; northd
    holds the lock that makes it the one translating northbound into southbound."""
    here = ctx.host

    def lists(connection: str, db: str) -> CommandProbe:
        return CommandProbe(("ovsdb-client", "--timeout=3", "list-dbs", connection), db,
                            runs_on=here)

    return {"ovn-nb-db": lists(nb_connection(ctx), "OVN_Northbound"),
            "ovn-sb-db": lists(sb_connection(ctx), "OVN_Southbound"),
            "ovn-northd": CommandProbe(("ovn-appctl", "--timeout=3", "-t",
                                        f"{run_dir(ctx)}/ovn-northd.ctl", "status"),
                                       "Status: active", runs_on=here)}


# ovn-controller's control socket carries its pid, which is the one inside the
# program's own PID namespace (ADR 0010): ask every such socket in the run dir; a
# stale one of a killed process refuses the connection and prints nothing.
_CONNECTION_STATUS = ('for s in "$1"/ovn-controller.*.ctl; do '
                      'ovn-appctl --timeout=3 -t "$s" connection-status 2>/dev/null; done; true')


def controller_connected(ctx: ServiceContext, host: Host) -> CommandProbe:
    """ovn-controller on ``host`` is connected to the southbound database."""
    return CommandProbe(("sh", "-c", _CONNECTION_STATUS, "sh", str(run_dir(ctx))),
                        "connected", runs_on=host.name)


def chassis_registered(ctx: ServiceContext, host: Host) -> CommandProbe:
    """The southbound database (on the controller) has ``host``'s chassis, under the
    host's site name: neutron binds a port to the chassis whose hostname is the
    port's host (nova's ``host``)."""
    return CommandProbe(("ovn-sbctl", f"--db=unix:{sb_socket(ctx)}", "--timeout=3", "--bare",
                         "--columns=hostname", "find", "Chassis", f"name={host.name}"),
                        host.name, runs_on=ctx.host)


def checks(ctx: ServiceContext) -> list[Check]:
    """The central programs, then each chassis's ovn-controller (``program/host`` on
    hosts other than the controller, as ``status`` looks them up)."""
    if not ovs.in_use(ctx.site):
        return []
    central = [Check(n, p) for n, p in central_probes(ctx).items()]
    return central + [Check("ovn-controller" if h.name == ctx.host else
                            f"ovn-controller/{h.name}", controller_connected(ctx, h))
                      for h in ovs.hosts(ctx.site)]


def chassis_ids(ctx: ServiceContext, host: Host) -> tuple[tuple[str, str], ...]:
    """What ovn-controller reads from its switch's database: the southbound database,
    the chassis's name, tunnel type and address, its bridges and whether it may host
    router gateways."""
    mappings = ",".join(f"{net}:{bridge}"
                        for net, bridge in ovs.bridge_mappings(ctx.site, host).items())
    return (("hostname", host.name),  # not the machine's: neutron matches nova's host
            ("ovn-bridge", ovs.INTEGRATION_BRIDGE),
            # Should ovn-controller ever recreate br-int, with the userspace datapath.
            ("ovn-bridge-datapath-type", ovs.DATAPATH_TYPE),
            ("ovn-bridge-mappings", mappings),
            ("ovn-cms-options", GATEWAY_OPTION if Role.NETWORK in host.roles else ""),
            ("ovn-encap-ip", ovs.tunnel_address(host)),
            ("ovn-encap-type", ENCAP_TYPE),
            ("ovn-remote", sb_connection(ctx, host)),
            ("system-id", host.name))


def _central_steps(ctx: ServiceContext) -> list[Step]:
    data = data_dir(ctx)
    create = " && ".join(ovsdb.create_db_script(data / f"{base}.db", schema)
                         for base, schema in (("ovnnb_db", ovsdb.NB_SCHEMA),
                                              ("ovnsb_db", ovsdb.SB_SCHEMA)))
    return [host_step(ctx, ctx.controller, name, "create-dbs",
                      f"create the OVN northbound and southbound databases in {data}",
                      RunOnce(("sh", "-c", create), inputs=str(data)))]


def _dirs(ctx: ServiceContext, *, central: bool = False) -> EnsureDirs:
    """The data folder (root's) and the run folder: on the controller neutron's group
    may pass it to reach the databases' sockets."""
    run_owner = f"root:{CLIENT_GROUP}" if central else None
    return EnsureDirs(((data_dir(ctx), None, 0o750), (run_dir(ctx), run_owner, 0o750)))


def _chassis(ctx: ServiceContext, host: Host, fanout: str) -> Step:
    return host_step(ctx, host, name, "chassis",
                     f"configure chassis {host.name} (southbound {sb_connection(ctx, host)}, "
                     f"{ENCAP_TYPE} at {ovs.tunnel_address(host)})",
                     EnsureExternalIds(ovs.ovsdb_connection(ctx), chassis_ids(ctx, host)),
                     fanout=fanout)


def _probes(ctx: ServiceContext, host: Host) -> dict[str, Probe | tuple[Probe, ...]]:
    return {"ovn-controller": (controller_connected(ctx, host), chassis_registered(ctx, host))}


def controller_steps(ctx: ServiceContext) -> list[Step]:
    """On the controller: directories, the central databases, its own chassis if it
    is one, then every program started and healthy in order."""
    chassis = ovs.is_chassis(ctx.controller)
    probes: dict[str, Probe | tuple[Probe, ...]] = dict(central_probes(ctx))
    if chassis:
        probes.update(_probes(ctx, ctx.controller))
    return [host_step(ctx, ctx.controller, name, f"user:{CLIENT_GROUP}",
                      f"create system user {CLIENT_GROUP} (its group uses the OVN databases)",
                      EnsureSystemUser(CLIENT_GROUP, (SITE_GROUP, *oslo.CACHE_GROUPS,
                                                        ovs.CLIENT_GROUP))),
            host_step(ctx, ctx.controller, name, "dirs", "create OVN data and run directories",
                      _dirs(ctx, central=True)),
            *_central_steps(ctx),
            *_tls_steps(ctx, ctx.controller),
            *([_chassis(ctx, ctx.controller, "")] if chassis else []),
            *program_steps(ctx, name, programs(ctx), tls_files(ctx, ctx.controller), probes, 60),
            *_sb_connection_steps(ctx)]


def _sb_connection_steps(ctx: ServiceContext) -> list[Step]:
    """The southbound's listener for other hosts' chassis: TLS, role ovn-controller."""
    if not remote_chassis(ctx.site):
        return []
    listener = sb_listener(ctx)
    return [host_step(ctx, ctx.controller, name, "sb-connection",
                      f"let other hosts' chassis reach the southbound database at {listener} "
                      f"(TLS, RBAC role {CHASSIS_ROLE})",
                      RunOnce(("ovn-sbctl", f"--db=unix:{sb_socket(ctx)}", "--timeout=10",
                               "set-connection", f"role={CHASSIS_ROLE}", listener),
                              inputs=f"{CHASSIS_ROLE} {listener}"))]


def chassis_steps(ctx: ServiceContext, host: Host) -> list[Step]:
    """ovn-controller on a chassis other than the controller (every one at once)."""
    fanout = CHASSIS_FANOUT

    def on(step: str, summary: str, action: object) -> Step:
        return host_step(ctx, host, name, step, summary, action, fanout=fanout)

    return [on("packages", "install ovn-controller (Debian)", InstallPackages(CHASSIS_PACKAGES)),
            on("dirs", "create OVN run directory", _dirs(ctx)),
            *_tls_steps(ctx, host, fanout),
            _chassis(ctx, host, fanout),
            *program_steps(ctx, name, [controller_program(ctx, host)], tls_files(ctx, host),
                           _probes(ctx, host), 60, on=host, fanout=fanout)]


def steps(ctx: ServiceContext) -> list[Step]:
    """The controller's share, then every other chassis's at once. Needs the switch
    (``services.ovs``) on every chassis first."""
    if not ovs.in_use(ctx.site):
        return []
    return [*controller_steps(ctx), *(s for h in hosts(ctx.site)[1:]
                                      for s in chassis_steps(ctx, h))]


def ml2_settings(ctx: ServiceContext) -> dict[str, dict[str, str]]:
    """Sections of neutron's ``ml2_conf.ini`` for ML2/OVN (``oslo.render_ini`` input):
    the OVN mechanism driver, tenant networks (Geneve on a site of one chassis, VLANs
    of ``ovs.TENANT_PHYSNET`` between several: ADR 0023), the provider networks of
    ``services.ovs`` as flat (or VLAN) networks, both databases, OVN's own
    metadata path (``neutron-ovn-metadata-agent`` on each chassis)."""
    physnets = ",".join(ovs.PROVIDER_BRIDGES)
    vlans, tenant_types = physnets, "geneve"
    if ovs.tenant_vlans(ctx.site):  # several chassis: tenant networks are VLANs (ADR 0023)
        first, last = ovs.TENANT_VLANS
        # Only the tenant physnet: neutron gives tenant networks VLANs of every physnet
        # listed, and one listed without a range offers all 4094 (public was taken).
        vlans, tenant_types = f"{ovs.TENANT_PHYSNET}:{first}:{last}", "vlan"
    return {
        "ml2": {"type_drivers": "flat,vlan,geneve", "tenant_network_types": tenant_types,
                "mechanism_drivers": "ovn", "extension_drivers": "port_security",
                "overlay_ip_version": "4"},
        "ml2_type_flat": {"flat_networks": physnets},
        "ml2_type_vlan": {"network_vlan_ranges": vlans},
        # 38 bytes: the geneve header with OVN's options (upstream's required value).
        "ml2_type_geneve": {"vni_ranges": "1:65536", "max_header_size": "38"},
        "securitygroup": {"enable_security_group": "true"},
        "ovn": {"ovn_nb_connection": nb_connection(ctx),
                "ovn_sb_connection": sb_connection(ctx),
                "ovn_l3_scheduler": "leastloaded",
                # A metadata port per network: 169.254.169.254 through neutron's
                # agent, and OVN's DHCP on subnets without a gateway (its server
                # address is that port's).
                "ovn_metadata_enabled": "true",
                "enable_distributed_floating_ip": "false",
                "neutron_sync_mode": "log"},
    }


def neutron_settings(ctx: ServiceContext) -> dict[str, dict[str, str]]:
    """What ``neutron.conf`` needs besides ML2: OVN's L3 service plugin (routers and
    floating IPs in OVN, no L3 agent)."""
    return {"DEFAULT": {"service_plugins": "ovn-router"}}


def metadata_agent_settings(ctx: ServiceContext, host: Host,
                            tls: tuple[Path, Path, Path] | None) -> dict[str, dict[str, str]]:
    """The OVN and OVS part of neutron's OVN agent's ini on ``host``: the southbound
    database (the only one it reads; over TLS with ``tls``: key, certificate and CA
    files, from another host than the controller) and the chassis's own switch
    database (the site's socket, not /var/run/openvswitch)."""
    ovn = {"ovn_sb_connection": sb_connection(ctx, host)}
    if tls is not None:
        key, cert, ca = tls
        ovn.update({"ovn_sb_private_key": str(key), "ovn_sb_certificate": str(cert),
                    "ovn_sb_ca_cert": str(ca)})
    return {"ovn": ovn, "ovs": {"ovsdb_connection": ovs.ovsdb_connection(ctx)}}
