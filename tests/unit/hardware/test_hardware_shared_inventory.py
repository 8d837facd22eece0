"""A BMC that manages several systems with one firmware inventory (issue 13).

The payloads are the sushy wheel's recorded ones (system, manager, chassis,
Mellanox adapter, SoftwareInventory member), turned into an enclosure: a second
system, and a shared ``FirmwareInventory`` whose members belong to different
systems through ``RelatedItem`` or the manager's ``SoftwareImages`` links.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from test_hardware_samples import SAMPLES, SYSTEM, SampleConnector

from onestack.drivers.redfish import BmcLogin, Deadline, read_node
from onestack.hardware.firmware import FirmwareAction, plan_firmware
from onestack.hardware.hcl import HardwareCompatibilityList, component_entry
from onestack.model.hardware import DiscoveryStatus, Node, NodeInventory

INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"
ADAPTER = "/redfish/v1/Chassis/System.Embedded.1/NetworkAdapters/NIC.Integrated.1"
OTHER = "/redfish/v1/Systems/Blade2"


def _sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def _member(member_id: str, name: str, version: str, *related: str) -> dict[str, Any]:
    doc = _sample("softwareinventory.json")
    doc.update({"@odata.id": f"{INVENTORY}/{member_id}", "Id": member_id, "Name": name,
                "Version": version, "RelatedItem": [{"@odata.id": r} for r in related]})
    return doc


# Listed with the other blade's members after ours: "the last one wins" took theirs.
MEMBERS = [
    _member("BIOS.1", "System BIOS", "P79 v1.45", SYSTEM),
    _member("BMC.1", "BMC Firmware", "1.45.455b66-rev4", "/redfish/v1/Managers/BMC"),
    _member("NIC.1", "Network adapter firmware", "14.25.80.0", ADAPTER),
    _member("BIOS.2", "System BIOS", "P79 v2.00", OTHER),
    _member("BMC.2", "BMC Firmware", "2.00.000000-rev1", "/redfish/v1/Managers/Blade2"),
    _member("NIC.2", "Network adapter firmware", "16.35.2000",
            "/redfish/v1/Chassis/Blade2/NetworkAdapters/NIC.Slot.1"),
    _member("CPLD", "System CPLD", "1.0.9"),  # no link: whose is it? nobody can say
]


def _enclosure(members: list[dict[str, Any]] | None = None, bios: str | None = None,
               **overrides: Any) -> SampleConnector:
    systems = _sample("system_collection.json")
    systems["Members"] = [{"@odata.id": SYSTEM}, {"@odata.id": OTHER}]
    systems["Members@odata.count"] = 2
    members = MEMBERS if members is None else members
    collection = _sample("firmwareinventory_collection.json")
    collection["Members"] = [{"@odata.id": m["@odata.id"]} for m in members]
    system = _sample("system.json")
    system["MemorySummary"]["TotalSystemMemoryGiB"] = 127.5
    system["BiosVersion"] = bios or system["BiosVersion"]
    return SampleConnector({"/redfish/v1/Systems": systems, INVENTORY: collection,
                            SYSTEM: system, **{m["@odata.id"]: m for m in members},
                            **overrides})


def _read(connector: SampleConnector) -> NodeInventory:
    node = Node(name="blade1", bmc="https://enclosure.example", credentials="c",
                system_id="437XR1138R2")
    return read_node(BmcLogin(node, "u", "p"), Deadline(30), connector)


def _firmware(inv: NodeInventory) -> dict[str, tuple[str | None, str | None]]:
    return {f.component: (f.version, f.inventory_uri) for f in inv.firmware}


def test_each_node_gets_only_the_members_its_links_prove() -> None:
    inv = _read(_enclosure())
    assert inv.status is DiscoveryStatus.OK, inv.problems
    assert _firmware(inv) == {
        "BIOS": ("P79 v1.45", f"{INVENTORY}/BIOS.1"),
        "BMC": ("1.45.455b66-rev4", f"{INVENTORY}/BMC.1"),
        "Mellanox Technologies MLNX 25GbE 2P ConnectX4LX RNDC": ("14.25.80.0",
                                                                 f"{INVENTORY}/NIC.1"),
    }
    owners = {f.component: f.owner for f in inv.firmware}
    assert owners["BIOS"] == f"RelatedItem {SYSTEM}"


def test_memory_keeps_the_bmcs_fractional_figure() -> None:
    assert _read(_enclosure()).memory_gib == 127.5


def test_unlinked_members_of_a_shared_inventory_are_nobodys() -> None:
    unlinked = [{**m, "RelatedItem": []} for m in MEMBERS]
    inv = _read(_enclosure(unlinked))
    # Versions still come from the node's own resources, but nothing is a target.
    assert all(f.inventory_uri is None for f in inv.firmware)
    assert inv.firmware_version("BIOS") == "P79 v1.45 (12/06/2017)"  # system's BiosVersion


def test_manager_software_images_prove_the_bmc_member() -> None:
    unlinked = [{**m, "RelatedItem": []} for m in MEMBERS]
    manager = copy.deepcopy(_sample("manager.json"))
    manager.setdefault("Links", {})["ActiveSoftwareImage"] = {"@odata.id": f"{INVENTORY}/BMC.1"}
    inv = _read(_enclosure(unlinked, **{"/redfish/v1/Managers/BMC": manager}))
    bmc = component_entry(inv, "BMC")
    assert bmc is not None and bmc.inventory_uri == f"{INVENTORY}/BMC.1"
    assert bmc.version == "1.45.455b66-rev4"
    assert bmc.owner == "linked from the node's BMC (SoftwareImages)"


def _as_r650(members: list[dict[str, Any]]) -> NodeInventory:
    """The blade as a certified model whose BIOS (ours 1.7.0, the other's 1.10.2) is old."""
    versions = {"BIOS.1": "1.7.0", "BIOS.2": "1.10.2", "BMC.1": "6.00.30.00"}
    members = [{**m, "Version": versions.get(m["Id"], m["Version"])} for m in members]
    inv = _read(_enclosure(members, bios="1.7.0"))
    return inv.model_copy(update={"manufacturer": "Dell Inc.", "model": "PowerEdge R650"})


def test_plan_targets_the_nodes_own_member_or_refuses(hcl: HardwareCompatibilityList) -> None:
    baseline = hcl.baseline("2026.1")
    plan = {c.component: c for c in plan_firmware([_as_r650(MEMBERS)], baseline)}
    assert (plan["BIOS"].current, plan["BIOS"].target) == ("1.7.0", f"{INVENTORY}/BIOS.1")
    assert plan["BMC"].target == f"{INVENTORY}/BMC.1"
    unlinked = _as_r650([{**m, "RelatedItem": []} for m in MEMBERS])
    refused = {c.component: c for c in plan_firmware([unlinked], baseline)}
    assert refused["BIOS"].action is FirmwareAction.CANNOT_UPDATE
    assert refused["BIOS"].target is None
    assert "provably belongs to this node" in refused["BIOS"].note
