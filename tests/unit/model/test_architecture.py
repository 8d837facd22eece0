"""Reference architectures as data: rules, placement and single points of failure."""

from __future__ import annotations

from ipaddress import IPv4Interface

import pytest

from onestack.catalog.architectures import architecture_documents
from onestack.drivers.site_file import shipped_architectures
from onestack.errors import CatalogError
from onestack.model.architecture import (
    Architecture,
    Redundancy,
    Severity,
    breaches,
    parse_architecture,
    placement,
    report,
    single_points_of_failure,
)
from onestack.model.site import (
    ComputeDriver,
    ConnectionKind,
    Host,
    HostTunnel,
    NetworkBackend,
    Role,
    Site,
    default_lab_site,
)
from onestack.services import (
    haproxy,
    keystone,
    libvirt,
    mariadb,
    memcached,
    neutron,
    nova,
    ovn,
    ovs,
    rabbitmq,
)

C, K, N = Role.CONTROLLER, Role.COMPUTE, Role.NETWORK


def _host(name: str, index: int, roles: list[Role], domain: str | None) -> Host:
    return Host(name=name, address=f"198.18.60.{index}", connection=ConnectionKind.SSH,
                roles=roles, failure_domain=domain,
                tunnel=HostTunnel(interface="eth1",
                                  address=IPv4Interface(f"198.18.61.{index}/24")))


def _ha(hosts: list[tuple[str, list[Role], str | None]]) -> Site:
    return Site(name="hax", release="2026.1", architecture="ha",
                hosts=[_host(n, i, r, d) for i, (n, r, d) in enumerate(hosts, 11)])


GOOD_HA = [("ctl1", [C, N], "rack1"), ("ctl2", [C, N], "rack2"), ("ctl3", [C], "rack3"),
           ("cmp1", [K], "rack1"), ("cmp2", [K], "rack2")]


@pytest.fixture(scope="module")
def catalog() -> dict[str, Architecture]:
    return shipped_architectures()


def test_every_shipped_architecture_parses_under_its_file_name(
        catalog: dict[str, Architecture]) -> None:
    assert {"aio", "ha"} <= set(catalog)
    assert set(catalog) == set(architecture_documents())
    for name, architecture in catalog.items():
        assert architecture.name == name
        names = [c.name for c in architecture.components]
        assert len(names) == len(set(names))
    assert catalog["aio"].deployable and not catalog["ha"].deployable


def test_both_architectures_name_the_same_components(catalog: dict[str, Architecture]) -> None:
    # ha is aio spread and clustered: nothing aio runs may be forgotten in ha.
    assert [c.name for c in catalog["aio"].components] == \
        [c.name for c in catalog["ha"].components]


def test_an_invalid_architecture_is_a_catalog_error_naming_file_and_field() -> None:
    with pytest.raises(CatalogError, match=r"architectures/x.yaml.*components.0.redundancy"):
        parse_architecture({"name": "x", "summary": "s", "deployable": False, "roles": {},
                            "components": [{"name": "db", "layer": "database", "on": ["controller"],
                                            "placement": "every", "redundancy": "paxos",
                                            "severity": "high", "loss": "all"}]},
                           "architectures/x.yaml")


@pytest.mark.parametrize(("redundancy", "instances", "left", "serves"), [
    (Redundancy.NONE, 1, 0, False), (Redundancy.NONE, 2, 1, False),
    (Redundancy.ACTIVE, 2, 1, True), (Redundancy.ACTIVE, 1, 0, False),
    (Redundancy.STANDBY, 2, 1, True), (Redundancy.STANDBY, 2, 0, False),
    (Redundancy.QUORUM, 3, 2, True), (Redundancy.QUORUM, 3, 1, False),
    (Redundancy.QUORUM, 2, 1, False), (Redundancy.QUORUM, 5, 3, True),
    (Redundancy.QUORUM, 1, 0, False),
])
def test_what_each_redundancy_survives(redundancy: Redundancy, instances: int, left: int,
                                       serves: bool) -> None:
    assert redundancy.survives(instances, left) is serves


def test_the_all_in_one_lists_every_control_plane_component_as_a_spof(
        catalog: dict[str, Architecture]) -> None:
    site = default_lab_site()
    points = {p.what: p for p in single_points_of_failure(site, catalog["aio"])}
    assert not breaches(site, catalog["aio"])
    for name in ("vip", "haproxy", "mariadb", "keystone-api"):
        assert points[name].severity == Severity.CRITICAL and points[name].hosts == ("aio",)
    for name in ("rabbitmq", "nova-api", "neutron-server", "ovn-southbound-db",
                 "gateway-chassis", "nova-compute", "libvirtd"):
        assert name in points
    severities = [p.severity for p in single_points_of_failure(site, catalog["aio"])]
    assert severities[0] == Severity.CRITICAL and severities[-1] == Severity.LOW
    assert placement(site, catalog["aio"])["aio"][:3] == ["vip", "haproxy", "mariadb"]


def test_a_compliant_ha_site_has_no_spof_and_runs_the_control_plane_on_all_three(
        catalog: dict[str, Architecture]) -> None:
    site = _ha(GOOD_HA)
    found = report(site, catalog["ha"])
    assert not found.breaches and not found.single_points
    for controller in ("ctl1", "ctl2", "ctl3"):
        assert {"mariadb", "rabbitmq", "ovn-southbound-db", "vip", "nova-api"} <= \
            set(found.placement[controller])
    assert "gateway-chassis" in found.placement["ctl2"]
    assert "gateway-chassis" not in found.placement["ctl3"]
    assert set(found.placement["cmp1"]) == {"ovn-controller", "ovn-metadata-agent",
                                            "nova-compute", "libvirtd"}


@pytest.mark.parametrize(("hosts", "rule", "named"), [
    (GOOD_HA[:1] + GOOD_HA[2:], "controller count", "ctl1, ctl3"),  # two controllers
    ([*GOOD_HA, ("ctl4", [C], "rack4")], "controller count", "ctl4"),  # four
    ([("ctl1", [C, N], "rack1"), ("ctl2", [C, N], "rack1"), *GOOD_HA[2:]],
     "controller failure domains", "ctl1, ctl2 share rack1"),
    (GOOD_HA[:4], "compute count", "cmp1"),  # one compute
    (GOOD_HA, "", None),  # the good site: nothing broken
    ([("ctl1", [C], "rack1"), *GOOD_HA[1:]], "network count", "ctl2"),  # one network host
    ([("ctl1", [C, N], None), *GOOD_HA[1:]], "controller failure domains",
     "give ctl1 a failure_domain"),
    ([*GOOD_HA[:4], ("cmp2", [K], "rack1")], "compute failure domains", "cmp1, cmp2 are in 1"),
])
def test_each_broken_ha_rule_is_named_with_its_hosts(
        catalog: dict[str, Architecture], hosts: list[tuple[str, list[Role], str | None]],
        rule: str, named: str | None) -> None:
    found = breaches(_ha(hosts), catalog["ha"])
    if named is None:
        assert not found
        return
    named_rule = [b for b in found if b.rule == rule]
    assert named_rule and named in named_rule[0].problem, found


def test_losing_a_failure_domain_as_a_whole_is_reported(
        catalog: dict[str, Architecture]) -> None:
    # aio rules, but two computes in one rack: that rack takes every compute with it.
    site = Site(name="m", release="2026.1", hosts=[
        Host(name="ctl1", roles=[C, N], failure_domain="room"),
        _host("lab1", 11, [K], "rack1"), _host("lab2", 12, [K], "rack1")])
    points = {p.what: p for p in single_points_of_failure(site, catalog["aio"])}
    rack = points["failure domain rack1"]
    assert rack.hosts == ("lab1", "lab2") and rack.severity == Severity.HIGH
    assert rack.takes_down == "nova-compute, libvirtd"  # ctl1 is a chassis too
    assert "nova-compute" not in points  # one compute of two lost alone takes nothing
    assert points["failure domain room"].severity == Severity.CRITICAL


def test_components_of_other_back_ends_are_left_out(catalog: dict[str, Architecture]) -> None:
    site = Site(name="f", release="2026.1", compute_driver=ComputeDriver.FAKE,
                network=NetworkBackend.NONE, hosts=[Host(name="aio")])
    names = placement(site, catalog["aio"])["aio"]
    assert "libvirtd" not in names and "ovn-northd" not in names
    assert "nova-compute" in names


def test_a_site_without_a_network_host_reports_the_gateway_absent(
        catalog: dict[str, Architecture]) -> None:
    site = Site(name="m", release="2026.1", hosts=[Host(name="ctl1", roles=[C, K])])
    points = {p.what: p for p in single_points_of_failure(site, catalog["aio"])}
    assert points["gateway-chassis"].kind == "absent" and not points["gateway-chassis"].hosts


@pytest.mark.parametrize("site", [
    default_lab_site(),
    Site(name="m", release="2026.1", hosts=[
        Host(name="ctl1", roles=[C, N]), _host("lab1", 11, [K], None),
        _host("lab2", 12, [K, N], None)]),
], ids=["one host", "controller and two computes"])
def test_aio_placement_is_where_the_services_deploy(catalog: dict[str, Architecture],
                                                    site: Site) -> None:
    """The catalog's data and the services' code may not drift apart: each component's
    hosts are the hosts its service module deploys it on."""
    where = {c.name: [h.name for h in c.hosts(site)] for c in catalog["aio"].components}
    deployed = {
        "haproxy": haproxy.hosts(site), "mariadb": mariadb.hosts(site),
        "rabbitmq": rabbitmq.hosts(site), "memcached": memcached.hosts(site),
        "keystone-api": keystone.hosts(site), "neutron-server": neutron.hosts(site),
        "ovn-northd": ovn.hosts(site)[:1], "ovn-controller": ovs.hosts(site),
        "ovn-metadata-agent": neutron.agent_hosts(site), "libvirtd": libvirt.hosts(site),
        "nova-compute": site.computes,
        "gateway-chassis": [h for h in ovs.hosts(site) if Role.NETWORK in h.roles],
    }
    for name, hosts in deployed.items():
        assert where[name] == [h.name for h in hosts], name


def test_the_control_plane_services_go_where_the_architecture_places_them() -> None:
    """issue 22: placement is read from the architecture file, not pinned to the first
    controller in the services' code: ``ha`` puts every control-plane service on all
    three controllers, in the site file's order, and nova's computes after them."""
    site = _ha(GOOD_HA)
    controllers = ["ctl1", "ctl2", "ctl3"]
    for module in (haproxy, mariadb, rabbitmq, memcached, keystone, neutron):
        assert [h.name for h in module.hosts(site)] == controllers, module.__name__
    assert [h.name for h in nova.hosts(site)] == [*controllers, "cmp1", "cmp2"]
    assert [h.name for h in ovn.hosts(site)] == [*controllers, "cmp1", "cmp2"]
    aio = site.model_copy(update={"architecture": "aio"})
    assert [h.name for h in keystone.hosts(aio)] == ["ctl1"]
