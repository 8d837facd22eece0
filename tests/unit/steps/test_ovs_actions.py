"""Changes to a host's Open vSwitch database (steps/ovs_actions.py): facts read through
the host, pure decisions, the one command that applies each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from onestack.core.progress import SilentProgress
from onestack.model.paths import SitePaths
from onestack.steps.context import HostContext
from onestack.steps.ovs_actions import EnsureBridges, EnsureExternalIds

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
