"""The network back end (services/ovs.py, services/ovn.py) as data: steps per host,
programs, listeners and ports, chassis settings, neutron's ML2/OVN settings."""

from __future__ import annotations

import configparser
import dataclasses
import re
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface

import pytest

from onestack.core.step import Step, batches
from onestack.drivers.probes import CommandProbe
from onestack.drivers.supervisor import Program
from onestack.drivers.tls import HostCertificate, InternalTls
from onestack.model.site import Host, HostTunnel, Role, Site, default_lab_site
from onestack.services import network, oslo, ovn, ovs, registry
from onestack.services.base import ServiceContext
from onestack.steps.actions import EnsureDirs, InstallPackages, RunOnce, StartProgram
from onestack.steps.ovs_actions import (
    EnsureBridges,
    EnsureExternalIds,
    EnsureGuestFilter,
    EnsureTunnelEndpoint,
)

ContextFactory = Callable[..., ServiceContext]
AIO_STEPS = [
    "ovs/group", "ovs/dirs", "ovs/create-db",
    "ovs/program:ovsdb-server", "ovs/program:ovs-vswitchd",
    "ovs/supervisor", "ovs/start:ovsdb-server", "ovs/start:ovs-vswitchd", "ovs/bridges",
    "ovs/guest-filter",
    "ovn/user:neutron", "ovn/dirs", "ovn/create-dbs", "ovn/chassis", "ovn/program:ovn-nb-db",
    "ovn/program:ovn-sb-db", "ovn/program:ovn-northd", "ovn/program:ovn-controller",
    "ovn/supervisor", "ovn/start:ovn-nb-db", "ovn/start:ovn-sb-db", "ovn/start:ovn-northd",
    "ovn/start:ovn-controller"]


def site_of(computes: int, controller_roles: tuple[Role, ...] = (Role.CONTROLLER,
                                                                  Role.NETWORK)) -> Site:
    """One controller (198.18.20.10) and ``computes`` compute hosts after it (as in
    tests/unit/plans/test_plans_hosts.py)."""
    hosts = [Host(name="ctl1", address=IPv4Address("198.18.20.10"),
                  roles=list(controller_roles))]
    hosts += [Host(name=f"cmp{i}", address=IPv4Address("198.18.20.10") + i,
                   roles=[Role.COMPUTE]) for i in range(1, computes + 1)]
    return Site(name="multi", release="2026.1", hosts=hosts)


def _steps(ctx: ServiceContext) -> list[Step]:
    return [s for module in network.BACK_END for s in module.steps(ctx)]


def _programs_by_host(steps: list[Step]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for s in steps:
        if isinstance(s.action, StartProgram):
            found.setdefault(s.host, []).append(s.action.program)
    return found


def _program_defs(steps: list[Step]) -> dict[tuple[str, str], str]:
    """(host, program) -> its supervisord definition."""
    return {(s.host, s.id.rsplit("program:", 1)[1]): s.action.content  # type: ignore[attr-defined]
            for s in steps if "program:" in s.id}


def test_all_in_one_steps_in_order(make_service_context: ContextFactory) -> None:
    steps = _steps(make_service_context())
    assert [s.id for s in steps] == AIO_STEPS
    assert {s.host for s in steps} == {"aio"} and {s.fanout for s in steps} == {""}
    # The controller's packages come with the site's infrastructure packages.
    assert not any(isinstance(s.action, InstallPackages) for s in steps)


def test_registered_in_order_as_infrastructure() -> None:
    names = [m.name for m in registry.INFRASTRUCTURE]
    assert names.index("ovs") + 1 == names.index("ovn")
    assert [m.name for m in network.BACK_END] == ["ovs", "ovn"]
    assert all(m.kind == "infra" and m.PACKAGES for m in network.BACK_END)
    assert (*ovs.PACKAGES, *ovn.PACKAGES) == ("openvswitch-switch", "nftables", "ovn-central",
                                              "ovn-host", "iproute2", "iptables", "sudo")


def test_programs_are_foreground_and_use_only_the_sites_directories(
        make_service_context: ContextFactory) -> None:
    ctx = make_service_context()
    programs: list[Program] = ovs.programs(ctx) + ovn.programs(ctx)
    assert [p.name for p in programs] == ["ovsdb-server", "ovs-vswitchd", "ovn-nb-db",
                                          "ovn-sb-db", "ovn-northd", "ovn-controller"]
    site = str(ctx.paths.site)
    for p in programs:
        # Every path is the site's (or a program's): none of the distribution's
        # instance (/var/run/openvswitch, /etc/openvswitch, /var/lib/ovn...).
        text = " ".join([*p.command, *p.environment.values()])
        paths = re.findall(r"/[^\s:=,]+", text)
        assert paths and all(x.startswith((site, "/usr/")) for x in paths), (p.name, paths)
        assert "--detach" not in p.command and "--monitor" not in p.command
        assert "--no-chdir" in p.command and "-vsyslog:off" in p.command
        pidfile = next(a for a in p.command if a.startswith("--pidfile="))
        assert pidfile.startswith(f"--pidfile={ctx.paths.run}/"), p.name
        assert p.environment["OVS_RUNDIR"] == f"{ctx.paths.run}/openvswitch"
        assert all(v.startswith(site) for v in p.environment.values()), p.name
    by_name = {p.name: p for p in programs}
    assert by_name["ovsdb-server"].command[1] == f"{ctx.paths.data}/openvswitch/conf.db"
    assert by_name["ovs-vswitchd"].command[1] == f"unix:{ctx.paths.run}/openvswitch/db.sock"
    assert by_name["ovn-controller"].command[1] == ovs.ovsdb_connection(ctx)
    assert by_name["ovn-controller"].environment["OVN_RUNDIR"] == f"{ctx.paths.run}/ovn"
    northd = by_name["ovn-northd"].command
    assert f"--ovnnb-db=unix:{ctx.paths.run}/ovn/ovnnb_db.sock" in northd
    assert f"--ovnsb-db=unix:{ctx.paths.run}/ovn/ovnsb_db.sock" in northd
    # The switch's database is on its unix socket only.
    assert [a for a in by_name["ovsdb-server"].command if a.startswith("--remote")] == [
        f"--remote=punix:{ctx.paths.run}/openvswitch/db.sock"]


def test_all_in_one_databases_listen_on_their_sockets_only(
        make_service_context: ContextFactory) -> None:
    # issue 21: as nobody, ovn-nbctl --db=tcp:127.0.0.1:16641 listed every network
    ctx = make_service_context()
    nb, sb, *_ = ovn.central_programs(ctx)
    assert [a for a in nb.command if a.startswith("--remote")] == [
        f"--remote=punix:{ctx.paths.run}/ovn/ovnnb_db.sock"]
    assert [a for a in sb.command if a.startswith("--remote")] == [
        f"--remote=punix:{ctx.paths.run}/ovn/ovnsb_db.sock"]
    # root's and neutron's group's: sockets 0770 in a folder neutron's group may pass
    assert (nb.group, nb.umask, sb.group, sb.umask) == ("neutron", 0o007, "neutron", 0o007)
    assert ovn.nb_connection(ctx) == f"unix:{ctx.paths.run}/ovn/ovnnb_db.sock"
    assert ovn.sb_connection(ctx) == f"unix:{ctx.paths.run}/ovn/ovnsb_db.sock"
    dirs = next(s.action for s in _steps(ctx) if s.id == "ovn/dirs")
    assert isinstance(dirs, EnsureDirs)
    assert (ctx.paths.run / "ovn", "root:neutron", 0o750) in dirs.dirs


@pytest.mark.parametrize("offset", [0, 700, 3000])
def test_only_the_southbound_listens_for_other_chassis_and_only_over_tls_with_rbac(
        make_service_context: ContextFactory, offset: int) -> None:
    # issue 21: between hosts over TLS with the internal CA, chassis under RBAC; the
    # northbound (neutron's server only, on the controller) never on the network.
    site = site_of(1).model_copy(update={"port_offset": offset})
    ctx = make_service_context(site)
    nb, sb, *_ = ovn.central_programs(ctx)
    assert [a for a in nb.command if a.startswith("--remote")] == [
        f"--remote=punix:{ctx.paths.run}/ovn/ovnnb_db.sock"]
    tls = ctx.paths.site / "etc" / "infra" / "ovn" / "tls"
    assert [a for a in sb.command if a.startswith(("--remote", "--private", "--cert", "--ca"))] \
        == [f"--remote=punix:{ctx.paths.run}/ovn/ovnsb_db.sock",
            "--remote=db:OVN_Southbound,SB_Global,connections",
            f"--private-key={tls}/key.pem", f"--certificate={tls}/cert.pem",
            f"--ca-cert={tls}/ca.pem"]
    assert not any("ptcp" in a or "tcp:" in a for a in nb.command + sb.command)
    assert ovn.nb_connection(ctx) == f"unix:{ctx.paths.run}/ovn/ovnnb_db.sock"
    controller, compute = site.hosts
    assert ovn.sb_connection(ctx, controller) == f"unix:{ctx.paths.run}/ovn/ovnsb_db.sock"
    assert ovn.sb_connection(ctx, compute) == f"ssl:198.18.20.10:{16642 + offset}"
    listener = next(s.action for s in _steps(ctx) if s.id == "ovn/sb-connection")
    assert isinstance(listener, RunOnce)
    assert listener.argv[-3:] == ("set-connection", "role=ovn-controller",
                                  f"pssl:{16642 + offset}:198.18.20.10")
    assert ctx.ports.all_listening()["ovn-sb"] == 16642 + offset < 32768


def test_each_host_gets_its_own_certificate_root_only_and_restarts_on_a_new_one(
        make_service_context: ContextFactory) -> None:
    internal = InternalTls("CA", {"ctl1": HostCertificate("C-ctl1", "K-ctl1"),
                                  "cmp1": HostCertificate("C-cmp1", "K-cmp1")})
    ctx = dataclasses.replace(make_service_context(site_of(1)), internal_tls=internal)
    steps = {s.id: s for s in _steps(ctx)}
    tls = ctx.paths.site / "etc" / "infra" / "ovn" / "tls"
    for host, prefix in (("ctl1", "ovn/"), ("cmp1", "ovn/cmp1/")):
        written = {s.action.path.name: s.action for s in steps.values()  # type: ignore[attr-defined]
                   if s.host == host and s.id.startswith(f"{prefix}tls:")}
        assert {n: (a.content, a.mode, a.owner) for n, a in written.items()} == {
            "cert.pem": (f"C-{host}", 0o600, "root"), "key.pem": (f"K-{host}", 0o600, "root"),
            "ca.pem": ("CA", 0o600, "root")}
        assert all(a.path.parent == tls for a in written.values())
    compute = next(p for p in [ovn.controller_program(ctx, site_of(1).hosts[1])])
    assert f"--private-key={tls}/key.pem" in compute.command
    assert not any(a.startswith("--private-key") for a in
                   ovn.controller_program(ctx, site_of(1).hosts[0]).command)
    renewed = dataclasses.replace(ctx, internal_tls=InternalTls("CA", {
        "ctl1": HostCertificate("C-ctl1", "K-ctl1"), "cmp1": HostCertificate("C2", "K2")}))
    before, after = ({s.id: s.action for s in _steps(c)} for c in (ctx, renewed))
    changed = sorted(i for i in before if isinstance(before[i], StartProgram)
                     and before[i] != after[i])
    assert changed == ["ovn/cmp1/start:ovn-controller"]


def test_databases_are_created_once_from_the_packaged_schemas(
        make_service_context: ContextFactory) -> None:
    ctx = make_service_context()
    steps = {s.id: s.action for s in _steps(ctx)}
    ovs_db, ovn_dbs = steps["ovs/create-db"], steps["ovn/create-dbs"]
    assert isinstance(ovs_db, RunOnce) and isinstance(ovn_dbs, RunOnce)
    script = ovs_db.argv[2]
    assert script.startswith(f"test -e {ctx.paths.data}/openvswitch/conf.db || ")
    assert "/usr/share/openvswitch/vswitch.ovsschema" in script
    assert '"op": "insert", "table": "Open_vSwitch"' in script  # its root row
    for schema in ("/usr/share/ovn/ovn-nb.ovsschema", "/usr/share/ovn/ovn-sb.ovsschema"):
        assert schema in ovn_dbs.argv[2]


def test_bridges_use_the_userspace_datapath(make_service_context: ContextFactory) -> None:
    ctx = make_service_context()
    action = next(s.action for s in _steps(ctx) if s.id == "ovs/bridges")
    assert isinstance(action, EnsureBridges)
    assert action.db == f"unix:{ctx.paths.run}/openvswitch/db.sock"
    assert dict(action.bridges) == {
        "br-int": (("datapath_type", "netdev"), ("fail_mode", "secure")),
        "br-ex": (("datapath_type", "netdev"),)}


def test_chassis_settings_of_the_all_in_one(make_service_context: ContextFactory) -> None:
    ctx = make_service_context()
    action = next(s.action for s in _steps(ctx) if s.id == "ovn/chassis")
    assert isinstance(action, EnsureExternalIds)
    assert dict(action.ids) == {
        "hostname": "aio", "system-id": "aio", "ovn-bridge": "br-int",
        "ovn-bridge-datapath-type": "netdev", "ovn-bridge-mappings": "public:br-ex",
        "ovn-cms-options": "enable-chassis-as-gw", "ovn-encap-ip": "127.0.0.1",
        "ovn-encap-type": "geneve", "ovn-remote": f"unix:{ctx.paths.run}/ovn/ovnsb_db.sock"}


def test_one_controller_and_two_computes(make_service_context: ContextFactory) -> None:
    ctx = make_service_context(site_of(2))
    steps = _steps(ctx)
    assert len({s.id for s in steps}) == len(steps)
    assert _programs_by_host(steps) == {
        "ctl1": ["ovsdb-server", "ovs-vswitchd", "ovn-nb-db", "ovn-sb-db", "ovn-northd",
                 "ovn-controller"],
        "cmp1": ["ovsdb-server", "ovs-vswitchd", "ovn-controller"],
        "cmp2": ["ovsdb-server", "ovs-vswitchd", "ovn-controller"]}
    # Central steps only on the controller; computes install their packages.
    assert {s.host for s in steps if s.id == "ovn/create-dbs"} == {"ctl1"}
    installs = {s.id: s.action.packages for s in steps  # type: ignore[attr-defined]
                if isinstance(s.action, InstallPackages)}
    assert installs == {"ovs/cmp1/packages": ("openvswitch-switch", "nftables"),
                        "ovs/cmp2/packages": ("openvswitch-switch", "nftables"),
                        "ovn/cmp1/packages": ("ovn-host",), "ovn/cmp2/packages": ("ovn-host",)}
    # The computes' share of each module runs on both at once, after the controller's.
    groups = [{s.host for s in group} for group in batches(steps) if len(group) > 1]
    assert groups == [{"cmp1", "cmp2"}, {"cmp1", "cmp2"}]
    assert [s.fanout for s in steps if s.host == "cmp1"] == \
        ["ovs-chassis"] * 11 + ["ovn-chassis"] * 9  # its TLS files among them


def test_each_chassis_names_itself_and_reaches_the_controller(
        make_service_context: ContextFactory) -> None:
    ctx = make_service_context(site_of(2))
    ids = {s.host: dict(s.action.ids) for s in _steps(ctx)  # type: ignore[attr-defined]
           if isinstance(s.action, EnsureExternalIds)}
    assert set(ids) == {"ctl1", "cmp1", "cmp2"}
    for host, address in (("ctl1", "198.18.20.10"), ("cmp1", "198.18.20.11"),
                          ("cmp2", "198.18.20.12")):
        assert ids[host]["system-id"] == ids[host]["hostname"] == host
        assert ids[host]["ovn-encap-ip"] == address
        assert ids[host]["ovn-remote"] == ("ssl:198.18.20.10:16642" if host != "ctl1" else
                                           f"unix:{ctx.paths.run}/ovn/ovnsb_db.sock")
    # Router gateways only on the network host.
    assert [h for h, i in ids.items() if i["ovn-cms-options"]] == ["ctl1"]


def test_no_loopback_in_a_multi_host_site(make_service_context: ContextFactory) -> None:
    ctx = make_service_context(site_of(2))
    rendered = "\n".join(_program_defs(_steps(ctx)).values())
    rendered += repr([s.action for s in _steps(ctx)]) + repr(ovn.ml2_settings(ctx))
    assert "127.0.0.1" not in rendered and "localhost" not in rendered


def test_a_controller_that_is_no_chassis_runs_only_the_central_part(
        make_service_context: ContextFactory) -> None:
    ctx = make_service_context(site_of(1, (Role.CONTROLLER,)))
    steps = _steps(ctx)
    assert _programs_by_host(steps) == {
        "ctl1": ["ovn-nb-db", "ovn-sb-db", "ovn-northd"],
        "cmp1": ["ovsdb-server", "ovs-vswitchd", "ovn-controller"]}
    assert [p.name for p in ovs.programs(ctx)] == []
    assert not any(s.host == "ctl1" and s.service == "ovs" for s in steps)
    assert [s.id for s in steps if s.host == "cmp1"][0] == "ovs/cmp1/packages"


def test_starts_wait_on_real_probes_where_they_must_run(
        make_service_context: ContextFactory) -> None:
    ctx = make_service_context(site_of(1))
    starts = {s.id: s.action for s in _steps(ctx) if isinstance(s.action, StartProgram)}

    def probes(step_id: str) -> list[CommandProbe]:
        found = starts[step_id].probe_checks
        assert all(isinstance(p, CommandProbe) for p in found)
        return list(found)  # type: ignore[arg-type]

    (db,) = probes("ovs/cmp1/start:ovsdb-server")
    assert (db.argv[-2:], db.expect, db.runs_on) == (
        ("list-dbs", f"unix:{ctx.paths.run}/openvswitch/db.sock"), "Open_vSwitch", "cmp1")
    (nb,) = probes("ovn/start:ovn-nb-db")
    assert (nb.argv[-1], nb.expect, nb.runs_on) == (f"unix:{ctx.paths.run}/ovn/ovnnb_db.sock",
                                                    "OVN_Northbound", "ctl1")
    connected, registered = probes("ovn/cmp1/start:ovn-controller")
    assert (connected.expect, connected.runs_on) == ("connected", "cmp1")
    # The southbound database is asked on the controller, for this chassis by name.
    assert (registered.expect, registered.runs_on) == ("cmp1", "ctl1")
    assert "name=cmp1" in registered.argv


def test_status_checks_per_host(make_service_context: ContextFactory) -> None:
    ctx = make_service_context(site_of(1))
    names = [c.name for m in network.BACK_END for c in m.checks(ctx)]
    assert names == ["ovsdb-server", "ovs-vswitchd", "ovsdb-server/cmp1", "ovs-vswitchd/cmp1",
                     "ovn-nb-db", "ovn-sb-db", "ovn-northd", "ovn-controller",
                     "ovn-controller/cmp1"]
    by_name = {c.name: c.probe for m in network.BACK_END for c in m.checks(ctx)}
    assert by_name["ovn-controller/cmp1"].runs_on == "cmp1"  # type: ignore[attr-defined]


def test_neutron_ml2_ovn_settings(make_service_context: ContextFactory) -> None:
    ctx = make_service_context(site_of(1))
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(oslo.render_ini(ovn.ml2_settings(ctx)))
    assert ini["ml2"]["mechanism_drivers"] == "ovn"
    # two chassis (the controller is the network host): tenant VLANs (ADR 0023)
    assert ini["ml2"]["tenant_network_types"] == "vlan"
    assert ini["ml2_type_vlan"]["network_vlan_ranges"] == "tenant:1000:1999"
    assert "geneve" in ini["ml2"]["type_drivers"].split(",")
    aio = ovn.ml2_settings(make_service_context(default_lab_site()))
    assert aio["ml2"]["tenant_network_types"] == "geneve"  # one chassis: no VLANs
    assert aio["ml2_type_vlan"]["network_vlan_ranges"] == "public"
    assert ini["ml2_type_flat"]["flat_networks"] == "public"  # br-ex's network
    assert ini["ml2_type_geneve"]["max_header_size"] == "38"
    # neutron's server is on the controller: both databases' sockets
    assert ini["ovn"]["ovn_nb_connection"] == f"unix:{ctx.paths.run}/ovn/ovnnb_db.sock"
    assert ini["ovn"]["ovn_sb_connection"] == f"unix:{ctx.paths.run}/ovn/ovnsb_db.sock"
    assert ini["ovn"]["ovn_metadata_enabled"] == "true"  # metadata ports, DHCP without gateway
    assert ovn.neutron_settings(ctx) == {"DEFAULT": {"service_plugins": "ovn-router"}}
    compute = ctx.site.hosts[1]
    files = (ctx.paths.site / "k", ctx.paths.site / "c", ctx.paths.site / "a")
    assert ovn.metadata_agent_settings(ctx, compute, files) == {
        "ovn": {"ovn_sb_connection": "ssl:198.18.20.10:16642",
                "ovn_sb_private_key": f"{ctx.paths.site}/k",
                "ovn_sb_certificate": f"{ctx.paths.site}/c",
                "ovn_sb_ca_cert": f"{ctx.paths.site}/a"},
        "ovs": {"ovsdb_connection": f"unix:{ctx.paths.run}/openvswitch/db.sock"}}
    assert ovn.metadata_agent_settings(ctx, ctx.site.hosts[0], None)["ovn"] == {
        "ovn_sb_connection": f"unix:{ctx.paths.run}/ovn/ovnsb_db.sock"}
    assert ovs.os_vif_settings(ctx) == {
        "os_vif_ovs": {"ovsdb_connection": f"unix:{ctx.paths.run}/openvswitch/db.sock"},
        "neutron": {"ovs_bridge": "br-int"}}


def test_status_names_the_switch_bridges(make_service_context: ContextFactory) -> None:
    from onestack.drivers.probes import CommandProbe

    ctx = make_service_context()
    by_name = {c.name: c.probe for c in ovs.checks(ctx)}
    probe = by_name["ovs-vswitchd"]
    assert isinstance(probe, CommandProbe) and probe.argv[-2:] == ("br-int", "br-ex")
    said = CommandProbe(("sh", "-c", "echo bridges br-int br-ex"), "bridges", label="dp")
    assert said.check() == (True, "dp: bridges br-int br-ex")
    missing = CommandProbe(("sh", "-c", "echo nothing"), "bridges", label="dp")
    assert missing.check()[0] is False


def test_guest_filter_drops_what_guests_send_to_the_host(
        make_service_context: ContextFactory) -> None:
    # issue 21: the host had no input filtering on br-ex: its sshd (0.0.0.0:22) answered
    # guests. Only replies to the host's own connections come back in.
    ctx = make_service_context()
    action = next(s.action for s in _steps(ctx) if s.id == "ovs/guest-filter")
    assert isinstance(action, EnsureGuestFilter) and action.table == "onestack_lab"
    rules = action.ruleset
    assert rules.startswith("table inet onestack_lab {}\ndelete table inet onestack_lab\n")
    assert "type filter hook input priority filter; policy accept;" in rules
    assert 'iifname { "br-int", "br-ex" } ct state established,related accept' in rules
    assert rules.rstrip().splitlines()[-3].strip() == \
        'iifname { "br-int", "br-ex" } counter drop'
    assert "nft delete table inet onestack_lab" in ovs.remove_ports_argv(ctx)[2]


def test_a_chassis_with_a_tunnel_gets_its_endpoint_and_tunnels_from_its_address(
        make_service_context: ContextFactory) -> None:
    # issue 19 (ADR 0023): Geneve on the userspace datapath leaves through br-phy.
    base = site_of(2)
    hosts = [h.model_copy(update={"tunnel": HostTunnel(
        interface="eth1", address=IPv4Interface(f"198.18.51.{10 + i}/24"))})
        for i, h in enumerate(base.hosts)]
    ctx = make_service_context(base.model_copy(update={"hosts": hosts}))
    steps = _steps(ctx)
    endpoints = {s.host: s.action for s in steps if isinstance(s.action, EnsureTunnelEndpoint)}
    assert {h: (a.bridge, a.interface, a.address) for h, a in endpoints.items()} == {
        "ctl1": ("br-phy", "eth1", "198.18.51.10/24"),
        "cmp1": ("br-phy", "eth1", "198.18.51.11/24"),
        "cmp2": ("br-phy", "eth1", "198.18.51.12/24")}
    ids = {s.host: dict(s.action.ids) for s in steps  # type: ignore[attr-defined]
           if isinstance(s.action, EnsureExternalIds)}
    assert {h: i["ovn-encap-ip"] for h, i in ids.items()} == {
        "ctl1": "198.18.51.10", "cmp1": "198.18.51.11", "cmp2": "198.18.51.12"}
    # Tenant networks are VLANs through br-phy between several chassis (ADR 0023).
    assert {i["ovn-bridge-mappings"] for i in ids.values()} == {"public:br-ex,tenant:br-phy"}
    ml2 = ovn.ml2_settings(ctx)
    assert ml2["ml2"]["tenant_network_types"] == "vlan"
    assert ml2["ml2_type_vlan"]["network_vlan_ranges"] == "tenant:1000:1999"
    # The endpoint comes after the switch runs, before ovn-controller tunnels from it.
    order = [s.id for s in steps if s.host == "cmp1"]
    assert order.index("ovs/cmp1/start:ovs-vswitchd") < order.index("ovs/cmp1/tunnel") \
        < order.index("ovn/cmp1/chassis")


def test_the_broker_speaks_tls_only_once_other_hosts_reach_it(
        make_service_context: ContextFactory) -> None:
    # issue 21 (ADR 0025): AMQP from the computes over TLS with the internal CA.
    from onestack.services import glance, nova, rabbitmq
    aio = make_service_context()
    assert "listeners" not in next(iter(rabbitmq._config(aio).values()))
    assert rabbitmq.environment(aio)["RABBITMQ_NODE_IP_ADDRESS"] == "127.0.0.1"
    assert rabbitmq.client_settings(aio) == {}
    internal = InternalTls("CA", {"ctl1": HostCertificate("C-ctl1", "K-ctl1")})
    ctx = dataclasses.replace(make_service_context(site_of(1)), internal_tls=internal)
    conf = next(iter(rabbitmq._config(ctx).values()))
    folder = ctx.paths.site / "etc" / "infra" / "rabbitmq" / "tls"
    assert "listeners.tcp = none\n" in conf
    assert "listeners.ssl.default = 198.18.20.10:5682\n" in conf
    assert f"ssl_options.keyfile = {folder}/key.pem\n" in conf
    env = rabbitmq.environment(ctx)
    assert "RABBITMQ_NODE_PORT" not in env and "RABBITMQ_NODE_IP_ADDRESS" not in env
    written = {s.id: s.action for s in rabbitmq.steps(ctx) if s.id.startswith("rabbitmq/tls:")}
    assert {i: (a.content, a.mode, a.owner) for i, a in written.items()} == {  # type: ignore[attr-defined]
        "rabbitmq/tls:cert.pem": ("C-ctl1", 0o600, "rabbitmq"),
        "rabbitmq/tls:key.pem": ("K-ctl1", 0o600, "rabbitmq"),
        "rabbitmq/tls:ca.pem": ("CA", 0o600, "rabbitmq")}
    clients = [glance._conf(ctx), nova._conf(ctx), nova.compute_config(ctx, ctx.site.hosts[1])[1]]
    for text in clients:
        ini = configparser.ConfigParser(interpolation=None)
        ini.read_string(text)
        section = ini["oslo_messaging_rabbit"]
        assert (section["ssl"], section["ssl_ca_file"]) == (
            "true", f"{ctx.paths.site}/tls/internal-ca.pem")
