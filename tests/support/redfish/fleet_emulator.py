#!/usr/bin/env python3
"""A fleet of Redfish BMCs served by the real sushy-tools emulator, extended.

sushy-tools' fake system driver emulates many systems without VMs, but behind
one endpoint and without model/serial, processors, firmware inventory, real
SimpleUpdate tasks or network adapters. This script runs the sushy-tools Flask
application with its fake driver and adds, over real HTTP:

* one endpoint per BMC: each BMC listens on its own port (``--listen-each``), or
  a front proxy names the BMC in the ``X-Onestack-Bmc-Port`` header
  (``--backend-port``); each BMC sees only its own system, manager and chassis;
* per-BMC Basic credentials;
* Model, SerialNumber, BiosVersion, health, processors, NIC speed/link, drive
  models, BMC firmware version (patched into the emulator's own responses);
* ``Chassis/<id>/NetworkAdapters``, ``UpdateService/FirmwareInventory`` and a
  ``SimpleUpdate`` that runs a task, then changes the version;
* faults per BMC: ``malformed`` (invalid JSON for the system), ``slow`` (every
  request sleeps), ``storage-error`` (500 on storage), ``firmware-fail`` and
  ``firmware-hang`` (update tasks end in Exception / never end),
  ``firmware-wrong-node`` (the task completes, but the BMC installed the image
  on the next system of its enclosure);
* enclosures: BMCs with the same ``enclosure`` share one port, credentials and
  one ``FirmwareInventory`` listing every system's members, each linked to its
  system, manager or adapter through ``RelatedItem`` (as multi-node chassis do).

Firmware images are named ``..._<version>.<ext>``: the version after the last
underscore is what an update installs.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import flask
from sushy_tools.emulator import main as emulator
from sushy_tools.emulator import memoize
from sushy_tools.emulator.resources.systems import fakedriver
from werkzeug.serving import make_server

FLEET: dict[str, Any] = {}
BY_PORT: dict[int, list[dict[str, Any]]] = {}
BY_UUID: dict[str, dict[str, Any]] = {}
TASKS: dict[str, dict[str, Any]] = {}
_task_ids = itertools.count(100)
_lock = threading.Lock()
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OPEN_PATHS = {"", "redfish", "redfish/v1"}


class InMemory(dict):  # type: ignore[type-arg]
    """Replaces sushy-tools' PersistentDict: emulator state lives in this process only.

    PersistentDict keeps state in SQLite files under /tmp, shared by every
    emulator process and kept across runs (a test would see the power state a
    previous run left), opened per access (slow and memory-hungry under load).
    """


class FleetDriver(fakedriver.FakeDriver):
    """The fake driver, plus processors, memory and firmware from the fleet spec."""

    def get_processors(self, identity: str) -> list[dict[str, Any]]:
        bmc = BY_UUID[self.uuid(identity)]
        return [{"id": f"CPU{i}", "Id": f"CPU{i}", "socket": f"CPU {i}", "vendor": "Intel",
                 "model": bmc["cpu_model"], "cores": bmc["cores_per_socket"],
                 "threads": 2 * bmc["cores_per_socket"]} for i in range(bmc["sockets"])]

    def get_total_memory(self, identity: str) -> int:
        return int(BY_UUID[self.uuid(identity)]["memory_gib"])

    def get_total_cpus(self, identity: str) -> int:
        return int(BY_UUID[self.uuid(identity)]["sockets"])

    def get_versions(self, identity: str) -> dict[str, str]:
        return {"BiosVersion": BY_UUID[self.uuid(identity)]["firmware"]["BIOS"]}

    def set_power_state(self, identity: str, state: str) -> None:
        # Like the fake driver, power changes land later, but after a short delay.
        system = self._get(identity)
        pending = "On" if "On" in state else "Off" if state in (
            "ForceOff", "GracefulShutdown") else state
        if "Restart" in state:
            system["power_state"] = "Off"
        if system["power_state"] != pending:
            self._update(system, pending_power={
                "power_state": pending, "apply_time": time.time() + FLEET["power_delay_s"]})


def _current_group() -> list[dict[str, Any]] | None:
    """The BMCs behind this endpoint: one, or every system of an enclosure."""
    header = flask.request.headers.get("X-Onestack-Bmc-Port")
    port = int(header) if header else int(flask.request.environ.get("SERVER_PORT", 0))
    return BY_PORT.get(port)


def _concerned(group: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """The system of the group a path is about (by its system or chassis id)."""
    for bmc in group:
        if bmc["uuid"] in path or bmc["chassis_uuid"] in path:
            return bmc
    return group[0]


def _error(message: str, code: int) -> flask.Response:
    body = {"error": {"code": "Base.1.0.GeneralError", "message": message}}
    return flask.Response(json.dumps(body), status=code, content_type="application/json")


def _authorized(bmc: dict[str, Any]) -> bool:
    header = flask.request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return False
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user == bmc["username"] and password == bmc["password"]


def before_request() -> flask.Response | None:
    """Scope to one BMC, check its credentials and inject its faults."""
    group = _current_group()
    if group is None:
        return _error("no BMC on this port", 404)
    path = flask.request.path.strip("/")
    flask.g.group, flask.g.bmc = group, _concerned(group, path)
    if path in OPEN_PATHS:
        return None
    if not _authorized(group[0]):
        return _error("Invalid credentials", 401)
    own = {u for b in group for u in (b["uuid"], b["chassis_uuid"])}
    if any(u not in own for u in UUID_RE.findall(path)):
        return _error("resource not found", 404)
    return _fault(flask.g.bmc, path) or _own_collection(group, path)


def _own_collection(group: list[dict[str, Any]], path: str) -> flask.Response | None:
    """A BMC lists only its own systems, managers and chassis.

    Answered here rather than by filtering the emulator's list of the whole
    fleet, which costs ~10 ms per request with 1,000 systems.
    """
    kinds = {"redfish/v1/Systems": "uuid", "redfish/v1/Managers": "uuid",
             "redfish/v1/Chassis": "chassis_uuid"}
    if path not in kinds or flask.request.method != "GET":
        return None
    kind = path.rsplit("/", 1)[-1]
    return _json({"@odata.id": f"/{path}", "@odata.type": f"#{kind}Collection",
                  "Name": f"{kind} Collection", "Members@odata.count": len(group),
                  "Members": [{"@odata.id": f"/{path}/{b[kinds[path]]}"} for b in group]})


def _fault(bmc: dict[str, Any], path: str) -> flask.Response | None:
    fault = bmc.get("fault")
    if fault == "slow":
        time.sleep(float(FLEET.get("slow_s", 3.0)))
    elif fault == "malformed" and path == f"redfish/v1/Systems/{bmc['uuid']}":
        return flask.Response('{"Id": "' + bmc["uuid"] + '", "Name": ', status=200,
                              content_type="application/json")
    elif fault == "storage-error" and "/Storage" in path:
        return _error("storage subsystem not responding", 500)
    return None


def after_request(response: flask.Response) -> flask.Response:
    """Patch the emulator's JSON with what this BMC's machine really has."""
    bmc = getattr(flask.g, "bmc", None)
    if bmc is None or flask.request.method != "GET" or response.status_code != 200:
        return response
    if not response.content_type.startswith("application/json"):
        return response
    try:
        doc = json.loads(response.get_data())
    except ValueError:
        return response
    patched = _patch(bmc, flask.request.path.rstrip("/"), doc)
    if patched is not None:
        response.set_data(json.dumps(patched))
    return response


def _patch(bmc: dict[str, Any], path: str, doc: dict[str, Any]) -> dict[str, Any] | None:
    system = f"/redfish/v1/Systems/{bmc['uuid']}"
    if path == system:
        return _patch_system(bmc, doc)
    if path.startswith(f"{system}/EthernetInterfaces/"):
        doc.update({"SpeedMbps": bmc["nic_speed_mbps"], "LinkStatus": "LinkUp"})
        return doc
    if re.fullmatch(rf"{system}/Storage/[^/]+", path):
        for ctl in doc.get("StorageControllers", []):
            ctl.update({"Model": bmc["controller_model"], "FirmwareVersion": "52.16.1-4405"})
        return doc
    if "/Drives/" in path:
        doc.update({"Model": bmc["drive_model"], "MediaType": bmc["media_type"],
                    "Manufacturer": bmc["manufacturer"], "Protocol": "NVMe",
                    "SerialNumber": f"{bmc['name']}-{doc.get('Id')}"})
        return doc
    if path == f"/redfish/v1/Managers/{bmc['uuid']}":
        doc.update({"FirmwareVersion": bmc["firmware"]["BMC"], "Model": "Integrated BMC"})
        return doc
    if path == f"/redfish/v1/Chassis/{bmc['chassis_uuid']}":
        doc["NetworkAdapters"] = {"@odata.id": f"{path}/NetworkAdapters"}
        return doc
    return None


def _patch_system(bmc: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    system = f"/redfish/v1/Systems/{bmc['uuid']}"
    health = bmc["health"]
    doc.update({
        "Manufacturer": bmc["manufacturer"], "Model": bmc["model"],
        "SerialNumber": f"SN-{bmc['name']}", "BiosVersion": bmc["firmware"]["BIOS"],
        "Status": {"State": "Enabled", "Health": health, "HealthRollup": health},
        "Processors": {"@odata.id": f"{system}/Processors"},
    })
    doc.setdefault("ProcessorSummary", {})["Count"] = bmc["sockets"]
    doc.setdefault("Links", {})["Chassis"] = [
        {"@odata.id": f"/redfish/v1/Chassis/{bmc['chassis_uuid']}"}]
    return doc


def _json(doc: dict[str, Any], code: int = 200, headers: dict[str, str] | None = None
          ) -> flask.Response:
    return flask.Response(json.dumps(doc), status=code, content_type="application/json",
                          headers=headers or {})


def network_adapters(chassis_id: str) -> flask.Response:
    base = f"/redfish/v1/Chassis/{chassis_id}/NetworkAdapters"
    return _json({"@odata.id": base, "Name": "Network Adapters", "Members@odata.count": 1,
                  "Members": [{"@odata.id": f"{base}/NIC.Slot.1"}]})


def network_adapter(chassis_id: str, adapter_id: str) -> flask.Response:
    bmc = flask.g.bmc
    maker, model = bmc["nic_model"]
    return _json({
        "@odata.id": f"/redfish/v1/Chassis/{chassis_id}/NetworkAdapters/{adapter_id}",
        "@odata.type": "#NetworkAdapter.v1_5_0.NetworkAdapter", "Id": adapter_id,
        "Name": f"{maker} {model}", "Manufacturer": maker, "Model": model,
        "Status": {"State": "Enabled", "Health": "OK"},
        "Controllers": [{"FirmwarePackageVersion": bmc["firmware"].get(f"{maker} {model}")}],
    })


def _inventory_items(bmc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    items = {}
    for name, version in bmc["firmware"].items():
        item_id = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
        if bmc.get("enclosure"):  # one inventory for the enclosure: ids name the system
            item_id = f"{bmc['name']}-{item_id}"
        related = (f"/redfish/v1/Systems/{bmc['uuid']}" if name == "BIOS" else
                   f"/redfish/v1/Managers/{bmc['uuid']}" if name == "BMC" else
                   f"/redfish/v1/Chassis/{bmc['chassis_uuid']}/NetworkAdapters/NIC.Slot.1")
        items[item_id] = {
            "@odata.id": f"/redfish/v1/UpdateService/FirmwareInventory/{item_id}",
            "@odata.type": "#SoftwareInventory.v1_2_0.SoftwareInventory",
            "Id": item_id, "Name": name, "Version": version, "Updateable": True,
            "RelatedItem": [{"@odata.id": related}], "_component": name, "_bmc": bmc,
        }
    return items


def _group_items() -> dict[str, dict[str, Any]]:
    """Every firmware inventory member of the endpoint (of each system of an enclosure)."""
    return {k: v for bmc in flask.g.group for k, v in _inventory_items(bmc).items()}


def firmware_inventory() -> flask.Response:
    items = _group_items()
    return _json({"@odata.id": "/redfish/v1/UpdateService/FirmwareInventory",
                  "Name": "Firmware Inventory", "Members@odata.count": len(items),
                  "Members": [{"@odata.id": i["@odata.id"]} for i in items.values()]})


def firmware_item(item_id: str) -> flask.Response:
    item = _group_items().get(item_id)
    if item is None:
        return _error("no such firmware", 404)
    return _json({k: v for k, v in item.items() if not k.startswith("_")})


def simple_update() -> flask.Response:
    """Start an update task per the image's version; it completes after a second."""
    body = flask.request.get_json(force=True)
    image, targets = body.get("ImageURI"), body.get("Targets") or []
    items = _group_items()
    wanted = [items.get(t.rstrip("/").rsplit("/", 1)[-1]) for t in targets]
    if not image or not targets or None in wanted:
        return _error("Missing or unknown ImageURI/Targets", 400)
    version = Path(image).stem.rsplit("_", 1)[-1]
    task_id = str(next(_task_ids))
    with _lock:
        TASKS[task_id] = {"group": flask.g.group, "bmc": wanted[0]["_bmc"],
                          "installs": [_installed_on(w) for w in wanted if w],
                          "version": version, "done_at": time.time() + FLEET.get("task_s", 1.0)}
    uri = f"/redfish/v1/TaskService/Tasks/{task_id}"
    return _json(_task_doc(task_id, "Running", "OK", 10), 202,
                 {"Location": uri, "Retry-After": "1"})


def _installed_on(item: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Where an update of a member really lands: its system, or with the
    ``firmware-wrong-node`` fault, the next system of the enclosure."""
    bmc = item["_bmc"]
    if bmc.get("fault") == "firmware-wrong-node":
        group = BY_PORT[int(bmc["port"])]
        bmc = group[(group.index(bmc) + 1) % len(group)]
    return bmc, item["_component"]


def _task_doc(task_id: str, state: str, status: str, percent: int,
              message: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@odata.id": f"/redfish/v1/TaskService/Tasks/{task_id}",
        "@odata.type": "#Task.v1_4_3.Task", "Id": task_id, "Name": f"Update {task_id}",
        "TaskState": state, "TaskStatus": status, "PercentComplete": percent}
    if message:
        doc["Messages"] = [{"MessageId": "Update.1.0.ApplyFailed", "Message": message}]
    return doc


def task(task_id: str) -> flask.Response:
    record = TASKS.get(task_id)
    if record is None or record["group"] is not flask.g.group:
        return _error("no such task", 404)
    fault = record["bmc"].get("fault")
    if fault == "firmware-hang" or time.time() < record["done_at"]:
        return _json(_task_doc(task_id, "Running", "OK", 50), 202, {"Retry-After": "1"})
    if fault == "firmware-fail":
        return _json(_task_doc(task_id, "Exception", "Critical", 100,
                               "image verification failed"))
    with _lock:
        if not record.get("applied"):
            for bmc, component in record["installs"]:
                bmc["firmware"][component] = record["version"]
            record["applied"] = True
    return _json(_task_doc(task_id, "Completed", "OK", 100))


def build_app(fleet: dict[str, Any]) -> flask.Flask:
    """Configure the sushy-tools app with the fake driver and our extensions."""
    FLEET.update(fleet)
    for bmc in fleet["bmcs"]:
        BY_PORT.setdefault(int(bmc["port"]), []).append(bmc)
        BY_UUID[bmc["uuid"]] = bmc
    memoize.PersistentDict = InMemory  # type: ignore[misc]
    fakedriver.FakeDriver = FleetDriver  # type: ignore[misc]
    app: flask.Flask = emulator.app
    app.configure(extra_config=_emulator_config(fleet["bmcs"]))
    app.before_request(before_request)
    app.after_request(after_request)
    app.view_functions["UpdateService.update_service_simple_update"] = simple_update
    app.add_url_rule("/redfish/v1/Chassis/<chassis_id>/NetworkAdapters",
                     view_func=network_adapters)
    app.add_url_rule("/redfish/v1/Chassis/<chassis_id>/NetworkAdapters/<adapter_id>",
                     view_func=network_adapter)
    app.add_url_rule("/redfish/v1/UpdateService/FirmwareInventory",
                     view_func=firmware_inventory)
    app.add_url_rule("/redfish/v1/UpdateService/FirmwareInventory/<item_id>",
                     view_func=firmware_item)
    app.add_url_rule("/redfish/v1/TaskService/Tasks/<task_id>", view_func=task)
    return app


def _emulator_config(bmcs: list[dict[str, Any]]) -> dict[str, Any]:
    systems, storage, drives, chassis = [], {}, {}, []
    for bmc in bmcs:
        systems.append({"uuid": bmc["uuid"], "name": bmc["name"],
                        "power_state": bmc["power_state"],
                        "nics": [{"mac": mac} for mac in bmc["macs"]]})
        storage[bmc["uuid"]] = [{
            "Id": "1", "Name": "Storage Controller 1",
            "StorageControllers": [{"MemberId": "0", "Name": "RAID", "SpeedGbps": 12}],
            "Drives": [f"Disk.{i}" for i in range(bmc["drive_count"])]}]
        drives[(bmc["uuid"], "1")] = [
            {"Id": f"Disk.{i}", "Name": f"Disk {i}", "CapacityBytes": bmc["drive_bytes"],
             "Protocol": "NVMe"} for i in range(bmc["drive_count"])]
        chassis.append({"Id": bmc["chassis_uuid"], "Name": f"{bmc['name']}-chassis",
                        "UUID": bmc["chassis_uuid"]})
    return {"SUSHY_EMULATOR_FAKE_DRIVER": True, "SUSHY_EMULATOR_FAKE_SYSTEMS": systems,
            "SUSHY_EMULATOR_STORAGE": storage, "SUSHY_EMULATOR_DRIVES": drives,
            "SUSHY_EMULATOR_CHASSIS": chassis}


def serve(app: flask.Flask, ports: list[int]) -> None:
    """Serve the app on every port (one threaded server each) until killed."""
    servers = [make_server("127.0.0.1", port, app, threaded=True) for port in ports]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    print(f"READY {len(servers)} endpoints", flush=True)
    for thread in threads:
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleet", required=True, type=Path)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--listen-each", action="store_true", help="one port per BMC")
    mode.add_argument("--backend-port", type=int, help="one port; BMC named by header")
    args = parser.parse_args()
    fleet = json.loads(args.fleet.read_text())
    app = build_app(fleet)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app.logger.setLevel(logging.ERROR)
    ports = sorted({int(b["port"]) for b in fleet["bmcs"]}) if args.listen_each \
        else [args.backend_port]
    serve(app, ports)


if __name__ == "__main__":
    main()
