"""The real driver reads recorded BMC payloads shipped in the sushy wheel.

A stub connector answers sushy's GETs from ``sushy/tests/unit/json_samples``
(DMTF mockup-style payloads, some from vendors: Dell-style NIC and firmware
inventory ids, a Mellanox adapter), so parsing is tested on payloads we did not write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sushy

from onestack.drivers.redfish import BmcLogin, Deadline, read_node
from onestack.model.hardware import DiscoveryStatus, Node

SAMPLES = Path(sushy.__file__).parent / "tests" / "unit" / "json_samples"
SYSTEM = "/redfish/v1/Systems/437XR1138R2"
# Paths the system links to whose sample is stored under another id.
ALIASES = {
    "/redfish/v1/Chassis/1U": "chassis.json",
    "/redfish/v1/Chassis/Blade1/NetworkAdapters": "network_adapter_collection.json",
    "/redfish/v1/Chassis/System.Embedded.1/NetworkAdapters/NIC.Integrated.1":
        "network_adapter.json",
    f"{SYSTEM}/Storage/1/Drives/3F5A8C54207B7233": "drive3.json",
    f"{SYSTEM}/Storage/1/Drives/3D58ECBC375FD9F2": "drive3.json",
    f"{SYSTEM}/EthernetInterfaces/12446A3B0411": "ethernet_interfaces.json",
    "/redfish/v1/UpdateService/FirmwareInventory/Current-101560-25.5.6.0009":
        "softwareinventory.json",
    "/redfish/v1/UpdateService/FirmwareInventory/Installed-101560-25.5.6.0009":
        "softwareinventory.json",
    "/redfish/v1/UpdateService/FirmwareInventory/Previous-102302-18.8.9":
        "softwareinventory.json",
}
BY_ID = {
    "/redfish/v1/": "root.json", "/redfish/v1/Systems": "system_collection.json",
    SYSTEM: "system.json", f"{SYSTEM}/Processors": "processor_collection.json",
    f"{SYSTEM}/Processors/CPU1": "processor.json", f"{SYSTEM}/Processors/CPU2": "processor2.json",
    f"{SYSTEM}/EthernetInterfaces": "ethernet_interfaces_collection.json",
    f"{SYSTEM}/Storage": "storage_collection.json", f"{SYSTEM}/Storage/1": "storage.json",
    f"{SYSTEM}/Storage/1/Drives/35D38F11ACEF7BD3": "drive2.json",
    f"{SYSTEM}/Storage/1/Drives/32ADF365C6C1B7BD": "drive.json",
    "/redfish/v1/Managers/BMC": "manager.json", "/redfish/v1/UpdateService": "updateservice.json",
    "/redfish/v1/UpdateService/FirmwareInventory": "firmwareinventory_collection.json",
}


class Response:
    def __init__(self, doc: Any, status: int = 200) -> None:
        self.status_code, self.headers = status, {}
        self.content = json.dumps(doc).encode()
        self._doc = doc

    def json(self) -> Any:
        return self._doc


class SampleConnector:
    """Answers GETs from recorded payloads; counts what was asked."""

    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        self.files = {**BY_ID, **ALIASES}
        self.overrides = overrides or {}
        self.asked: list[str] = []

    def get(self, path: str = "", **_: Any) -> Response:
        path = "/" + path.split("://", 1)[-1].split("/", 1)[-1] if "://" in path else path
        self.asked.append(path)
        key = path if path in self.files or path in self.overrides else path.rstrip("/")
        if key in self.overrides:
            value = self.overrides[key]
            if isinstance(value, Exception):
                raise value
            return Response(value)
        if key not in self.files:
            raise sushy.exceptions.ResourceNotFoundError(
                method="GET", url=path, response=Response({"error": {}}, 404))
        return Response(json.loads((SAMPLES / self.files[key]).read_text()))

    def set_auth(self, auth: Any) -> None:
        pass

    def set_http_basic_auth(self, username: str, password: str) -> None:
        pass

    def close(self) -> None:
        pass


def _read(connector: SampleConnector) -> Any:
    node = Node(name="contoso", bmc="https://bmc.example", credentials="c")
    return read_node(BmcLogin(node, "u", "p"), Deadline(30), connector)


def test_recorded_system_is_read_completely() -> None:
    inv = _read(SampleConnector())
    assert inv.status is DiscoveryStatus.OK, inv.problems
    assert (inv.manufacturer, inv.model, inv.serial) == ("Contoso", "3500", "437XR1138R2")
    assert (inv.power_state, inv.health, inv.memory_gib) == ("On", "OK", 96.0)
    assert inv.cpu_summary_count == 2 and len(inv.cpus) >= 1
    assert inv.cpus[0].model == "Multi-Core Intel(R) Xeon(R) processor 7xxx Series"
    assert inv.nics[0].mac == "12:44:6a:3b:04:11" and inv.nics[0].speed_mbps == 1000
    assert [(a.manufacturer, a.model, a.firmware_version) for a in inv.nic_adapters] == [
        ("Mellanox Technologies", "MLNX 25GbE 2P ConnectX4LX RNDC", "14.25.80.0")]
    [controller] = inv.storage
    assert (controller.model, controller.firmware_version) == ("12Gbs Integrated RAID", "1.0.0.7")
    assert len(controller.drives) == 4
    assert {(d.model, d.media_type, d.capacity_bytes) for d in controller.drives} == {
        ("C123", "HDD", 899527000000)}
    firmware = {f.component: f.version for f in inv.firmware}
    assert firmware == {"BIOS": "P79 v1.45 (12/06/2017)", "BMC": "1.45.455b66-rev4",
                        "Mellanox Technologies MLNX 25GbE 2P ConnectX4LX RNDC": "14.25.80.0"}


def test_failing_section_is_kept_as_partial() -> None:
    broken = sushy.exceptions.ServerSideError(
        method="GET", url="x", response=Response({"error": {"message": "boom"}}, 500))
    inv = _read(SampleConnector({f"{SYSTEM}/Storage": broken}))
    assert inv.status is DiscoveryStatus.PARTIAL
    assert inv.problems == ["storage: HTTP 500: boom"]
    assert inv.storage == [] and inv.cpus and inv.model == "3500"


def test_system_without_required_id_is_malformed() -> None:
    doc = json.loads((SAMPLES / "system.json").read_text())
    del doc["Id"]
    inv = _read(SampleConnector({SYSTEM: doc}))
    assert inv.status is DiscoveryStatus.MALFORMED
    assert "Id" in (inv.reason or "")


def test_missing_processors_link_is_a_named_problem() -> None:
    doc = json.loads((SAMPLES / "system.json").read_text())
    del doc["Processors"]
    inv = _read(SampleConnector({SYSTEM: doc}))
    assert inv.status is DiscoveryStatus.PARTIAL
    assert [p.split(":")[0] for p in inv.problems] == ["processors"]
    assert inv.cpu_summary_count == 2


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("system*.json")
                                           if "collection" not in p.name))
def test_every_recorded_system_parses(sample: str) -> None:
    doc = json.loads((SAMPLES / sample).read_text())
    inv = _read(SampleConnector({SYSTEM: doc}))
    assert inv.status.has_data, inv.reason
    assert inv.manufacturer == doc.get("Manufacturer")


def test_adapter_firmware_is_read_from_any_controller() -> None:
    """An Intel E810 reporting its NVM version in its second controller's entry."""
    adapter = json.loads((SAMPLES / "network_adapter.json").read_text())
    adapter.update({"Manufacturer": "Intel", "Model": "E810-XXVDA2"})
    adapter["Controllers"] = [{"ControllerCapabilities": {}},
                              {**adapter["Controllers"][0], "FirmwarePackageVersion": "4.40"}]
    path = "/redfish/v1/Chassis/System.Embedded.1/NetworkAdapters/NIC.Integrated.1"
    inv = _read(SampleConnector({path: adapter}))
    assert [(a.label, a.firmware_version) for a in inv.nic_adapters] == [
        ("Intel E810-XXVDA2", "4.40")]
    assert inv.firmware_version("Intel E810-XXVDA2") == "4.40"
