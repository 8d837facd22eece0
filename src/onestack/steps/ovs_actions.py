"""Changes to a host's Open vSwitch database: its bridges and the chassis settings
ovn-controller reads. Each probes the database (read-only), so a bridge or a setting
removed behind onestack's back shows up in the plan and is put back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import ip_interface
from typing import Any

from onestack.core.digest import digest
from onestack.drivers import ovsdb
from onestack.errors import HostPrerequisiteError
from onestack.steps.context import HostContext

Settings = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class EnsureBridges:
    """Bridges that must exist with exact column values (``datapath_type=netdev``:
    the userspace datapath, as no kernel module may be assumed)."""

    db: str  # e.g. unix:<site run dir>/openvswitch/db.sock
    bridges: tuple[tuple[str, Settings], ...]
    kind: str = "bridges"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.db, self.bridges]))

    def _columns(self) -> set[str]:
        return {column for _, settings in self.bridges for column, _ in settings}

    def probe(self, ctx: HostContext) -> Any:
        return ovsdb.bridges(ctx.host, self.db, self._columns())

    def needed(self, fact: Any, done: str | None) -> bool:
        if not isinstance(fact, dict):
            return True  # the database did not answer: decided when the step runs
        return any(name not in fact or any(fact[name].get(k) != v for k, v in settings)
                   for name, settings in self.bridges)

    def apply(self, ctx: HostContext) -> None:
        ctx.host.run(ovsdb.ensure_bridges(self.db, {n: dict(s) for n, s in self.bridges}),
                     timeout=90)


@dataclass(frozen=True)
class EnsureExternalIds:
    """Keys of the Open_vSwitch row's ``external_ids`` with exact values (keys of
    others are left alone): how a chassis tells ovn-controller where the southbound
    database is, its name, tunnel address and bridges."""

    db: str
    ids: Settings
    kind: str = "ovsdb-settings"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.db, self.ids]))

    def probe(self, ctx: HostContext) -> Any:
        return ovsdb.external_ids(ctx.host, self.db)

    def needed(self, fact: Any, done: str | None) -> bool:
        if not isinstance(fact, dict):
            return True
        return any(fact.get(k) != v for k, v in self.ids)

    def apply(self, ctx: HostContext) -> None:
        ctx.host.run(ovsdb.set_external_ids(self.db, dict(self.ids)), timeout=30)


@dataclass(frozen=True)
class EnsureGuestFilter:
    """The site's nftables table on a chassis: what guests send to the host's own
    addresses through the site's bridges is dropped, except replies to the host's
    own connections (it reaches floating IPs on br-ex). Loaded whole (``nft -f``,
    one transaction); another site's or the operator's tables are not touched."""

    table: str  # an nftables table of family inet, the site's own
    ruleset: str  # ``nft -f`` input that (re)defines exactly that table
    kind: str = "host-filter"

    def fingerprint(self) -> str:
        return digest(f"{self.table}|{self.ruleset}")

    def probe(self, ctx: HostContext) -> Any:
        out = ctx.host.run(("nft", "list", "table", "inet", self.table), check=False)
        return "hook input" in out

    def needed(self, fact: Any, done: str | None) -> bool:
        return not fact or done is None

    def apply(self, ctx: HostContext) -> None:
        ctx.host.run(("nft", "-f", "-"), input=self.ruleset, timeout=30)


@dataclass(frozen=True)
class EnsureTunnelEndpoint:
    """A chassis's tunnel endpoint on the userspace datapath (ADR 0023): a bridge
    (``datapath_type=netdev``) with the host's tunnel interface as a port, and the
    tunnel address on the bridge's own port, both up. Open vSwitch sends Geneve out
    of the bridge that holds the address its routes lead to; the interface itself
    holds none (refused if it does: the address would answer on two ports)."""

    db: str
    bridge: str
    interface: str
    address: str  # with its prefix, e.g. 198.18.51.11/24
    kind: str = "tunnel-endpoint"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.db, self.bridge, self.interface, self.address]))

    def probe(self, ctx: HostContext) -> Any:
        ports = ctx.host.run(ovsdb.vsctl(self.db, "list-ports", self.bridge), check=False)
        return {"ports": ports.split(), "bridge": link_state(ctx, self.bridge),
                "interface": link_state(ctx, self.interface)}

    def needed(self, fact: Any, done: str | None) -> bool:
        if not isinstance(fact, dict):
            return True
        bridge, interface = fact.get("bridge") or {}, fact.get("interface") or {}
        return (self.interface not in fact.get("ports", []) or not bridge.get("up")
                or self.address not in bridge.get("addresses", []) or not interface.get("up"))

    def apply(self, ctx: HostContext) -> None:
        self._refuse_misfits(ctx)
        ctx.host.run(ovsdb.vsctl(self.db, "--", "--may-exist", "add-br", self.bridge,
                                 "--", "set", "Bridge", self.bridge, "datapath_type=netdev",
                                 "--", "--may-exist", "add-port", self.bridge, self.interface,
                                 timeout=60), timeout=90)
        for argv in (("ip", "link", "set", self.interface, "up"),
                     ("ip", "addr", "replace", self.address, "dev", self.bridge),
                     ("ip", "link", "set", self.bridge, "up")):
            ctx.host.run(argv, timeout=30)
        ctx.progress.message(f"{self.bridge}: {self.address} through {self.interface}")

    def _refuse_misfits(self, ctx: HostContext) -> None:
        """The interface exists and holds no IPv4 address; no other interface holds an
        address of the tunnel's network (tunnels would be routed there)."""
        link = link_state(ctx, self.interface)
        if link is None:
            raise HostPrerequisiteError(ctx.host.name, (
                f"no interface {self.interface}: the site file's tunnel.interface names the "
                "NIC this host's tenant traffic goes through"))
        if link["addresses"]:
            raise HostPrerequisiteError(ctx.host.name, (
                f"{self.interface} holds {', '.join(link['addresses'])}: a tunnel interface "
                f"is given whole to the switch (its address is tunnel.address, on "
                f"{self.bridge}); use a NIC without an address"))
        network = str(ip_interface(self.address).network)
        others = others_in_network(ctx, network, self.bridge)
        if others:
            raise HostPrerequisiteError(ctx.host.name, (
                f"{', '.join(others)} already holds an address in {network}: tunnels to "
                f"that network would leave through it, not through {self.bridge}"))


def others_in_network(ctx: HostContext, network: str, bridge: str) -> list[str]:
    """Interfaces other than ``bridge`` holding an IPv4 address of ``network``."""
    out = ctx.host.run(("ip", "-j", "-4", "addr", "show", "to", network), check=False)
    return [link.get("ifname", "?") for link in json_list(out)
            if link.get("ifname") != bridge and link.get("addr_info")]


def link_state(ctx: HostContext, name: str) -> dict[str, Any] | None:
    """An interface's state (up, IPv4 addresses with prefix), None if there is none."""
    links = json_list(ctx.host.run(("ip", "-j", "addr", "show", "dev", name), check=False))
    if not links:
        return None
    return {"up": "UP" in links[0].get("flags", []),
            "addresses": [f"{a['local']}/{a['prefixlen']}" for a in links[0].get("addr_info", [])
                          if a.get("family") == "inet"]}


def json_list(out: str) -> list[dict[str, Any]]:
    """``ip -j``'s answer, or [] when it printed an error (no such device)."""
    try:
        data = json.loads(out)
    except ValueError:
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
