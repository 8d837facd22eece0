"""Day-1 network content of an OVN site: the provider network of floating IPs with its
subnet, a default tenant network with its subnet and a router between them (through
neutron's API, in the admin project), and the host's gateway address on the provider
network's bridge (through the host).

As for flavors (``content_actions``), each action probes what exists (``None`` before
the site was ever deployed), is needed while something is missing, and creates only
what is missing. An object of the same name with another shape is refused
(:class:`ContentConflictError` naming each difference): onestack never changes an
operator's object. Shapes use the field names ``openstack network|subnet show`` shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_interface
from typing import Any

from onestack.core.digest import digest
from onestack.drivers import ovsdb
from onestack.errors import ContentConflictError, HostPrerequisiteError
from onestack.steps.content_actions import CloudLogin, cloud_for_facts
from onestack.steps.context import HostContext
from onestack.steps.ovs_actions import link_state, others_in_network

Shape = tuple[tuple[str, Any], ...]  # (field as `openstack ... show` names it, value)

# Field shown -> openstacksdk attribute, for what a shape may hold.
NETWORK_FIELDS = {"router:external": "is_router_external", "shared": "is_shared",
                  "provider:network_type": "provider_network_type",
                  "provider:physical_network": "provider_physical_network"}
SUBNET_FIELDS = {"ip_version": "ip_version", "cidr": "cidr", "gateway_ip": "gateway_ip",
                 "enable_dhcp": "is_dhcp_enabled"}
ROUTER_INTERFACE_OWNERS = ("network:router_interface", "network:ha_router_replicated_interface",
                           "network:router_interface_distributed")


def _read(ctx: HostContext, login: CloudLogin, read: Callable[[Any], Any]) -> Any:
    """A probe's fact: what ``read`` finds in the cloud, or None when there is no cloud
    to ask (never deployed here, or not answering: decided when the step runs)."""
    conn = cloud_for_facts(ctx, login)
    if conn is None:
        return None
    try:
        return read(conn)
    except Exception:  # noqa: BLE001 (openstacksdk's errors and ours: same)
        return None


def _networks(conn: Any, name: str) -> list[Any]:
    return list(conn.network.networks(name=name, project_id=conn.current_project_id))


def _subnets(conn: Any, name: str) -> list[Any]:
    return list(conn.network.subnets(name=name, project_id=conn.current_project_id))


def _routers(conn: Any, name: str) -> list[Any]:
    return list(conn.network.routers(name=name, project_id=conn.current_project_id))


def _one(kind: str, name: str, found: list[Any]) -> Any | None:
    """The one object of that name in the admin project, or None; two are ambiguous
    (a user naming it would get an error), so refused."""
    if len(found) > 1:
        raise ContentConflictError(kind, name, f"{len(found)} {kind}s have that name in "
                                   "the admin project")
    return found[0] if found else None


def _refuse_other_shape(kind: str, name: str, found: dict[str, Any], wanted: Shape) -> None:
    differences = [f"its {k} is {found.get(k)!r} where Day-1 content has {v!r}"
                   for k, v in wanted if found.get(k) != v]
    if differences:
        raise ContentConflictError(kind, name, "; ".join(differences))


def network_id(conn: Any, name: str) -> str:
    """The id of the admin project's network of that name (made by an earlier step)."""
    network = _one("network", name, _networks(conn, name))
    if network is None:
        raise ContentConflictError("network", name, "no longer exists in the admin project")
    return str(network.id)


@dataclass(frozen=True)
class EnsureNetwork:
    """A network of that name in the admin project, of that shape (``router:external``,
    ``shared``, provider fields for a provider network)."""

    name: str
    shape: Shape
    login: CloudLogin
    kind: str = "network"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.name, self.shape, self.login.auth_url]))

    def _shape_of(self, network: Any) -> dict[str, Any]:
        return {k: getattr(network, NETWORK_FIELDS[k]) for k, _ in self.shape}

    def probe(self, ctx: HostContext) -> Any:
        return _read(ctx, self.login,
                     lambda conn: [self._shape_of(n) for n in _networks(conn, self.name)])

    def needed(self, fact: Any, done: str | None) -> bool:
        return bool(fact != [dict(self.shape)])

    def apply(self, ctx: HostContext) -> None:
        from onestack.drivers import openstack

        conn = self.login.connect()
        with openstack.translated(f"find network {self.name}"):
            found = _one("network", self.name, _networks(conn, self.name))
        if found is not None:
            _refuse_other_shape("network", self.name, self._shape_of(found), self.shape)
            return
        with openstack.translated(f"create network {self.name}"):
            conn.network.create_network(name=self.name,
                                        **{NETWORK_FIELDS[k]: v for k, v in self.shape})
        ctx.progress.message(f"network {self.name}: " + ", ".join(
            f"{k} {v}" for k, v in self.shape))


@dataclass(frozen=True)
class EnsureSubnet:
    """An IPv4 subnet of that name on a network of the admin project, of that shape
    (``cidr``, ``gateway_ip``, ``enable_dhcp``). Its allocation pool and DNS servers are
    given when it is created, and left to the operator after."""

    name: str
    network: str
    shape: Shape
    pool: tuple[str, str] | None
    dns: tuple[str, ...]
    login: CloudLogin
    kind: str = "subnet"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.name, self.network, self.shape, self.pool, self.dns,
                                  self.login.auth_url]))

    def _wanted(self) -> dict[str, Any]:
        return {"network": self.network, **dict(self.shape)}

    def _shape_of(self, conn: Any, subnet: Any) -> dict[str, Any]:
        on = [n.id for n in _networks(conn, self.network)]
        return {"network": self.network if subnet.network_id in on else subnet.network_id,
                **{k: getattr(subnet, SUBNET_FIELDS[k]) for k, _ in self.shape}}

    def probe(self, ctx: HostContext) -> Any:
        return _read(ctx, self.login, lambda conn: [self._shape_of(conn, s)
                                                    for s in _subnets(conn, self.name)])

    def needed(self, fact: Any, done: str | None) -> bool:
        return bool(fact != [self._wanted()])

    def apply(self, ctx: HostContext) -> None:
        from onestack.drivers import openstack

        conn = self.login.connect()
        with openstack.translated(f"find subnet {self.name}"):
            found = _one("subnet", self.name, _subnets(conn, self.name))
            if found is not None:
                _refuse_other_shape("subnet", self.name, self._shape_of(conn, found),
                                    tuple(self._wanted().items()))
                return
            net = network_id(conn, self.network)
        given = {SUBNET_FIELDS[k]: v for k, v in self.shape}
        if self.pool:
            given["allocation_pools"] = [{"start": self.pool[0], "end": self.pool[1]}]
        with openstack.translated(f"create subnet {self.name}"):
            conn.network.create_subnet(name=self.name, network_id=net,
                                       dns_nameservers=list(self.dns), **given)
        ctx.progress.message(f"subnet {self.name} on {self.network}: {dict(self.shape)['cidr']}")


@dataclass(frozen=True)
class EnsureRouter:
    """A router of that name in the admin project, its external gateway on a network,
    with an interface on each of ``subnets`` (others it may have are left alone)."""

    name: str
    gateway: str
    subnets: tuple[str, ...]
    login: CloudLogin
    kind: str = "router"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.name, self.gateway, self.subnets, self.login.auth_url]))

    def _gateway_of(self, conn: Any, router: Any) -> str | None:
        info = router.external_gateway_info or {}
        net = info.get("network_id")
        return self.gateway if net and net in [n.id for n in _networks(conn, self.gateway)] \
            else net

    def _attached(self, conn: Any, router: Any) -> list[str]:
        """Which of ``subnets`` the router has an interface on."""
        ids = {ip["subnet_id"] for p in conn.network.ports(device_id=router.id)
               if p.device_owner in ROUTER_INTERFACE_OWNERS for ip in p.fixed_ips or ()}
        return [name for name in self.subnets
                if any(s.id in ids for s in _subnets(conn, name))]

    def _state(self, conn: Any, router: Any) -> dict[str, Any]:
        return {"external_gateway": self._gateway_of(conn, router),
                "interfaces": self._attached(conn, router)}

    def probe(self, ctx: HostContext) -> Any:
        return _read(ctx, self.login, lambda conn: [self._state(conn, r)
                                                    for r in _routers(conn, self.name)])

    def needed(self, fact: Any, done: str | None) -> bool:
        return bool(fact != [{"external_gateway": self.gateway,
                              "interfaces": list(self.subnets)}])

    def apply(self, ctx: HostContext) -> None:
        from onestack.drivers import openstack

        conn = self.login.connect()
        with openstack.translated(f"find router {self.name}"):
            router = _one("router", self.name, _routers(conn, self.name))
            if router is not None:
                _refuse_other_shape("router", self.name, self._state(conn, router),
                                    (("external_gateway", self.gateway),))
            attached = self._attached(conn, router) if router is not None else []
        if router is None:
            router = self._create(conn)
            ctx.progress.message(f"router {self.name}: gateway on {self.gateway}")
        for subnet in (s for s in self.subnets if s not in attached):
            self._attach(conn, router, subnet)
            ctx.progress.message(f"router {self.name}: interface on {subnet}")

    def _create(self, conn: Any) -> Any:
        from onestack.drivers import openstack

        with openstack.translated(f"create router {self.name}"):
            gateway = network_id(conn, self.gateway)
            return conn.network.create_router(name=self.name,
                                              external_gateway_info={"network_id": gateway})

    def _attach(self, conn: Any, router: Any, subnet: str) -> None:
        from onestack.drivers import openstack

        with openstack.translated(f"add {subnet} to router {self.name}"):
            found = _one("subnet", subnet, _subnets(conn, subnet))
            if found is None:
                raise ContentConflictError("subnet", subnet, "no longer exists in the "
                                           "admin project")
            conn.network.add_interface_to_router(router, subnet_id=found.id)


@dataclass(frozen=True)
class EnsureBridgeAddress:
    """A bridge of the host's switch holds an address and is up: how this host reaches
    the floating IPs of a provider network whose bridge has no uplink. Refused where
    the bridge has an uplink (the address would be announced on that network) or
    another interface holds an address of the range (it would be routed there)."""

    bridge: str
    address: str  # with its prefix, e.g. 198.19.0.1/24
    ovsdb: str  # the switch's database: which ports the bridge has
    kind: str = "bridge-address"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.bridge, self.address, self.ovsdb]))

    def probe(self, ctx: HostContext) -> Any:
        return link_state(ctx, self.bridge)  # None: no bridge yet (the switch's steps first)

    def needed(self, fact: Any, done: str | None) -> bool:
        return not isinstance(fact, dict) or not fact.get("up") or \
            self.address not in fact.get("addresses", [])

    def apply(self, ctx: HostContext) -> None:
        self._refuse_leaks(ctx)
        ctx.host.run(("ip", "addr", "replace", self.address, "dev", self.bridge), timeout=30)
        ctx.host.run(("ip", "link", "set", self.bridge, "up"), timeout=30)
        ctx.progress.message(f"{self.bridge}: {self.address}")

    def _refuse_leaks(self, ctx: HostContext) -> None:
        ports = ctx.host.run(ovsdb.vsctl(self.ovsdb, "list-ports", self.bridge)).split()
        uplinks = [p for p in ports if not p.startswith("patch-")]  # OVN's own: patch-*
        if uplinks:
            raise HostPrerequisiteError(ctx.host.name, (
                f"{self.bridge} has an uplink ({', '.join(uplinks)}): onestack gives it the "
                f"test address {self.address} only on a bridge that has none"))
        network = str(ip_interface(self.address).network)
        others = others_in_network(ctx, network, self.bridge)
        if others:
            raise HostPrerequisiteError(ctx.host.name, (
                f"{', '.join(others)} already holds an address in {network}: "
                f"{self.bridge} cannot have {self.address} as well"))


