"""Builders for hardware unit tests: inventories as plain data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from onestack.model.hardware import (
    Cpu,
    DiscoveryStatus,
    Drive,
    FirmwareComponent,
    Nic,
    NicAdapter,
    NodeInventory,
    StorageController,
)


def r650(**changes: Any) -> NodeInventory:
    """A certified Dell R650 at the 2026.1 baseline; ``changes`` override fields."""
    firmware = changes.pop("firmware", {"BIOS": "1.10.2", "BMC": "6.10.30.00",
                                        "Intel E810-XXVDA2": "4.40"})
    drives = changes.pop("drives", [Drive(model="Dell Ent NVMe P5600 MU U.2 3.2TB",
                                          capacity_bytes=3200 * 10**9, media_type="SSD")] * 2)
    base: dict[str, Any] = {
        "node": "n1", "bmc": "https://10.0.0.1", "status": DiscoveryStatus.OK,
        "discovered_at": datetime(2026, 1, 1, tzinfo=UTC),
        "manufacturer": "Dell Inc.", "model": "PowerEdge R650", "serial": "SN1",
        "power_state": "On", "health": "OK", "memory_gib": 512.0,
        "cpus": [Cpu(model="Xeon", cores=24, threads=48)] * 2,
        "nics": [Nic(mac=f"52:54:00:00:00:0{i}", speed_mbps=25000, link="LinkUp")
                 for i in range(2)],
        "nic_adapters": [NicAdapter(manufacturer="Intel", model="E810-XXVDA2")],
        "storage": [StorageController(model="PERC H755 Front", drives=drives)],
        "firmware": [FirmwareComponent(component=c, version=v,
                                       inventory_uri=f"/redfish/v1/UpdateService/"
                                                     f"FirmwareInventory/{c}")
                     for c, v in firmware.items()],
    }
    base.update(changes)
    return NodeInventory(**base)
