"""OVN's data path for real: the site's own Open vSwitch (userspace datapath) and OVN
programs, started by their deploy steps under a real site supervisord, then a logical
switch with OVN's native DHCP, two ports in network namespaces that get their
addresses by DHCP and ping each other, a router with a gateway on the provider
network ``public`` (SNAT, a floating IP) reached from an "outside" namespace.

Nothing leaves the machine: the provider bridge br-ex has no uplink, its only other
port is an internal port in the namespace ``ostk-ovn-out``. Home
/var/tmp/onestack-ovn-e2e, port offset 700, namespaces ``ostk-ovn-*``, addresses in
198.18.70.0/24 (tenant) and 198.19.0.0/24 (provider). Timings are printed and
written to /var/tmp/onestack-ovn-e2e/timings.json.
"""

from __future__ import annotations

import grp
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.debian import install_without_starting  # noqa: E402

from onestack.core.progress import PlainProgress  # noqa: E402
from onestack.core.step import Plan, Step, make_plan  # noqa: E402
from onestack.drivers import ovsdb, processes  # noqa: E402
from onestack.drivers.host import LocalHost  # noqa: E402
from onestack.drivers.supervisor import (  # noqa: E402
    WRAPPER_PACKAGES,
    Supervisor,
    program_marker,
    render_supervisord_conf,
)
from onestack.engine.operations import gather_facts  # noqa: E402
from onestack.engine.runner import apply_plan  # noqa: E402
from onestack.model.paths import SitePaths  # noqa: E402
from onestack.model.ports import Ports  # noqa: E402
from onestack.model.site import Host, Role, Site  # noqa: E402
from onestack.services import network, ovn, ovs  # noqa: E402
from onestack.services.base import ServiceContext  # noqa: E402
from onestack.state.journal import Journal  # noqa: E402
from onestack.steps.actions import where  # noqa: E402
from onestack.steps.context import HostContext  # noqa: E402

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.component,  # what tests/e2e/test_instances.py covers through a whole site
    pytest.mark.skipif(os.geteuid() != 0, reason="OVS, OVN and network namespaces need root"),
    pytest.mark.usefixtures("network_tools"),
]

HOME = Path(os.environ.get("ONESTACK_TEST_OVN_HOME", "/var/tmp/onestack-ovn-e2e"))
TIMINGS_FILE = HOME / "timings.json"  # what a run leaves behind: the figures only
SITE, HOST, OFFSET = "ovne2e", "ovn1", 700
PREFIX = "ostk-ovn-"
# Interfaces the userspace datapath makes in this network namespace (persistent tap
# devices, left behind when ovs-vswitchd stops): another OVS here would share them.
DATAPATH_LINKS = ("ovs-netdev", ovs.INTEGRATION_BRIDGE, *ovs.PROVIDER_BRIDGES.values())
PACKAGES = (*ovs.PACKAGES, *ovn.PACKAGES, "busybox-static", *WRAPPER_PACKAGES)
BUSYBOX = "/bin/busybox"
TENANT_GW, FLOATING, PUBLIC_GW, OUTSIDE = ("198.18.70.1", "198.19.0.100", "198.19.0.10",
                                           "198.19.0.1")
VMS = {1: ("02:ac:12:46:00:0b", "198.18.70.11"), 2: ("02:ac:12:46:00:0c", "198.18.70.12")}
UDP_PORT = 47160
TIMINGS: dict[str, float] = {}

# busybox udhcpc's hook: put the leased address (and default route) on the interface.
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "lease $ip/$mask router $router" ;;
esac
exit 0
"""


def _run(*argv: str, check: bool = True, timeout: float = 60) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): "
                             f"{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def _in_ns(ns: str, *argv: str, check: bool = True, timeout: float = 60) -> str:
    return _run("ip", "netns", "exec", ns, *argv, check=check, timeout=timeout)


@dataclass
class OvnSite:
    """The test site: its context, host context and the clients' argvs."""

    ctx: ServiceContext
    hctx: HostContext
    supervisor: Supervisor
    deploy_seconds: float

    def steps(self) -> list[Step]:
        return [s for module in network.BACK_END for s in module.steps(self.ctx)]

    def plan(self) -> Plan:
        steps = self.steps()
        journal = Journal(self.ctx.paths.state_db)
        try:
            done = journal.done_for(steps)
        finally:
            journal.close()
        return make_plan("ovn", steps, gather_facts(steps, self.hctx), done)

    def apply(self, plan: Plan) -> None:
        journal = Journal(self.ctx.paths.state_db)
        try:
            apply_plan(plan, self.hctx, journal, PlainProgress(sys.stderr))
        finally:
            journal.close()

    def vsctl(self, *args: str) -> str:
        return _run(*ovsdb.vsctl(ovs.ovsdb_connection(self.ctx), *args))

    def nbctl(self, *args: str) -> str:
        return _run("ovn-nbctl", f"--db=unix:{ovn.nb_socket(self.ctx)}", "--timeout=10", *args)

    def sbctl(self, *args: str) -> str:
        return _run("ovn-sbctl", f"--db=unix:{ovn.sb_socket(self.ctx)}", "--timeout=10", *args)

    def diagnostics(self) -> str:
        """What a failure shows: OVN's and the switch's view, bindings, the logs."""
        parts = []
        for title, argv in (
                ("ovn-sbctl show", ("ovn-sbctl", f"--db=unix:{ovn.sb_socket(self.ctx)}",
                                    "--timeout=5", "show")),
                ("port bindings", ("ovn-sbctl", f"--db=unix:{ovn.sb_socket(self.ctx)}",
                                   "--timeout=5", "--columns=logical_port,chassis,up",
                                   "list", "Port_Binding")),
                ("ovn-nbctl show", ("ovn-nbctl", f"--db=unix:{ovn.nb_socket(self.ctx)}",
                                    "--timeout=5", "show")),
                ("ovs-vsctl show", ovsdb.vsctl(ovs.ovsdb_connection(self.ctx), "show",
                                               timeout=5))):
            parts.append(f"--- {title}\n{_run(*argv, check=False, timeout=15)}")
        for program in self.supervisor.states():
            tail = "\n".join(self.supervisor.log_tail(program, 15))
            parts.append(f"--- {program} (log tail)\n{tail}")
        return "\n".join(parts)

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float) -> float:
        """Poll ``condition`` until true; the seconds it took, or a failure naming
        ``what`` with the diagnostics."""
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > timeout:
                pytest.fail(f"{what}: not after {timeout:.0f}s\n{self.diagnostics()}")
            time.sleep(0.2)
        return time.monotonic() - start


def _site() -> Site:
    return Site(name=SITE, release="2026.1", port_offset=OFFSET,
                hosts=[Host(name=HOST, address=IPv4Address("127.0.0.1"),
                            roles=[Role.CONTROLLER, Role.COMPUTE, Role.NETWORK])])


def _context() -> ServiceContext:
    site = _site()
    paths = SitePaths(HOME, SITE)
    return ServiceContext(site=site, series=site.release, paths=paths, secrets={},
                          venv=paths.venv(site.release), ports=Ports(OFFSET))


def _other_vswitchd() -> list[int]:
    """ovs-vswitchd processes on this machine that are not this test's."""
    marker = program_marker(SitePaths(HOME, SITE).log, "ovs-vswitchd")
    ours = processes.marked_pids(LocalHost(), marker)
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in ours
            and _comm(p) == "ovs-vswitchd"]


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _links() -> set[str]:
    out = _run("ip", "-o", "link", "show")
    return {m.group(1) for m in re.finditer(r"^\d+: ([^:@]+)", out, re.M)}


def _cleanup(ctx: ServiceContext) -> None:
    """Everything this test makes, whatever state a run left it in: namespaces,
    programs (and anything left of them), the datapath's interfaces, the site."""
    for ns in _run("ip", "netns", "list", check=False).split():
        if ns.startswith(PREFIX):
            _run("ip", "netns", "del", ns, check=False)
    conf, sock = ctx.paths.run / "supervisord.conf", ctx.paths.run / "supervisor.sock"
    sup = Supervisor(conf, sock)
    if sup.is_running():
        # Bridges first: deleting them removes their tap devices.
        _run(*ovsdb.vsctl(ovs.ovsdb_connection(ctx), "--if-exists", "del-br", "br-int",
                          "--", "--if-exists", "del-br", "br-ex"), check=False)
        sup.shutdown()
    host = LocalHost()
    for module in network.BACK_END:
        for program in module.programs(ctx):
            processes.kill(host, processes.marked_pids(
                host, program_marker(ctx.paths.log, program.name)))
    if not _other_vswitchd():  # the datapath's taps are then ours (or nobody's)
        for link in DATAPATH_LINKS:
            if link in _links():
                _run("ip", "link", "del", link, check=False)
    shutil.rmtree(ctx.paths.site, ignore_errors=True)
    (HOME / "udhcpc.sh").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def packages() -> None:
    started = time.monotonic()
    installed = install_without_starting(PACKAGES)
    if installed:
        TIMINGS["install packages (s)"] = round(time.monotonic() - started, 1)
    # Debian's own daemons never started: the site's are the only ones.
    assert not _other_vswitchd(), "a system ovs-vswitchd runs on this machine"


@pytest.fixture(scope="module")
def site(packages: None) -> Iterator[OvnSite]:
    ctx = _context()
    _cleanup(ctx)  # a run killed half-way left its pieces: start clean
    clash = _links() & set(DATAPATH_LINKS)
    assert not clash, f"another Open vSwitch owns {sorted(clash)} on this machine"
    system_paths = {p: p.exists() for p in (Path("/var/run/openvswitch"), Path("/var/run/ovn"),
                                            Path("/var/lib/openvswitch/conf.db"))}
    paths = ctx.paths
    for d in (paths.data, paths.log, paths.run, paths.site / "supervisor"):
        d.mkdir(parents=True, exist_ok=True)
    conf = paths.run / "supervisord.conf"
    conf.write_text(render_supervisord_conf(paths.run, paths.log, paths.site / "supervisor"))
    sup = Supervisor(conf, paths.run / "supervisor.sock")
    local = LocalHost(HOST)
    hctx = HostContext(local, paths, sup, PlainProgress(sys.stderr), hosts={HOST: local})
    try:
        started = time.monotonic()
        probe = OvnSite(ctx, hctx, sup, 0.0)
        probe.apply(probe.plan())
        seconds = time.monotonic() - started
        TIMINGS["deploy ovs+ovn steps (s)"] = round(seconds, 2)
        yield OvnSite(ctx, hctx, sup, seconds)
        for path, existed in system_paths.items():  # nothing of the distribution's used
            assert path.exists() == existed, f"{path} appeared"
    finally:
        _cleanup(ctx)
        TIMINGS_FILE.write_text(json.dumps(TIMINGS, indent=2) + "\n")
        print(f"\nOVN e2e timings: {json.dumps(TIMINGS)}", file=sys.stderr)
    assert not any(ns.startswith(PREFIX) for ns in _run("ip", "netns", "list").split())
    assert not _links() & set(DATAPATH_LINKS) or _other_vswitchd()


def test_programs_run_from_the_site_and_answer(site: OvnSite) -> None:
    states = site.supervisor.states()
    programs = [p.name for m in network.BACK_END for p in m.programs(site.ctx)]
    assert programs == ["ovsdb-server", "ovs-vswitchd", "ovn-nb-db", "ovn-sb-db",
                        "ovn-northd", "ovn-controller"]
    assert {n: states[n]["statename"] for n in programs} == dict.fromkeys(programs, "RUNNING")
    for check in (c for m in network.BACK_END for c in m.checks(site.ctx)):
        ok, detail = where(check.probe, site.hctx).check()
        assert ok, f"{check.name}: {detail}\n{site.diagnostics()}"
    run = site.ctx.paths.run
    for sock in ("openvswitch/db.sock", "ovn/ovnnb_db.sock", "ovn/ovnsb_db.sock"):
        assert (run / sock).is_socket(), sock
    # The central databases of a one-host site listen on their sockets only (ADR 0021),
    # root's and neutron's group's.
    nb, sb = site.ctx.ports.infra("ovn-nb"), site.ctx.ports.infra("ovn-sb")
    assert (nb, sb) == (16641 + OFFSET, 16642 + OFFSET)
    for port in (nb, sb):
        assert not LocalHost().port_holder(port), f"something listens on {port}"
    for sock in ("ovn/ovnnb_db.sock", "ovn/ovnsb_db.sock"):
        info = (run / sock).stat()
        assert (info.st_mode & 0o777, grp.getgrgid(info.st_gid).gr_name) == (0o770, "neutron")
    # The chassis is registered under the site's host name, not the machine's.
    assert site.sbctl("--bare", "--columns=hostname", "find", "Chassis",
                      f"name={HOST}").strip() == HOST
    types = site.vsctl("--bare", "--columns=name,datapath_type", "list", "Bridge").split()
    assert sorted(types) == sorted(["br-int", "netdev", "br-ex", "netdev"])
    assert site.vsctl("get", "Bridge", "br-int", "fail_mode").strip() == "secure"


def test_a_second_plan_changes_nothing(site: OvnSite) -> None:
    started = time.monotonic()
    plan = site.plan()
    TIMINGS["plan with nothing to do (s)"] = round(time.monotonic() - started, 2)
    assert [s.id for s in plan.changes] == []


def test_a_bridge_deleted_behind_our_back_is_put_back(site: OvnSite) -> None:
    site.vsctl("del-br", "br-ex")
    plan = site.plan()
    assert [s.id for s in plan.changes] == ["ovs/bridges"]
    site.apply(plan)
    assert site.vsctl("get", "Bridge", "br-ex", "datapath_type").strip() == "netdev"
    assert site.plan().changes == []


def _port_in_namespace(site: OvnSite, port: str, ns: str, iface_id: str | None,
                       bridge: str = "br-int") -> None:
    """An OVS internal port, moved into its own namespace (what a VM's tap is)."""
    settings = [f"external_ids:iface-id={iface_id}"] if iface_id else []
    site.vsctl("add-port", bridge, port, "--", "set", "Interface", port, "type=internal",
               *settings)
    _run("ip", "netns", "add", ns)
    _run("ip", "link", "set", port, "netns", ns)
    _in_ns(ns, "ip", "link", "set", "lo", "up")


def _dhcp(ns: str, port: str, script: Path) -> str:
    """One DHCP exchange with busybox's client; its output."""
    return _in_ns(ns, BUSYBOX, "udhcpc", "-i", port, "-s", str(script), "-q", "-n", "-f",
                  "-t", "5", "-T", "1", check=False, timeout=30)


def _ping(ns: str, address: str, count: int = 1, wait: int = 2) -> tuple[int, int]:
    """(sent, received) of busybox ping (``wait``: seconds for the last answer)."""
    out = _in_ns(ns, BUSYBOX, "ping", "-c", str(count), "-W", str(wait), address,
                 check=False, timeout=10 + 3 * count)
    found = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
    return (int(found.group(1)), int(found.group(2))) if found else (count, 0)


@pytest.fixture(scope="module")
def tenant(site: OvnSite) -> OvnSite:
    """A logical switch 198.18.70.0/24 with native DHCP and two ports, each bound to an
    internal port of br-int in its own namespace."""
    site.nbctl("ls-add", "tenant", "--", "set", "Logical_Switch", "tenant",
               "other_config:subnet=198.18.70.0/24")
    dhcp = site.nbctl("create", "DHCP_Options", "cidr=198.18.70.0/24",
                      f'options="lease_time"="3600" "router"="{TENANT_GW}" '
                      f'"server_id"="{TENANT_GW}" "server_mac"="c0:ff:ee:00:46:01"').strip()
    for i, (mac, ip) in VMS.items():
        site.nbctl("lsp-add", "tenant", f"vm{i}", "--", "lsp-set-addresses", f"vm{i}",
                   f"{mac} {ip}", "--", "lsp-set-dhcpv4-options", f"vm{i}", dhcp)
        _port_in_namespace(site, f"{PREFIX}p{i}", f"{PREFIX}vm{i}", f"vm{i}")
        _in_ns(f"{PREFIX}vm{i}", "ip", "link", "set", f"{PREFIX}p{i}", "address", mac)
        _in_ns(f"{PREFIX}vm{i}", "ip", "link", "set", f"{PREFIX}p{i}", "up")
    return site


def test_ports_get_their_address_by_dhcp_and_reach_each_other(tenant: OvnSite) -> None:
    site = tenant

    def bound() -> bool:
        return all(site.sbctl("--bare", "--columns=up", "find", "Port_Binding",
                              f"logical_port=vm{i}").strip() == "true" for i in VMS)

    TIMINGS["ports bound and up (s)"] = round(site.wait_for(
        "vm1 and vm2 bound to the chassis and up", bound, 30), 2)
    script = HOME / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    for i, (_, ip) in VMS.items():
        ns, port = f"{PREFIX}vm{i}", f"{PREFIX}p{i}"
        started = time.monotonic()
        out = _dhcp(ns, port, script)
        TIMINGS[f"DHCP lease vm{i} (s)"] = round(time.monotonic() - started, 2)
        assert f"lease {ip}/24 router {TENANT_GW}" in out, f"{out}\n{site.diagnostics()}"
        assert f"inet {ip}/24" in _in_ns(ns, "ip", "-4", "addr", "show", port)
    TIMINGS["first ping vm1 -> vm2 (s)"] = round(site.wait_for(
        "vm1 pings vm2", lambda: _ping(f"{PREFIX}vm1", VMS[2][1])[1] == 1, 20), 2)
    assert _ping(f"{PREFIX}vm1", VMS[2][1], 5) == (5, 5)
    assert _ping(f"{PREFIX}vm2", VMS[1][1], 5) == (5, 5)
    # Not a broadcast domain of everything: an address no port has is not answered.
    assert _ping(f"{PREFIX}vm1", "198.18.70.99")[1] == 0


@pytest.fixture(scope="module")
def routed(tenant: OvnSite) -> OvnSite:
    """A router between the tenant switch and the provider network ``public`` (a
    localnet port to br-ex): SNAT for the tenant network, a floating IP for vm1, and
    an "outside" namespace on br-ex."""
    site = tenant
    site.nbctl("lr-add", "router")
    site.nbctl("lrp-add", "router", "router-tenant", "c0:ff:ee:00:46:01", f"{TENANT_GW}/24")
    site.nbctl("lsp-add", "tenant", "tenant-router", "--", "lsp-set-type", "tenant-router",
               "router", "--", "lsp-set-addresses", "tenant-router", "router", "--",
               "lsp-set-options", "tenant-router", "router-port=router-tenant")
    site.nbctl("ls-add", "public")
    site.nbctl("lsp-add", "public", "public-localnet", "--", "lsp-set-type",
               "public-localnet", "localnet", "--", "lsp-set-addresses", "public-localnet",
               "unknown", "--", "lsp-set-options", "public-localnet", "network_name=public")
    site.nbctl("lrp-add", "router", "router-public", "c0:ff:ee:00:13:0a", f"{PUBLIC_GW}/24")
    site.nbctl("lsp-add", "public", "public-router", "--", "lsp-set-type", "public-router",
               "router", "--", "lsp-set-addresses", "public-router", "router", "--",
               "lsp-set-options", "public-router", "router-port=router-public")
    site.nbctl("lrp-set-gateway-chassis", "router-public", HOST, "1")
    site.nbctl("lr-nat-add", "router", "snat", PUBLIC_GW, "198.18.70.0/24")
    site.nbctl("lr-nat-add", "router", "dnat_and_snat", FLOATING, VMS[1][1])
    out = f"{PREFIX}out"
    _port_in_namespace(site, out, out, None, bridge=ovs.PROVIDER_BRIDGES["public"])
    _in_ns(out, "ip", "addr", "add", f"{OUTSIDE}/24", "dev", out)
    _in_ns(out, "ip", "link", "set", out, "up")
    return site


def _source_seen_outside(site: OvnSite, sender_ns: str) -> str:
    """The source address a UDP datagram from ``sender_ns`` to the outside namespace
    arrives with (what NAT made of it)."""
    listen = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              f"s.bind(('{OUTSIDE}', {UDP_PORT})); s.settimeout(15); "
              "print(s.recvfrom(64)[1][0], flush=True)")
    server = subprocess.Popen(["ip", "netns", "exec", f"{PREFIX}out", "python3", "-c", listen],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    send = ("import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for _ in range(50): s.sendto(b'x', ('{OUTSIDE}', {UDP_PORT})); time.sleep(0.2)")
    try:
        time.sleep(0.5)  # the listener binds
        sender = subprocess.Popen(["ip", "netns", "exec", sender_ns, "python3", "-c", send])
        try:
            got = server.communicate(timeout=20)[0].strip()
        finally:
            sender.kill()
            sender.wait()
    finally:
        server.kill()
        server.wait()
    return got


def test_floating_ip_and_snat_through_the_gateway(routed: OvnSite) -> None:
    site = routed
    out = f"{PREFIX}out"
    TIMINGS["first ping outside -> floating IP (s)"] = round(site.wait_for(
        f"the outside namespace pings floating IP {FLOATING}",
        lambda: _ping(out, FLOATING)[1] == 1, 30), 2)
    assert _ping(out, FLOATING, 5) == (5, 5)
    assert _ping(f"{PREFIX}vm1", TENANT_GW)[1] == 1  # the router answers on the tenant side
    # vm1 goes out as its floating IP, vm2 (none) as the router's gateway address;
    # the outside has no route to 198.18.70.0/24, so only translated traffic returns.
    assert _source_seen_outside(site, f"{PREFIX}vm1") == FLOATING, site.diagnostics()
    assert _source_seen_outside(site, f"{PREFIX}vm2") == PUBLIC_GW, site.diagnostics()
    assert "198.18.70" not in _in_ns(out, "ip", "route")
    assert _ping(f"{PREFIX}vm2", OUTSIDE, 3) == (3, 3)


def _veth_in_namespace(site: OvnSite, name: str, ns: str, bridge: str,
                       iface_id: str | None) -> str:
    """A veth pair: one end a port of ``bridge`` (a "system" port, read by the
    userspace datapath like the tap of an instance), the other in its own namespace.
    Returns the namespace end's name."""
    inner = f"{name}i"
    _run("ip", "link", "add", name, "type", "veth", "peer", "name", inner)
    _run("ip", "netns", "add", ns)
    _run("ip", "link", "set", inner, "netns", ns)
    _run("ip", "link", "set", name, "up")
    _in_ns(ns, "ip", "link", "set", "lo", "up")
    settings = [f"external_ids:iface-id={iface_id}"] if iface_id else []
    site.vsctl("add-port", bridge, name, *(["--", "set", "Interface", name, *settings]
                                           if settings else []))
    return inner


@pytest.fixture(scope="module")
def instance_like(routed: OvnSite) -> OvnSite:
    """vm3 and an "outside" host ext, each on a veth pair (the way an instance's tap
    device is attached: it stays in the switch's namespace), vm3 with floating IP
    198.19.0.103."""
    site = routed
    mac, ip = "02:ac:12:46:00:0d", "198.18.70.13"
    dhcp = site.nbctl("--bare", "--columns=_uuid", "find", "DHCP_Options",
                      "cidr=198.18.70.0/24").strip()
    site.nbctl("lsp-add", "tenant", "vm3", "--", "lsp-set-addresses", "vm3", f"{mac} {ip}",
               "--", "lsp-set-dhcpv4-options", "vm3", dhcp)
    site.nbctl("lr-nat-add", "router", "dnat_and_snat", "198.19.0.103", ip)
    inner = _veth_in_namespace(site, f"{PREFIX}v3", f"{PREFIX}vm3", "br-int", "vm3")
    _in_ns(f"{PREFIX}vm3", "ip", "link", "set", inner, "address", mac)
    _in_ns(f"{PREFIX}vm3", "ip", "link", "set", inner, "up")
    lease = _dhcp(f"{PREFIX}vm3", inner, HOME / "udhcpc.sh")
    assert f"lease {ip}/24" in lease, f"{lease}\n{site.diagnostics()}"
    ext = _veth_in_namespace(site, f"{PREFIX}e", f"{PREFIX}ext", "br-ex", None)
    _in_ns(f"{PREFIX}ext", "ip", "addr", "add", "198.19.0.2/24", "dev", ext)
    _in_ns(f"{PREFIX}ext", "ip", "link", "set", ext, "up")
    site.wait_for("ext pings vm3's floating IP 198.19.0.103",
                  lambda: _ping(f"{PREFIX}ext", "198.19.0.103")[1] == 1, 30)
    return site


def test_switch_restart_outage_is_measured(instance_like: OvnSite) -> None:
    """ovs-vswitchd killed: supervisord restarts it, ovn-controller puts its flows
    back and the floating IP answers again; how long it did not is recorded (issue 11
    asks for the figure)."""
    site = instance_like
    before = site.supervisor.states()["ovs-vswitchd"]["pid"]
    marked = processes.marked_pids(LocalHost(), program_marker(site.ctx.paths.log,
                                                               "ovs-vswitchd"))
    switch = [pid for pid in marked if _comm(str(pid)) == "ovs-vswitchd"]
    assert len(switch) == 1, marked
    killed = time.monotonic()
    os.kill(switch[0], 9)  # the daemon itself, as a crash would
    # From the kill on, one ping (1 s wait) after another until one is answered.
    site.wait_for("vm3's floating IP reachable after the switch restart",
                  lambda: _ping(f"{PREFIX}ext", "198.19.0.103", wait=1)[1] == 1, 60)
    TIMINGS["floating IP (veth port) unreachable after ovs-vswitchd kill (s)"] = round(
        time.monotonic() - killed, 2)
    info = site.supervisor.states()["ovs-vswitchd"]
    assert info["statename"] in ("STARTING", "RUNNING") and info["pid"] != before
    assert _ping(f"{PREFIX}ext", "198.19.0.103", 5) == (5, 5)
    assert _ping(f"{PREFIX}vm3", TENANT_GW, 3) == (3, 3)
    # Recorded, not asserted: the userspace datapath reopens an internal port by name
    # in its own namespace, so one moved into another namespace is not found again.
    TIMINGS["internal port in a namespace reachable after restart (1=yes)"] = float(
        _ping(f"{PREFIX}out", FLOATING, 3)[1] > 0)
