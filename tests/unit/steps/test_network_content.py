"""Day-1 network content (steps/network_content.py) against a fake neutron: facts, pure
decisions, creation of only what is missing, refusal of another shape, and the host's
gateway address on br-ex through a fake host."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from onestack.core.progress import SilentProgress
from onestack.errors import ContentConflictError, HostPrerequisiteError
from onestack.model.paths import SitePaths
from onestack.steps.content_actions import CloudLogin
from onestack.steps.context import HostContext
from onestack.steps.network_content import (
    EnsureBridgeAddress,
    EnsureNetwork,
    EnsureRouter,
    EnsureSubnet,
)

LOGIN = CloudLogin("http://198.18.0.1:5000/v3", "sekrit-pw", "RegionOne")
ADMIN = "p-admin"
PUBLIC_SHAPE = (("router:external", True), ("shared", False),
                ("provider:network_type", "flat"), ("provider:physical_network", "public"))
PUBLIC = EnsureNetwork("public", PUBLIC_SHAPE, LOGIN)
PRIVATE = EnsureNetwork("private", (("router:external", False), ("shared", False)), LOGIN)
PUBLIC_SUBNET = EnsureSubnet("public-subnet", "public", (
    ("ip_version", 4), ("cidr", "198.19.0.0/24"), ("gateway_ip", "198.19.0.1"),
    ("enable_dhcp", False)), ("198.19.0.10", "198.19.0.250"), (), LOGIN)
PRIVATE_SUBNET = EnsureSubnet("private-subnet", "private", (
    ("ip_version", 4), ("cidr", "10.0.0.0/24"), ("gateway_ip", "10.0.0.1"),
    ("enable_dhcp", True)), None, (), LOGIN)
ROUTER = EnsureRouter("router1", "public", ("private-subnet",), LOGIN)
IN_ORDER = (PUBLIC, PUBLIC_SUBNET, PRIVATE, PRIVATE_SUBNET, ROUTER)


class FakeNeutron:
    """The part of openstacksdk's ``conn.network`` the actions use, in memory; every
    creation is recorded."""

    def __init__(self) -> None:
        self.objects: dict[str, list[Any]] = {"network": [], "subnet": [], "router": [],
                                              "port": []}
        self.created: list[str] = []
        self._ids = itertools.count(1)

    def _new(self, kind: str, **attrs: Any) -> Any:
        obj = SimpleNamespace(id=f"{kind}-{next(self._ids)}", project_id=ADMIN, **attrs)
        self.objects[kind].append(obj)
        return obj

    def _named(self, kind: str, name: str, project_id: str) -> list[Any]:
        return [o for o in self.objects[kind] if o.name == name and o.project_id == project_id]

    def add_network(self, name: str, **attrs: Any) -> Any:
        shape = {"is_router_external": False, "is_shared": False,
                 "provider_network_type": "geneve", "provider_physical_network": None}
        return self._new("network", name=name, **{**shape, **attrs})

    def add_subnet(self, name: str, network_id: str, **attrs: Any) -> Any:
        return self._new("subnet", name=name, network_id=network_id, **attrs)

    def networks(self, name: str, project_id: str) -> list[Any]:
        return self._named("network", name, project_id)

    def subnets(self, name: str, project_id: str) -> list[Any]:
        return self._named("subnet", name, project_id)

    def routers(self, name: str, project_id: str) -> list[Any]:
        return self._named("router", name, project_id)

    def ports(self, device_id: str) -> list[Any]:
        return [p for p in self.objects["port"] if p.device_id == device_id]

    def create_network(self, name: str, **attrs: Any) -> Any:
        self.created.append(f"network {name}")
        return self.add_network(name, **attrs)

    def create_subnet(self, name: str, network_id: str, **attrs: Any) -> Any:
        self.created.append(f"subnet {name}")
        return self.add_subnet(name, network_id, **attrs)

    def create_router(self, name: str, external_gateway_info: dict[str, str]) -> Any:
        self.created.append(f"router {name}")
        return self._new("router", name=name, external_gateway_info=external_gateway_info)

    def add_interface_to_router(self, router: Any, subnet_id: str) -> None:
        self.created.append(f"interface {router.name} {subnet_id}")
        self._new("port", name="", device_id=router.id, device_owner="network:router_interface",
                  fixed_ips=[{"subnet_id": subnet_id, "ip_address": "10.0.0.1"}])


@pytest.fixture
def neutron(monkeypatch: pytest.MonkeyPatch) -> FakeNeutron:
    from onestack.drivers import openstack

    fake = FakeNeutron()
    cloud = SimpleNamespace(network=fake, current_project_id=ADMIN)
    monkeypatch.setattr(openstack, "connect", lambda *args, **kwargs: cloud)
    return fake


def _ctx(tmp_path: Path, host: Any = None, deployed: bool = True) -> HostContext:
    paths = SitePaths(tmp_path, "lab")
    if deployed:  # clouds.yaml is a deploy's last step
        paths.clouds_yaml.parent.mkdir(parents=True, exist_ok=True)
        paths.clouds_yaml.write_text("clouds: {}\n")
    return HostContext(host, paths, None, SilentProgress())  # type: ignore[arg-type]


WANTED_PUBLIC = dict(PUBLIC_SHAPE)
WANTED_PRIVATE_SUBNET = {"network": "private", "ip_version": 4, "cidr": "10.0.0.0/24",
                         "gateway_ip": "10.0.0.1", "enable_dhcp": True}
NEEDED: list[tuple[str, Any, Any, bool]] = [
    ("network: no cloud to ask", PUBLIC, None, True),
    ("network: missing", PUBLIC, [], True),
    ("network: as wanted", PUBLIC, [WANTED_PUBLIC], False),
    ("network: not external", PUBLIC, [{**WANTED_PUBLIC, "router:external": False}], True),
    ("network: two of that name", PUBLIC, [WANTED_PUBLIC, WANTED_PUBLIC], True),
    ("subnet: missing", PRIVATE_SUBNET, [], True),
    ("subnet: as wanted", PRIVATE_SUBNET, [WANTED_PRIVATE_SUBNET], False),
    ("subnet: on another network", PRIVATE_SUBNET,
     [{**WANTED_PRIVATE_SUBNET, "network": "network-9"}], True),
    ("router: missing", ROUTER, [], True),
    ("router: as wanted", ROUTER, [{"external_gateway": "public",
                                    "interfaces": ["private-subnet"]}], False),
    ("router: no interface yet", ROUTER, [{"external_gateway": "public", "interfaces": []}],
     True),
    ("router: no gateway", ROUTER, [{"external_gateway": None,
                                     "interfaces": ["private-subnet"]}], True),
]


@pytest.mark.parametrize(("action", "fact", "needed"), [c[1:] for c in NEEDED],
                         ids=[c[0] for c in NEEDED])
def test_needed(action: Any, fact: Any, needed: bool) -> None:
    assert action.needed(fact, None) is needed
    assert action.needed(fact, "recorded") is needed  # the cloud decides, not the journal


def test_no_cloud_is_asked_before_the_site_was_deployed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from onestack.drivers import openstack

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("connected before any deploy")

    monkeypatch.setattr(openstack, "connect", refuse)
    assert all(a.probe(_ctx(tmp_path, deployed=False)) is None for a in IN_ORDER)


def test_a_cloud_that_does_not_answer_is_no_fact(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from onestack.drivers import openstack

    def down(*args: Any, **kwargs: Any) -> Any:
        raise openstack.CloudApiError("connect to keystone", "ConnectFailure: refused")

    monkeypatch.setattr(openstack, "connect", down)
    assert PUBLIC.probe(_ctx(tmp_path)) is None and PUBLIC.needed(None, None)


def test_an_empty_cloud_gets_everything_once_then_nothing(tmp_path: Path,
                                                          neutron: FakeNeutron) -> None:
    ctx = _ctx(tmp_path)
    assert [a.needed(a.probe(ctx), None) for a in IN_ORDER] == [True] * 5
    for action in IN_ORDER:
        action.apply(ctx)
    assert neutron.created == ["network public", "subnet public-subnet", "network private",
                               "subnet private-subnet", "router router1",
                               "interface router1 subnet-4"]
    public = neutron.objects["network"][0]
    assert (public.is_router_external, public.is_shared, public.provider_network_type,
            public.provider_physical_network) == (True, False, "flat", "public")
    floating = neutron.objects["subnet"][0]
    assert floating.allocation_pools == [{"start": "198.19.0.10", "end": "198.19.0.250"}]
    assert (floating.is_dhcp_enabled, floating.network_id) == (False, public.id)
    assert neutron.objects["subnet"][1].dns_nameservers == []
    assert neutron.objects["router"][0].external_gateway_info == {"network_id": public.id}
    assert [a.needed(a.probe(ctx), None) for a in IN_ORDER] == [False] * 5
    for action in IN_ORDER:  # idempotent: a second run creates nothing
        action.apply(ctx)
    assert len(neutron.created) == 6


def test_an_operators_public_network_of_another_shape_is_refused(
        tmp_path: Path, neutron: FakeNeutron) -> None:
    neutron.add_network("public", is_shared=True)  # a geneve tenant network, shared
    ctx = _ctx(tmp_path)
    assert PUBLIC.needed(PUBLIC.probe(ctx), None)
    with pytest.raises(ContentConflictError) as err:
        PUBLIC.apply(ctx)
    message = str(err.value)
    assert message.startswith("network public exists, but its router:external is False "
                              "where Day-1 content has True")
    assert "provider:network_type is 'geneve'" in message and "shared is True" in message
    assert "leaves it as it is" in message and err.value.hint
    assert neutron.created == []


def test_another_projects_network_of_that_name_is_not_ours(tmp_path: Path,
                                                            neutron: FakeNeutron) -> None:
    neutron.add_network("private").project_id = "p-demo"
    ctx = _ctx(tmp_path)
    assert PRIVATE.probe(ctx) == []
    PRIVATE.apply(ctx)
    assert neutron.created == ["network private"]


def test_two_networks_of_that_name_are_ambiguous(tmp_path: Path, neutron: FakeNeutron) -> None:
    neutron.add_network("private")
    neutron.add_network("private")
    with pytest.raises(ContentConflictError, match="2 networks have that name"):
        PRIVATE.apply(_ctx(tmp_path))


def test_a_subnet_of_another_range_is_refused(tmp_path: Path, neutron: FakeNeutron) -> None:
    net = neutron.add_network("private")
    neutron.add_subnet("private-subnet", net.id, ip_version=4, cidr="10.9.0.0/24",
                       gateway_ip="10.9.0.1", is_dhcp_enabled=True)
    ctx = _ctx(tmp_path)
    assert PRIVATE_SUBNET.probe(ctx) == [{**WANTED_PRIVATE_SUBNET, "cidr": "10.9.0.0/24",
                                          "gateway_ip": "10.9.0.1"}]
    with pytest.raises(ContentConflictError, match="its cidr is '10.9.0.0/24' where Day-1 "
                       "content has '10.0.0.0/24'"):
        PRIVATE_SUBNET.apply(ctx)
    assert neutron.created == []


def test_a_router_with_its_gateway_elsewhere_is_refused(tmp_path: Path,
                                                         neutron: FakeNeutron) -> None:
    neutron.add_network("public", is_router_external=True, provider_network_type="flat",
                        provider_physical_network="public")
    other = neutron.add_network("corporate", is_router_external=True)
    neutron._new("router", name="router1", external_gateway_info={"network_id": other.id})
    with pytest.raises(ContentConflictError, match="its external_gateway is 'network-2'"):
        ROUTER.apply(_ctx(tmp_path))
    assert neutron.created == []


def test_a_router_missing_only_its_interface_gets_only_that(tmp_path: Path,
                                                             neutron: FakeNeutron) -> None:
    public = neutron.add_network("public", is_router_external=True)
    private = neutron.add_network("private")
    subnet = neutron.add_subnet("private-subnet", private.id)
    neutron._new("router", name="router1", external_gateway_info={"network_id": public.id})
    ctx = _ctx(tmp_path)
    assert ROUTER.probe(ctx) == [{"external_gateway": "public", "interfaces": []}]
    ROUTER.apply(ctx)
    assert neutron.created == [f"interface router1 {subnet.id}"]
    assert not ROUTER.needed(ROUTER.probe(ctx), None)


def test_fingerprints_follow_the_inputs_and_hide_the_password() -> None:
    assert PUBLIC.fingerprint() != PRIVATE.fingerprint()
    assert PUBLIC.fingerprint() == EnsureNetwork("public", PUBLIC_SHAPE, LOGIN).fingerprint()
    assert all("sekrit-pw" not in repr(a) for a in IN_ORDER)


# --- the host's gateway address on br-ex ---------------------------------------------

BRIDGE = EnsureBridgeAddress("br-ex", "198.19.0.1/24", "unix:/s/run/openvswitch/db.sock")


def _link(name: str, up: bool, *addresses: str) -> dict[str, Any]:
    return {"ifname": name, "flags": ["BROADCAST", "MULTICAST", *(["UP"] if up else [])],
            "addr_info": [{"family": "inet", "local": a.split("/")[0],
                           "prefixlen": int(a.split("/")[1])} for a in addresses]}


class IpHost:
    """Answers ``ip -j`` and ``ovs-vsctl list-ports``; records every command."""

    name = "aio"

    def __init__(self, bridge: list[dict[str, Any]], ports: str = "",
                 in_range: list[dict[str, Any]] | None = None) -> None:
        self.bridge, self.ports, self.in_range = bridge, ports, in_range or []
        self.commands: list[list[str]] = []

    def run(self, argv: Any, **kwargs: Any) -> str:
        self.commands.append(list(argv))
        if argv[0] == "ovs-vsctl":
            return self.ports
        if argv[:3] == ("ip", "-j", "-4"):
            return json.dumps(self.in_range)
        if argv[:3] == ("ip", "-j", "addr"):
            return json.dumps(self.bridge) if self.bridge else \
                'Device "br-ex" does not exist.\n'
        return ""


BRIDGE_CASES: list[tuple[str, list[dict[str, Any]], Any, bool]] = [
    ("no bridge yet", [], None, True),
    ("down, no address", [_link("br-ex", False)], {"up": False, "addresses": []}, True),
    ("up, another address", [_link("br-ex", True, "198.19.0.2/24")],
     {"up": True, "addresses": ["198.19.0.2/24"]}, True),
    ("down with the address", [_link("br-ex", False, "198.19.0.1/24")],
     {"up": False, "addresses": ["198.19.0.1/24"]}, True),
    ("up with the address", [_link("br-ex", True, "198.19.0.1/24")],
     {"up": True, "addresses": ["198.19.0.1/24"]}, False),
]


@pytest.mark.parametrize(("answer", "fact", "needed"), [c[1:] for c in BRIDGE_CASES],
                         ids=[c[0] for c in BRIDGE_CASES])
def test_bridge_address_fact_and_decision(tmp_path: Path, answer: list[dict[str, Any]],
                                          fact: Any, needed: bool) -> None:
    host = IpHost(answer)
    assert BRIDGE.probe(_ctx(tmp_path, host)) == fact
    assert host.commands == [["ip", "-j", "addr", "show", "dev", "br-ex"]]
    assert BRIDGE.needed(fact, None) is needed


def test_bridge_address_is_replaced_and_the_bridge_set_up(tmp_path: Path) -> None:
    host = IpHost([_link("br-ex", False)], ports="patch-provnet-1-to-br-int\n",
                  in_range=[_link("br-ex", False)])
    BRIDGE.apply(_ctx(tmp_path, host))
    assert host.commands[-2:] == [["ip", "addr", "replace", "198.19.0.1/24", "dev", "br-ex"],
                                  ["ip", "link", "set", "br-ex", "up"]]
    assert ["ip", "-j", "-4", "addr", "show", "to", "198.19.0.0/24"] in host.commands


def test_a_bridge_with_an_uplink_gets_no_test_address(tmp_path: Path) -> None:
    host = IpHost([_link("br-ex", True)], ports="eth1\npatch-provnet-1-to-br-int\n")
    with pytest.raises(HostPrerequisiteError, match=r"br-ex has an uplink \(eth1\)"):
        BRIDGE.apply(_ctx(tmp_path, host))
    assert not any(c[:2] == ["ip", "addr"] for c in host.commands)


def test_the_range_held_elsewhere_is_refused(tmp_path: Path) -> None:
    host = IpHost([_link("br-ex", True)], in_range=[_link("virbr7", True, "198.19.0.7/24")])
    with pytest.raises(HostPrerequisiteError, match="virbr7 already holds an address in "
                       "198.19.0.0/24"):
        BRIDGE.apply(_ctx(tmp_path, host))
    assert not any(c[:2] == ["ip", "addr"] for c in host.commands)
