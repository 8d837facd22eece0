"""Inventory store round trip (own tables only) and the firmware plan as data."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from hw_builders import r650

from onestack.hardware.firmware import FirmwareAction, plan_firmware
from onestack.hardware.hcl import HardwareCompatibilityList
from onestack.hardware.store import InventoryStore
from onestack.model.hardware import DiscoveryStatus


def test_store_creates_state_db_private_even_with_a_loose_umask(tmp_path: Path) -> None:
    db = tmp_path / "site" / "state.db"
    old = os.umask(0o022)
    try:
        InventoryStore(db).save([r650(node="a")])
    finally:
        os.umask(old)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_store_round_trip_keeps_others_tables(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with sqlite3.connect(db) as other:
        other.execute("CREATE TABLE journal (step TEXT)")
        other.execute("INSERT INTO journal VALUES ('deploy')")
    store = InventoryStore(db)
    first = r650(node="b")
    store.save([first, r650(node="a", status=DiscoveryStatus.PARTIAL, problems=["storage: x"])])
    store.save([r650(node="b", memory_gib=1024.0)])
    loaded = store.load()
    assert [i.node for i in loaded] == ["a", "b"]
    assert loaded[0].partial and loaded[1].memory_gib == 1024.0
    assert loaded[1].discovered_at == first.discovered_at
    store.mark_firmware("b", "BIOS", "failed", "image verification failed")
    assert store.firmware_marks() == {("b", "BIOS"): ("failed", "image verification failed")}
    with sqlite3.connect(db) as other:
        assert other.execute("SELECT step FROM journal").fetchall() == [("deploy",)]


def test_firmware_plan(hcl: HardwareCompatibilityList) -> None:
    nodes = [
        r650(node="at-baseline"),
        r650(node="old", firmware={"BIOS": "1.7.0", "BMC": "6.10.30.00",
                                   "Intel E810-XXVDA2": "4.50"}),
        r650(node="unknown-bmc", firmware={"BIOS": "1.10.2", "Intel E810-XXVDA2": "4.40"}),
        r650(node="gone", status=DiscoveryStatus.UNREACHABLE),
        r650(node="whitebox", manufacturer="Supermicro", model="X"),
    ]
    plan = plan_firmware(nodes, hcl.baseline("2026.1"))
    assert [(c.node, c.component, c.current, c.expected, c.below_minimum, c.action)
            for c in plan] == [
        ("old", "BIOS", "1.7.0", "1.10.2", True, FirmwareAction.UPDATE),
        ("old", "Intel E810-XXVDA2", "4.50", "4.40", False, FirmwareAction.NEWER),
        ("unknown-bmc", "BMC", None, "6.10.30.00", True, FirmwareAction.CANNOT_UPDATE),
    ]
    assert plan[0].image.endswith("BIOS_1.10.2.exe")
    assert plan[0].target == "/redfish/v1/UpdateService/FirmwareInventory/BIOS"
    # A newer bundle moves the baseline: everything is now behind.
    later = plan_firmware([r650()], hcl.baseline("2026.2"))
    assert {(c.component, c.expected) for c in later} == {
        ("BIOS", "1.12.1"), ("BMC", "7.00.00.00"), ("Intel E810-XXVDA2", "4.50")}
