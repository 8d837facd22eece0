"""Open vSwitch on every chassis (compute and network host): the site's own database
server and switch daemon, with the userspace datapath (ADR 0015).

Everything is the site's: the database under its data dir, sockets, pid files and
control sockets under its run dir, output in its log dir. The distribution's instance
(/etc/openvswitch, /var/run/openvswitch) is never used, started or stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from onestack.core.step import Step
from onestack.drivers import ovsdb
from onestack.drivers.probes import CommandProbe
from onestack.drivers.supervisor import Program
from onestack.model.site import Host, NetworkBackend, Site
from onestack.services.base import Check, ServiceContext, host_step, program_steps
from onestack.steps.actions import EnsureDirs, EnsureSystemGroup, InstallPackages, RunOnce
from onestack.steps.ovs_actions import EnsureBridges, EnsureGuestFilter, EnsureTunnelEndpoint

name = "ovs"
kind = "infra"
# nftables: the guest filter (``guest_filter``).
PACKAGES = ("openvswitch-switch", "nftables")
CHASSIS_FANOUT = "ovs-chassis"  # every chassis other than the controller at once

INTEGRATION_BRIDGE = "br-int"
# The tunnel endpoint of a chassis with a ``tunnel`` (ADR 0023): the userspace
# datapath sends Geneve out of the bridge that holds the tunnel address. On a site of
# several chassis it also carries the tenant networks, as VLANs of physical network
# TENANT_PHYSNET (Open vSwitch 3.1's userspace datapath drops tunnelled packets whose
# checksum a guest or the host left to offload: TCP could not cross a Geneve tunnel).
TUNNEL_BRIDGE = "br-phy"
TENANT_PHYSNET = "tenant"
TENANT_VLANS = (1000, 1999)  # one VLAN per tenant network, from this range
# Physical network name -> its bridge. "public" is the provider network of floating
# IPs; its bridge has no uplink unless the operator adds one.
PROVIDER_BRIDGES = {"public": "br-ex"}
# No kernel module may be assumed: every bridge uses the userspace datapath.
DATAPATH_TYPE = "netdev"
# OVN's own settings of its integration bridge (those ovn-controller would give a
# bridge it created itself): only OVN's flows, never a "normal" L2 switch.
_BRIDGE_SETTINGS = {INTEGRATION_BRIDGE: (("datapath_type", DATAPATH_TYPE),
                                         ("fail_mode", "secure"))}


def is_chassis(host: Host) -> bool:
    """Whether a host forwards instance traffic (runs a switch and ovn-controller)."""
    return host.is_chassis


def tenant_vlans(site: Site) -> bool:
    """Whether the site's tenant networks are VLANs between its chassis (it has
    several; ADR 0023), not Geneve on one chassis."""
    return len(site.chassis) > 1


def bridge_mappings(site: Site, host: Host) -> dict[str, str]:
    """Physical network -> bridge on a chassis: ``public`` on br-ex everywhere, the
    tenant networks on br-phy where it has a tunnel on a site of several chassis."""
    tenant = {TENANT_PHYSNET: TUNNEL_BRIDGE} if tenant_vlans(site) and host.tunnel else {}
    return {**PROVIDER_BRIDGES, **tenant}


def tunnel_address(host: Host) -> str:
    """Where other chassis send this one's tunnels: its tunnel's address, else (the
    only chassis of its site) its own."""
    return str(host.tunnel.address.ip) if host.tunnel else str(host.address)


def in_use(site: Site) -> bool:
    """Whether the site's network back end is OVN (on this switch)."""
    return site.network == NetworkBackend.OVN


def hosts(site: Site) -> list[Host]:
    """Every compute and network host: the controller first (if it is one), then in
    site order (none without the OVN back end)."""
    if not in_use(site):
        return []
    return sorted((h for h in site.hosts if is_chassis(h)),
                  key=lambda h: h.name != site.controller.name)


def data_dir(ctx: ServiceContext) -> Path:
    return ctx.paths.data / "openvswitch"


def run_dir(ctx: ServiceContext) -> Path:
    return ctx.paths.run / "openvswitch"


def db_socket(ctx: ServiceContext) -> Path:
    return run_dir(ctx) / "db.sock"


def ovsdb_connection(ctx: ServiceContext) -> str:
    """How a client on a chassis reaches its switch's database (nova's os-vif
    ``[os_vif_ovs] ovsdb_connection``, the metadata agent's ``[ovs]``)."""
    return f"unix:{db_socket(ctx)}"


def environment(ctx: ServiceContext) -> dict[str, str]:
    """Where OVS programs and clients look for their files: the site's directories,
    never the compiled-in /var/run/openvswitch, /etc/openvswitch, /var/log/openvswitch."""
    return {"OVS_RUNDIR": str(run_dir(ctx)), "OVS_DBDIR": str(data_dir(ctx)),
            "OVS_SYSCONFDIR": str(data_dir(ctx)), "OVS_LOGDIR": str(ctx.paths.log)}


# OVS and OVN daemons fail at once on a bad database, socket or port, and every start
# waits on a real probe anyway: a short "started" window keeps the six starts of a
# chassis that is also the controller quick (supervisord's default is per program).
STARTSECS = 1
# Output to the program's log (supervisord's), none to syslog or a file of its own.
DAEMON_OPTIONS = ("--no-chdir", "-vconsole:info", "-vsyslog:off", "-vfile:off")


def daemon_program(program: str, command: list[str], env: dict[str, str]) -> Program:
    """An OVS or OVN daemon as a supervised program (run as root: the switch needs
    CAP_NET_ADMIN and /dev/net/tun; the others share its directories)."""
    return Program(program, command, env, stopwaitsecs=20, startsecs=STARTSECS)


def _daemon(ctx: ServiceContext, run: Path, program: str) -> tuple[str, ...]:
    """Foreground (no --detach, no --monitor: supervisord is the monitor) with the
    pid file and control socket in the site's run dir."""
    return (f"--pidfile={run / program}.pid", f"--unixctl={run / program}.ctl",
            *DAEMON_OPTIONS)


# The switch's database clients other than root: nova-compute's os-vif (it plugs
# instances) and neutron's OVN agent (it wires the metadata path) are members. The
# database server runs with this group and its sockets are rw for it (0770), never for
# anyone else (no TCP listener); QEMU's user is not a member (ADR 0021).
CLIENT_GROUP = "openvswitch"


def programs_on(ctx: ServiceContext, host: Host) -> list[Program]:
    """The database server and the switch of a chassis."""
    run, env = run_dir(ctx), environment(ctx)
    server = ["/usr/sbin/ovsdb-server", str(data_dir(ctx) / "conf.db"),
              # The socket only: no "db:...manager_options" remote, so no client can
              # make the database listen on TCP behind onestack's back.
              f"--remote=punix:{db_socket(ctx)}",
              *_daemon(ctx, run, "ovsdb-server")]
    switch = ["/usr/sbin/ovs-vswitchd", ovsdb_connection(ctx),
              *_daemon(ctx, run, "ovs-vswitchd")]
    return [replace(daemon_program("ovsdb-server", server, env), group=CLIENT_GROUP,
                    umask=0o007),
            daemon_program("ovs-vswitchd", switch, env)]


def programs(ctx: ServiceContext) -> list[Program]:
    """The controller's share: the switch when it is a chassis too."""
    if not (in_use(ctx.site) and is_chassis(ctx.controller)):
        return []
    return programs_on(ctx, ctx.controller)


def probes(ctx: ServiceContext, host: Host) -> dict[str, CommandProbe]:
    """Real requests: the database lists itself, the switch answers on its control
    socket (each on ``host``)."""
    run = run_dir(ctx)
    return {
        "ovsdb-server": CommandProbe(("ovsdb-client", "--timeout=3", "list-dbs",
                                      ovsdb_connection(ctx)), "Open_vSwitch",
                                     runs_on=host.name),
        "ovs-vswitchd": CommandProbe(("ovs-appctl", "--timeout=3", "-t",
                                      str(run / "ovs-vswitchd.ctl"), "version"),
                                     "ovs-vswitchd (Open vSwitch)", runs_on=host.name),
    }


# The switch's own view of its datapath: every bridge named, each as "  <name>:".
_BRIDGES_IN_DATAPATH = ('out=$(ovs-appctl --timeout=3 -t "$1" dpif/show) || exit 1; shift; '
                        'for b; do echo "$out" | grep -q "^  $b:" || '
                        '{ echo "bridge $b missing from the datapath"; exit 1; }; done; '
                        'echo "bridges $*"')


def bridges_probe(ctx: ServiceContext, host: Host) -> CommandProbe:
    """ovs-vswitchd answers and its datapath has every bridge (``status``)."""
    names = [n for n, _ in bridges(ctx)]
    return CommandProbe(("sh", "-c", _BRIDGES_IN_DATAPATH, "sh",
                         str(run_dir(ctx) / "ovs-vswitchd.ctl"), *names), "bridges",
                        runs_on=host.name, label="ovs-vswitchd datapath")


def checks(ctx: ServiceContext) -> list[Check]:
    """Every chassis's programs: named by program on the controller, ``program/host``
    elsewhere (as ``status`` looks them up); the switch's check also names its bridges."""
    status = {h.name: {**probes(ctx, h), "ovs-vswitchd": bridges_probe(ctx, h)}
              for h in hosts(ctx.site)}
    return [Check(program if name == ctx.host else f"{program}/{name}", probe)
            for name, by_program in status.items() for program, probe in by_program.items()]


def filter_table(ctx: ServiceContext) -> str:
    """The site's nftables table on each chassis (family inet)."""
    return "onestack_" + ctx.site.name.replace("-", "_")


def guest_filter(ctx: ServiceContext) -> str:
    """``nft -f`` input: on the site's bridges, the host accepts only replies to its
    own connections (its SSH and pings to floating IPs); whatever a guest sends to the
    host's addresses (sshd, or anything that ever listens on a wildcard address) is
    dropped. Guests' DHCP and metadata never reach the host: OVN answers DHCP, and the
    metadata proxies live in namespaces of their own. Redefines only this table."""
    table = f"inet {filter_table(ctx)}"
    names = ", ".join(f'"{n}"' for n, _ in bridges(ctx))
    return (f"table {table} {{}}\ndelete table {table}\n"
            f"table {table} {{\n"
            "\tchain guests-in {\n"
            "\t\ttype filter hook input priority filter; policy accept;\n"
            f"\t\tiifname {{ {names} }} ct state established,related accept\n"
            f"\t\tiifname {{ {names} }} counter drop\n"
            "\t}\n}\n")


def bridges(ctx: ServiceContext) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """The integration bridge and one bridge per provider network, each with the
    userspace datapath."""
    names = [INTEGRATION_BRIDGE, *PROVIDER_BRIDGES.values()]
    return tuple((n, _BRIDGE_SETTINGS.get(n, (("datapath_type", DATAPATH_TYPE),)))
                 for n in names)


def chassis_steps(ctx: ServiceContext, host: Host) -> list[Step]:
    """One chassis's switch: its packages (on hosts other than the controller, whose
    infrastructure packages come with the site's), directories, database, programs
    and bridges."""
    fanout = "" if host.name == ctx.host else CHASSIS_FANOUT
    db = data_dir(ctx) / "conf.db"

    def on(step: str, summary: str, action: object) -> Step:
        return host_step(ctx, host, name, step, summary, action, fanout=fanout)

    packages = ([] if host.name == ctx.host else
                [on("packages", "install Open vSwitch (Debian)", InstallPackages(PACKAGES))])
    create = ovsdb.create_db_script(db, ovsdb.OVS_SCHEMA, ovsdb.OVS_ROOT_ROW)
    client = [on("group", f"create system group {CLIENT_GROUP} (its members use the "
                          "switch's database)", EnsureSystemGroup(CLIENT_GROUP))]
    return [
        *packages,
        *client,
        on("dirs", "create Open vSwitch data and run directories",
           # The run dir is passable (its sockets' own modes guard them).
           EnsureDirs(((data_dir(ctx), None, 0o750), (run_dir(ctx), None, 0o755)))),
        on("create-db", f"create the Open vSwitch database {db}",
           RunOnce(("sh", "-c", create), inputs=str(db))),
        *program_steps(ctx, name, programs_on(ctx, host), {}, dict(probes(ctx, host)), 60,
                       on=host, fanout=fanout),
        on("bridges", "create bridges " + ", ".join(n for n, _ in bridges(ctx))
           + f" (datapath {DATAPATH_TYPE})", EnsureBridges(ovsdb_connection(ctx),
                                                           bridges(ctx))),
        *_tunnel_steps(ctx, host, on),
        on("guest-filter", f"drop what guests send to this host through the site's "
                           f"bridges (nftables table {filter_table(ctx)})",
           EnsureGuestFilter(filter_table(ctx), guest_filter(ctx))),
    ]


def _tunnel_steps(ctx: ServiceContext, host: Host, on: Callable[[str, str, object], Step]
                  ) -> list[Step]:
    tunnel = host.tunnel
    if tunnel is None:
        return []
    return [on("tunnel", f"tunnel endpoint {tunnel.address} on {TUNNEL_BRIDGE} through "
                         f"{tunnel.interface}",
               EnsureTunnelEndpoint(ovsdb_connection(ctx), TUNNEL_BRIDGE, tunnel.interface,
                                    str(tunnel.address)))]


def steps(ctx: ServiceContext) -> list[Step]:
    """The switch on every chassis: the controller's first (if it is one), then every
    other chassis at once."""
    return [s for h in hosts(ctx.site) for s in chassis_steps(ctx, h)]


def os_vif_settings(ctx: ServiceContext) -> dict[str, dict[str, str]]:
    """What nova's ``nova.conf`` needs on every compute so os-vif plugs instances into
    the site's switch (its database socket, the integration bridge)."""
    return {"os_vif_ovs": {"ovsdb_connection": ovsdb_connection(ctx)},
            "neutron": {"ovs_bridge": INTEGRATION_BRIDGE}}


def remove_ports_argv(ctx: ServiceContext) -> tuple[str, ...]:
    """argv, run on a chassis once its switch stopped (``down --purge``): the kernel
    devices the userspace datapath left (each bridge's internal port, ovs-netdev) and
    the site's guest filter."""
    names = [n for n, _ in bridges(ctx)] + [TUNNEL_BRIDGE, "ovs-netdev"]
    script = (" ".join(f"ip link delete {n} 2>/dev/null;" for n in names)
              + f" nft delete table inet {filter_table(ctx)} 2>/dev/null; true")
    return ("sh", "-c", script)
