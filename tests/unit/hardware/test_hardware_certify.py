"""Certification as data: {inventory, role} -> {certified, reason codes, eligible roles}."""

from __future__ import annotations

from typing import Any

import pytest
from hw_builders import r650

from onestack.hardware.certify import certify_node
from onestack.hardware.hcl import HardwareCompatibilityList
from onestack.model.hardware import (
    Cpu,
    DiscoveryStatus,
    Drive,
    Nic,
    NicAdapter,
    StorageController,
)

SSD = Drive(model="Dell Ent NVMe P5500 RI U.2 3.84TB", capacity_bytes=3840 * 10**9,
            media_type="SSD")
HDD = Drive(model="Seagate ST16000NM004J", capacity_bytes=16 * 10**12, media_type="HDD")

CASES: list[tuple[str, dict[str, Any], str | None, bool, list[str], list[str]]] = [
    ("certified, no role", {}, None, True, [], ["controller", "compute"]),
    ("certified for its role", {}, "compute", True, [], ["controller", "compute"]),
    ("storage needs four drives", {}, "storage", False, ["too-few-drives", "too-little-disk"],
     ["controller", "compute"]),
    ("big storage node", {"drives": [SSD] * 6, "model": "PowerEdge R750",
                          "firmware": {"BIOS": "1.10.2", "BMC": "6.10.30.00"}},
     "storage", True, [], ["controller", "compute", "storage"]),
    ("HDDs do not count for a controller", {"drives": [HDD] * 4}, "controller", False,
     ["too-few-drives", "too-little-disk"], ["compute", "storage"]),
    ("unknown model", {"manufacturer": "Supermicro", "model": "SYS-1029U-TRT"}, None, False,
     ["unknown-model"], []),
    ("model matched loosely", {"manufacturer": "DELL INC.", "model": "PowerEdge  R650"}, None,
     True, [], ["controller", "compute"]),
    ("uncertified NIC", {"nic_adapters": [NicAdapter(manufacturer="Realtek", model="RTL8111")]},
     None, False, ["nic-not-certified"], []),
    ("uncertified drive and controller",
     {"storage": [StorageController(model="Acme RAID", drives=[Drive(model="X1")] * 2)]},
     None, False, ["drive-not-certified", "storage-controller-not-certified"], []),
    ("BIOS below minimum", {"firmware": {"BIOS": "1.7.9", "BMC": "6.10.30.00",
                                         "Intel E810-XXVDA2": "4.40"}},
     None, False, ["firmware-below-baseline"], []),
    ("between minimum and expected is fine", {"firmware": {
        "BIOS": "1.9.0", "BMC": "6.00.30.00", "Intel E810-XXVDA2": "4.20"}},
     None, True, [], ["controller", "compute"]),
    ("BMC and NIC versions missing", {"firmware": {"BIOS": "1.10.2"}}, None, False,
     ["firmware-not-reported", "firmware-not-reported"], []),
    ("no NIC firmware needed without the NIC", {
        "nic_adapters": [], "firmware": {"BIOS": "1.10.2", "BMC": "6.10.30.00"}},
     None, True, [], ["controller", "compute"]),
    ("health warning", {"health": "Warning"}, None, False, ["health-not-ok"], []),
    ("health unknown", {"health": None}, None, False, ["health-not-ok"], []),
    ("small for compute", {"memory_gib": 192.0}, "compute", False, ["too-little-memory"],
     ["controller"]),
    ("slow NICs", {"nics": [Nic(speed_mbps=1000)] * 2}, None, False, ["no-eligible-role"], []),
    ("few cores for compute", {"cpus": [Cpu(cores=12)] * 2}, "compute", False,
     ["too-few-cores"], ["controller"]),
    ("unknown role", {}, "gpu", False, ["role-unknown"], ["controller", "compute"]),
    ("every reason at once", {"health": "Critical",
                              "nic_adapters": [NicAdapter(manufacturer="X", model="Y")],
                              "firmware": {"BIOS": "1.0", "BMC": "6.10.30.00",
                                           "Intel E810-XXVDA2": "4.40"}},
     None, False, ["firmware-below-baseline", "health-not-ok", "nic-not-certified"], []),
    ("partial inventory", {"status": DiscoveryStatus.PARTIAL,
                           "problems": ["storage: HTTP 500"]}, None, False,
     ["inventory-partial"], []),
    ("not discovered", {"status": DiscoveryStatus.TIMEOUT, "reason": "no answer", "model": None},
     "compute", False, ["not-discovered"], []),
]


@pytest.mark.parametrize(("name", "changes", "role", "certified", "codes", "eligible"), CASES,
                         ids=[c[0] for c in CASES])
def test_certify_node(hcl: HardwareCompatibilityList, name: str, changes: dict[str, Any],
                      role: str | None, certified: bool, codes: list[str],
                      eligible: list[str]) -> None:
    result = certify_node(r650(**changes), hcl, hcl.baseline("2026.1"), role)
    assert (result.certified, sorted(r.code for r in result.reasons), result.eligible_roles) \
        == (certified, codes, eligible)


def test_reasons_name_the_numbers(hcl: HardwareCompatibilityList) -> None:
    result = certify_node(r650(memory_gib=64.0), hcl, hcl.baseline("2026.1"), "compute")
    assert [r.message for r in result.reasons] == [
        "compute needs 256 GiB of memory, node has 64"]
    assert result.reasons[0].role == "compute"


def test_newer_baseline_raises_nothing_new_for_certification(
        hcl: HardwareCompatibilityList) -> None:
    # 2026.2 expects newer firmware but keeps the same minimums.
    assert certify_node(r650(), hcl, hcl.baseline("2026.2")).certified
