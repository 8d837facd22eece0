"""Changes to a host's Open vSwitch database (steps/ovs_actions.py): facts read through
the host, pure decisions, the one command that applies each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from onestack.core.progress import SilentProgress
from onestack.errors import HostPrerequisiteError
from onestack.model.paths import SitePaths
from onestack.steps.context import HostContext
from onestack.steps.ovs_actions import EnsureBridges, EnsureExternalIds, EnsureTunnelEndpoint

DB = "unix:/s/run/openvswitch/db.sock"
BRIDGES = EnsureBridges(DB, (("br-int", (("datapath_type", "netdev"), ("fail_mode", "secure"))),
                             ("br-ex", (("datapath_type", "netdev"),))))
IDS = EnsureExternalIds(DB, (("ovn-remote", "tcp:198.18.20.10:16642"), ("system-id", "cmp1")))
GOOD_BRIDGES = {"br-int": {"datapath_type": "netdev", "fail_mode": "secure"},
                "br-ex": {"datapath_type": "netdev", "fail_mode": ""}}

CASES: list[tuple[str, Any, Any, str | None, bool]] = [
    ("database down", BRIDGES, None, "fp", True),
    ("bridges as wanted", BRIDGES, GOOD_BRIDGES, "fp", False),
    ("as wanted, never recorded", BRIDGES, GOOD_BRIDGES, None, False),
    ("br-ex missing", BRIDGES, {"br-int": GOOD_BRIDGES["br-int"]}, "fp", True),
    ("br-int on the kernel datapath", BRIDGES,
     {**GOOD_BRIDGES, "br-int": {"datapath_type": "", "fail_mode": "secure"}}, "fp", True),
    ("br-int not secure", BRIDGES,
     {**GOOD_BRIDGES, "br-int": {"datapath_type": "netdev", "fail_mode": ""}}, "fp", True),
    ("ids database down", IDS, None, "fp", True),
    ("ids as wanted, others kept", IDS, {"ovn-remote": "tcp:198.18.20.10:16642",
                                         "system-id": "cmp1", "rundir": "/x"}, "fp", False),
    ("ids: another southbound", IDS, {"ovn-remote": "tcp:198.18.20.9:16642",
                                      "system-id": "cmp1"}, "fp", True),
    ("ids: one missing", IDS, {"system-id": "cmp1"}, "fp", True),
]


@pytest.mark.parametrize(("action", "fact", "done", "needed"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_needed(action: Any, fact: Any, done: str | None, needed: bool) -> None:
    assert action.needed(fact, done) is needed


class OvsHost:
    """Answers ovs-vsctl's JSON list for one table; records every command."""

    name = "cmp1"

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.commands: list[list[str]] = []

    def run(self, argv: Any, **kwargs: Any) -> str:
        self.commands.append(list(argv))
        return json.dumps(self.table)


def _ctx(host: Any, tmp_path: Path) -> HostContext:
    return HostContext(host, SitePaths(tmp_path, "lab"), None,  # type: ignore[arg-type]
                       SilentProgress())


def test_bridges_probe_and_apply_through_the_host(tmp_path: Path) -> None:
    host = OvsHost({"headings": ["name", "datapath_type", "fail_mode"],
                    "data": [["br-int", "netdev", "secure"]]})
    fact = BRIDGES.probe(_ctx(host, tmp_path))
    assert fact == {"br-int": {"datapath_type": "netdev", "fail_mode": "secure"}}
    assert BRIDGES.needed(fact, "fp")
    BRIDGES.apply(_ctx(host, tmp_path))
    assert host.commands[-1][:3] == ["ovs-vsctl", f"--db={DB}", "--timeout=60"]
    assert "--no-wait" not in host.commands[-1]  # waits until ovs-vswitchd applied it
    assert host.commands[-1].count("add-br") == 2


def test_external_ids_probe_and_apply_through_the_host(tmp_path: Path) -> None:
    host = OvsHost({"headings": ["external_ids"],
                    "data": [[["map", [["system-id", "cmp1"]]]]]})
    fact = IDS.probe(_ctx(host, tmp_path))
    assert fact == {"system-id": "cmp1"} and IDS.needed(fact, "fp")
    IDS.apply(_ctx(host, tmp_path))
    assert host.commands[-1][-2:] == ['external_ids:ovn-remote="tcp:198.18.20.10:16642"',
                                      'external_ids:system-id="cmp1"']


def test_fingerprints_follow_the_inputs() -> None:
    other = EnsureExternalIds(DB, (("ovn-remote", "tcp:198.18.20.9:16642"),
                                   ("system-id", "cmp1")))
    assert IDS.fingerprint() != other.fingerprint()
    assert BRIDGES.fingerprint() == EnsureBridges(DB, BRIDGES.bridges).fingerprint()


# --- a chassis's tunnel endpoint (issue 19, ADR 0023) ----------------------------

TUNNEL = EnsureTunnelEndpoint(DB, "br-phy", "eth1", "198.18.51.11/24")


def _iface(name: str, up: bool, *addresses: str) -> dict[str, Any]:
    return {"ifname": name, "flags": ["BROADCAST", *(["UP"] if up else [])],
            "addr_info": [{"family": "inet", "local": a.split("/")[0],
                           "prefixlen": int(a.split("/")[1])} for a in addresses]}


class LinkHost:
    """Answers ``ip -j addr show dev X``, ``ip -j -4 addr show to NET`` and
    ``ovs-vsctl list-ports``; records every command."""

    name = "cmp1"

    def __init__(self, links: dict[str, dict[str, Any]], ports: str = "",
                 in_range: list[dict[str, Any]] | None = None) -> None:
        self.links, self.ports, self.in_range = links, ports, in_range or []
        self.commands: list[list[str]] = []

    def run(self, argv: Any, **kwargs: Any) -> str:
        self.commands.append(list(argv))
        if argv[0] == "ovs-vsctl":
            return self.ports
        if tuple(argv[:3]) == ("ip", "-j", "-4"):
            return json.dumps(self.in_range)
        if tuple(argv[:3]) == ("ip", "-j", "addr"):
            link = self.links.get(argv[-1])
            return json.dumps([link]) if link else f'Device "{argv[-1]}" does not exist.\n'
        return ""


TUNNEL_CASES: list[tuple[str, dict[str, Any], str, bool]] = [
    ("nothing yet", {}, "", True),
    ("in place", {"br-phy": _iface("br-phy", True, "198.18.51.11/24"),
                  "eth1": _iface("eth1", True)}, "eth1\n", False),
    ("interface not a port", {"br-phy": _iface("br-phy", True, "198.18.51.11/24"),
                              "eth1": _iface("eth1", True)}, "", True),
    ("bridge without the address", {"br-phy": _iface("br-phy", True),
                                    "eth1": _iface("eth1", True)}, "eth1\n", True),
    ("interface down", {"br-phy": _iface("br-phy", True, "198.18.51.11/24"),
                        "eth1": _iface("eth1", False)}, "eth1\n", True),
]


@pytest.mark.parametrize(("links", "ports", "needed"), [c[1:] for c in TUNNEL_CASES],
                         ids=[c[0] for c in TUNNEL_CASES])
def test_tunnel_endpoint_fact_and_decision(tmp_path: Path, links: dict[str, Any], ports: str,
                                           needed: bool) -> None:
    fact = TUNNEL.probe(_ctx(LinkHost(links, ports), tmp_path))
    assert TUNNEL.needed(fact, None) is needed


def test_tunnel_endpoint_takes_the_interface_and_puts_the_address_on_the_bridge(
        tmp_path: Path) -> None:
    host = LinkHost({"eth1": _iface("eth1", False)})
    TUNNEL.apply(_ctx(host, tmp_path))
    vsctl = next(c for c in host.commands if c[0] == "ovs-vsctl" and "add-port" in c)
    assert vsctl[vsctl.index("add-br") + 1] == "br-phy" and "datapath_type=netdev" in vsctl
    assert vsctl[-2:] == ["br-phy", "eth1"]
    assert host.commands[-3:] == [["ip", "link", "set", "eth1", "up"],
                                  ["ip", "addr", "replace", "198.18.51.11/24", "dev", "br-phy"],
                                  ["ip", "link", "set", "br-phy", "up"]]


@pytest.mark.parametrize(("links", "in_range", "problem"), [
    ({}, [], "no interface eth1: the site file's tunnel.interface"),
    ({"eth1": _iface("eth1", True, "10.0.0.5/24")}, [],
     r"eth1 holds 10.0.0.5/24: a tunnel interface is given whole"),
    ({"eth1": _iface("eth1", True)}, [_iface("eth0", True, "198.18.51.2/24")],
     "eth0 already holds an address in 198.18.51.0/24"),
])
def test_a_tunnel_interface_that_cannot_serve_is_refused_before_any_change(
        tmp_path: Path, links: dict[str, Any], in_range: list[dict[str, Any]],
        problem: str) -> None:
    host = LinkHost(links, in_range=in_range)
    with pytest.raises(HostPrerequisiteError, match=problem):
        TUNNEL.apply(_ctx(host, tmp_path))
    assert not any(c[0] == "ovs-vsctl" or c[:2] == ["ip", "link"] for c in host.commands)
