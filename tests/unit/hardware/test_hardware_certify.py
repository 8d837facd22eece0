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


@pytest.mark.parametrize(("manufacturer", "model"), [
    ("SEAGATE", "ST16000NM004J"),                  # as many BMCs report it
    ("Seagate Technology LLC", "ST16000NM004J"),
    ("SEAGATE", "SEAGATE  ST16000NM004J"),          # model repeats the make
    (None, "Seagate ST16000NM004J"),
    ("Dell Inc.", "Dell Ent NVMe P5600 MU U.2 3.2TB"),
])
def test_drives_match_the_hcl_as_bmcs_report_them(hcl: HardwareCompatibilityList,
                                                  manufacturer: str | None, model: str) -> None:
    drive = Drive(manufacturer=manufacturer, model=model, capacity_bytes=16 * 10**12,
                  media_type="HDD")
    cert = certify_node(r650(drives=[drive] * 2), hcl, hcl.baseline("2026.1"))
    assert [r.code for r in cert.reasons] == []


def test_drive_refusal_says_what_was_compared(hcl: HardwareCompatibilityList) -> None:
    drive = Drive(manufacturer="TOSHIBA", model="MG08ACA16TE", media_type="HDD")
    cert = certify_node(r650(drives=[drive] * 3), hcl, hcl.baseline("2026.1"))
    [reason] = [r for r in cert.reasons if r.code == "drive-not-certified"]
    assert reason.message == ("3 drive(s) TOSHIBA MG08ACA16TE not certified (compared as "
                              "'toshiba mg08aca16te' and 'mg08aca16te' with the HCL's drives)")


def test_nic_maker_with_corporate_suffix_matches(hcl: HardwareCompatibilityList) -> None:
    adapter = NicAdapter(manufacturer="Intel Corporation", model="E810-XXVDA2",
                         firmware_version="4.40")
    cert = certify_node(r650(nic_adapters=[adapter]), hcl, hcl.baseline("2026.1"))
    assert cert.certified, cert.reasons


def test_adapter_firmware_reported_by_its_controller_counts(
        hcl: HardwareCompatibilityList) -> None:
    """E810 on a BMC whose firmware inventory names it differently: the adapter's own
    Controllers[].FirmwarePackageVersion (merged by discovery) is its version."""
    from onestack.drivers.redfish import _merge_firmware

    adapter = NicAdapter(manufacturer="Intel", model="E810-XXVDA2", firmware_version="4.40")
    firmware = _merge_firmware("1.10.2", "6.10.30.00", [], [adapter])
    inv = r650(nic_adapters=[adapter]).model_copy(update={"firmware": firmware})
    cert = certify_node(inv, hcl, hcl.baseline("2026.1"))
    assert cert.certified, cert.reasons
    old = r650(nic_adapters=[adapter.model_copy(update={"firmware_version": "4.10"})])
    old = old.model_copy(update={"firmware": _merge_firmware(
        "1.10.2", "6.10.30.00", [], old.nic_adapters)})
    assert [r.message for r in certify_node(old, hcl, hcl.baseline("2026.1")).reasons] == [
        "Intel E810-XXVDA2 firmware 4.10 is below the 2026.1 minimum 4.20 (expected 4.40)"]
