"""Redfish BMCs through sushy.

This is the only module that imports sushy. Every sushy, requests or JSON error
is translated here into one of the :mod:`onestack.drivers.redfish_errors`
classes, so callers see a node status and a reason, never a foreign exception.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TypeVar

import requests
import sushy
from sushy import exceptions as sushy_exc
from sushy.auth import BasicAuth
from sushy.connector import Connector

from onestack.drivers.redfish_errors import (
    BmcAuthFailed,
    BmcFault,
    BmcMalformedResponse,
    BmcRequestFailed,
    BmcTimeout,
    BmcTlsError,
    BmcUnreachable,
)
from onestack.drivers.redfish_ownership import Ownership, link_ids, software_images
from onestack.model.hardware import (
    Cpu,
    DiscoveryStatus,
    Drive,
    FirmwareComponent,
    Nic,
    NicAdapter,
    Node,
    NodeInventory,
    StorageController,
)

T = TypeVar("T")

# sushy logs every BMC error itself; we report them as node statuses instead, so
# its records reach an operator only if logging is configured (e.g. verbose mode).
logging.getLogger("sushy").addHandler(logging.NullHandler())

POWER_ACTIONS = {
    "on": sushy.ResetType.ON,
    "off": sushy.ResetType.FORCE_OFF,
    "shutdown": sushy.ResetType.GRACEFUL_SHUTDOWN,
    "cycle": sushy.ResetType.FORCE_RESTART,
}
BOOT_DEVICES = {
    "pxe": sushy.BootSource.PXE,
    "disk": sushy.BootSource.HDD,
    "cd": sushy.BootSource.CD,
}


@dataclass(frozen=True)
class BmcLogin:
    """How to reach one node's BMC: the node, its credentials, and time limits."""

    node: Node
    username: str
    password: str
    request_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0


class Deadline:
    """A point in time after which a node's remaining reads are skipped."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def expired(self) -> bool:
        return time.monotonic() >= self.at


@dataclass(frozen=True)
class TaskProgress:
    """The state of a Redfish task (e.g. a firmware update) as last read."""

    done: bool
    state: str | None
    status: str | None
    percent: int | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.done and self.state == "Completed" and self.status in (None, "OK", "Warning")


def _inner_cause(exc: BaseException) -> BaseException | None:
    """The requests exception sushy wrapped (it raises inside ``except``)."""
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, requests.RequestException):
        cause = cause.__cause__ or cause.__context__
    return cause


def _short(text: object, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _essence(exc: BaseException) -> str:
    """The telling part of a urllib3 error chain (``Connection refused``...)."""
    text = str(exc)
    for pattern in (r"\[SSL: [^\]]+\][^'\")]*", r"\[Errno -?\d+\] [^'\")]+",
                    r"certificate verify failed[^'\")]*", r"Connection refused"):
        found = re.search(pattern, text)
        if found:
            return found.group(0).strip()
    return _short(text, 120)


_MARKUP = re.compile(r"<[^>]+>")
_HEADLINE = re.compile(r"<(title|h1)[^>]*>(.*?)</\1>", re.IGNORECASE | re.DOTALL)


def _readable_detail(detail: object, status: int | None) -> str:
    """A BMC's error message for an operator: no web-server page, no markup.

    A proxy or web server in front of the BMC may answer with an HTML page
    (sometimes wrapped in the Redfish error's message); its headline, or the
    HTTP status phrase, is what the operator needs.
    """
    text = str(detail or "")
    if _MARKUP.search(text):
        headline = _HEADLINE.search(text)
        text = _MARKUP.sub(" ", headline.group(2) if headline else text)
        text = html.unescape(" ".join(text.split()))
    if not text:
        try:
            text = HTTPStatus(status or 0).phrase
        except ValueError:
            text = "no detail"
    return _short(text)


def _translate_connection(login: BmcLogin, exc: BaseException) -> BmcFault:
    node, address = login.node.name, login.node.bmc
    cause = _inner_cause(exc)
    if isinstance(cause, requests.exceptions.SSLError):
        return BmcTlsError(node, address, f"TLS failure: {_essence(cause)}")
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return BmcUnreachable(node, address,
                              f"no connection within {login.connect_timeout_s:g}s")
    if isinstance(cause, requests.exceptions.Timeout):
        return BmcTimeout(node, address,
                          f"no answer within {login.request_timeout_s:g}s")
    if "Timeout" in str(exc):
        return BmcTimeout(node, address, _short(exc))
    return BmcUnreachable(node, address, f"cannot connect: {_essence(cause or exc)}")


def translate(login: BmcLogin, exc: BaseException) -> BmcFault:
    """Turn a sushy, requests or JSON exception into an onestack BMC error."""
    node, address = login.node.name, login.node.bmc
    if isinstance(exc, BmcFault):
        return exc
    if isinstance(exc, sushy_exc.AccessError):
        return BmcAuthFailed(node, address, f"credentials refused (HTTP {exc.status_code})")
    if isinstance(exc, json.JSONDecodeError):
        return BmcMalformedResponse(node, address, f"invalid JSON: {_short(exc)}")
    if isinstance(exc, sushy_exc.ConnectionError | requests.RequestException):
        return _translate_connection(login, exc)
    if isinstance(exc, sushy_exc.HTTPError):
        detail = _readable_detail(getattr(exc, "detail", None), exc.status_code)
        return BmcRequestFailed(node, address, f"HTTP {exc.status_code}: {detail}")
    if isinstance(exc, ValueError):
        return BmcMalformedResponse(node, address, f"bad value in payload: {_short(exc)}")
    if isinstance(exc, sushy_exc.MissingAttributeError | sushy_exc.MalformedAttributeError):
        return BmcMalformedResponse(node, address, _short(exc))
    if isinstance(exc, sushy_exc.UnknownDefaultError):
        return BmcRequestFailed(node, address,
                                f"{_short(exc)}; set system_id for this node in the site file")
    if isinstance(exc, KeyError | TypeError | AttributeError | IndexError):
        return BmcMalformedResponse(node, address,
                                    f"unexpected payload shape ({type(exc).__name__}: {exc})")
    return BmcRequestFailed(node, address, f"{type(exc).__name__}: {_short(exc)}")


def _enum_value(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _connector(base: str, login: BmcLogin) -> Connector:
    """A sushy connector that reads proxy and CA settings from the environment once.

    requests re-scans the environment for proxies on every request (about a
    third of the client's CPU in a 1,000-node discovery); we resolve them once
    per BMC with requests' own rules and turn the per-request scan off.
    """
    verify: bool | str = login.node.verify_tls
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    # One retry at most: a dead BMC must not cost sushy's default 10 x 3 s.
    conn = Connector(base, verify=verify, server_side_retries=1, server_side_retries_delay=0,
                     default_request_timeout=login.request_timeout_s,
                     connect_timeout=login.connect_timeout_s)
    session: requests.Session = conn._session
    session.proxies.update(requests.utils.get_environ_proxies(base))
    session.trust_env = False
    return conn


class RedfishBmc:
    """One open connection to one node's BMC.

    Use :func:`open_bmc` as a context manager; every public method raises only
    :class:`BmcFault` subclasses.
    """

    def __init__(self, login: BmcLogin, connector: Any = None) -> None:
        self.login = login
        base = login.node.bmc.rstrip("/")
        for suffix in ("/redfish/v1", "/redfish"):
            base = base.removesuffix(suffix)
        self._base = base
        self._conn = connector or _connector(base, login)
        self._root: Any = None
        self._system: Any = None

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            raise translate(self.login, exc) from exc

    def connect(self) -> None:
        """Read the service root (no credentials needed there)."""
        with self._translated():
            auth = BasicAuth(self.login.username, self.login.password)
            self._root = sushy.Sushy(self._base, auth=auth, connector=self._conn)

    def close(self) -> None:
        self._conn.close()

    def system(self) -> Any:
        """The node's ComputerSystem (the only one, or ``system_id``)."""
        if self._system is None:
            with self._translated():
                wanted = self.login.node.system_id
                if wanted and not wanted.startswith("/"):
                    wanted = f"{self._root._systems_path.rstrip('/')}/{wanted}"
                self._system = self._root.get_system(wanted)
        return self._system

    # -- discovery -------------------------------------------------------------

    def read_inventory(self, deadline: Deadline, started: float) -> NodeInventory:
        """Read everything discovery needs; sections that fail are listed as problems."""
        system = self.system()
        with self._translated():
            record = _system_record(system)
        problems: list[str] = []
        for section, reader in self._sections(system, record):
            if deadline.expired():
                problems.append(f"{section}: not read, node deadline of {deadline.seconds:g}s "
                                "passed")
                continue
            try:
                with self._translated():
                    record.update(reader())
            except BmcFault as fault:
                problems.append(f"{section}: {fault.reason}")
                if isinstance(fault, BmcTimeout | BmcUnreachable | BmcAuthFailed):
                    deadline.at = 0.0  # the BMC is gone; do not wait again per section
        record["firmware"] = _merge_firmware(record.pop("_bios", None), record.pop("_bmc", None),
                                             record.pop("_inventory", []),
                                             record.get("nic_adapters", []))
        status = DiscoveryStatus.PARTIAL if problems else DiscoveryStatus.OK
        return NodeInventory(node=self.login.node.name, bmc=self.login.node.bmc, status=status,
                             problems=problems, discovered_at=datetime.now(UTC),
                             duration_s=round(time.monotonic() - started, 3), **record)

    def _sections(self, system: Any, record: dict[str, Any]
                  ) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        return [
            ("processors", lambda: {"cpus": _read_cpus(system)}),
            ("network interfaces", lambda: {"nics": _read_nics(system)}),
            ("network adapters", lambda: {"nic_adapters": _read_adapters(system)}),
            ("storage", lambda: {"storage": _read_storage(system)}),
            ("BMC firmware", lambda: {"_bmc": _read_bmc_version(system)}),
            ("firmware inventory", lambda: {"_inventory": self._read_firmware_inventory(
                system, record.get("nic_adapters", []))}),
        ]

    def _ownership(self, system: Any, adapters: list[NicAdapter]) -> Ownership:
        """What on this BMC is the node's: its system, managers, chassis and their links."""
        doc: dict[str, Any] = system.json or {}
        links = _mapping(doc.get("Links"))
        systems = self._root.get_system_collection().members_identities
        images: dict[str, str] = {}
        for manager in system.managers:
            images.update(software_images(manager.json or {}))
        if len(systems) != 1 and _mapping(doc.get("Bios")).get("@odata.id"):
            images.update(_bios_images(system))
        return Ownership(
            system=system.path, managers=link_ids(links.get("ManagedBy")),
            chassis=link_ids(links.get("Chassis")), images=images,
            only_system=len(systems) == 1,
            adapters={a.uri: a.label for a in adapters if a.uri})

    def _read_firmware_inventory(self, system: Any, adapters: list[NicAdapter]
                                 ) -> list[FirmwareComponent]:
        """The node's members of the firmware inventory: only those it provably owns."""
        if not self._root._update_service_path:
            return []
        service = self._root.get_update_service()
        if not service._firmware_inventory_path:
            return []
        owner = self._ownership(system, adapters)
        return owner.components(service.firmware_inventory.get_members())

    # -- power and boot -------------------------------------------------------

    def power_state(self) -> str | None:
        """Re-read and return the node's power state (``On``/``Off``/...)."""
        with self._translated():
            system = self.system()
            system.refresh()
            return _enum_value(system.power_state)

    def reset(self, action: str) -> None:
        """Send a power action: ``on``, ``off``, ``shutdown`` or ``cycle``."""
        with self._translated():
            self.system().reset_system(POWER_ACTIONS[action])

    def set_boot_once(self, device: str) -> None:
        """Boot from ``pxe``, ``disk`` or ``cd`` on the next boot only."""
        with self._translated():
            self.system().set_system_boot_options(
                target=BOOT_DEVICES[device], enabled=sushy.BootSourceOverrideEnabled.ONCE)

    def boot_target(self) -> str | None:
        """Re-read and return the boot override target (``Pxe``, ``Hdd``, ``Cd``)."""
        with self._translated():
            system = self.system()
            system.refresh()
            return _enum_value(system.boot.target)

    def insert_virtual_media(self, image_url: str) -> None:
        """Insert an ISO image into the node's virtual CD drive."""
        with self._translated():
            for media in self.system().virtual_media.get_members():
                types = {_enum_value(t) for t in (media.media_types or [])}
                if types & {"CD", "DVD"}:
                    media.insert_media(image_url, inserted=True, write_protected=True)
                    media.refresh()
                    if media.image != image_url:
                        raise BmcRequestFailed(
                            self.login.node.name, self.login.node.bmc,
                            f"virtual media shows {media.image!r} after inserting {image_url}")
                    return
        raise BmcRequestFailed(self.login.node.name, self.login.node.bmc,
                               "no virtual CD/DVD drive exposed")

    # -- firmware -------------------------------------------------------------

    def firmware(self) -> list[FirmwareComponent]:
        """Re-read the node's firmware versions."""
        system = self.system()
        with self._translated():
            system.refresh()
            adapters = _read_adapters(system)
            items = self._read_firmware_inventory(system, adapters)
            return _merge_firmware(system.bios_version, _read_bmc_version(system), items,
                                   adapters)

    def start_firmware_update(self, image_uri: str, targets: list[str]) -> str:
        """Start a SimpleUpdate; return the task monitor URI to watch."""
        with self._translated():
            service = self._root.get_update_service()
            protocol = (sushy.UpdateTransferProtocolType.HTTPS if image_uri.startswith("https:")
                        else sushy.UpdateTransferProtocolType.HTTP)
            monitor = service.simple_update(image_uri, targets=targets or None,
                                            transfer_protocol=protocol)
            return str(monitor.task_monitor_uri)

    def task_progress(self, monitor_uri: str) -> TaskProgress:
        """Read a task monitor once: 202 means still running."""
        with self._translated():
            response = self._conn.get(path=monitor_uri)
            doc: dict[str, Any] = response.json() if response.content else {}
            messages = [str(m.get("Message", m.get("MessageId", "")))
                        for m in doc.get("Messages", []) if isinstance(m, dict)]
            done = response.status_code != 202 and doc.get("TaskState") not in (
                "Running", "New", "Starting", "Pending", "Stopping")
            return TaskProgress(done=done, state=doc.get("TaskState"),
                                status=doc.get("TaskStatus"),
                                percent=_int(doc.get("PercentComplete")), messages=messages)


@contextmanager
def open_bmc(login: BmcLogin, connector: Any = None) -> Iterator[RedfishBmc]:
    """Connect to a BMC (reads its service root) and close it afterwards.

    ``connector`` replaces sushy's HTTP connector (tests feed recorded payloads).
    """
    bmc = RedfishBmc(login, connector)
    try:
        bmc.connect()
        yield bmc
    finally:
        bmc.close()


def read_node(login: BmcLogin, deadline: Deadline, connector: Any = None) -> NodeInventory:
    """Discover one node; a BMC fault becomes an inventory with that status."""
    started = time.monotonic()
    try:
        with open_bmc(login, connector) as bmc:
            return bmc.read_inventory(deadline, started)
    except BmcFault as fault:
        return failed_inventory(login.node, fault.status, fault.reason, started)


def failed_inventory(node: Node, status: DiscoveryStatus, reason: str,
                     started: float | None = None) -> NodeInventory:
    """An inventory that records why a node could not be read at all."""
    took = time.monotonic() - started if started is not None else 0.0
    return NodeInventory(node=node.name, bmc=node.bmc, status=status, reason=reason,
                         discovered_at=datetime.now(UTC), duration_s=round(took, 3))


# -- translating sushy resources into inventory records --------------------------


def _system_record(system: Any) -> dict[str, Any]:
    doc: dict[str, Any] = system.json or {}
    status = _mapping(doc.get("Status"))
    summary = _mapping(doc.get("ProcessorSummary"))
    memory = _mapping(doc.get("MemorySummary")).get("TotalSystemMemoryGiB")
    return {
        "manufacturer": system.manufacturer, "model": system.model,
        "serial": system.serial_number, "power_state": _enum_value(system.power_state),
        "health": status.get("HealthRollup") or status.get("HealthRollUp") or status.get("Health"),
        "cpu_summary_count": _int(summary.get("Count")),
        "memory_gib": _float(memory),  # not sushy's size_gib: it truncates to int
        "_bios": system.bios_version,
    }


def _bios_images(system: Any) -> dict[str, str]:
    """Firmware members the system's Bios resource links to (a BMC need not expose it)."""
    try:
        return software_images(system.bios.json or {}, "BIOS")
    except sushy_exc.ResourceNotFoundError:
        return {}


def _read_cpus(system: Any) -> list[Cpu]:
    return [Cpu(socket=p.socket, manufacturer=p.manufacturer, model=p.model,
                cores=_int(p.total_cores), threads=_int(p.total_threads))
            for p in system.processors.get_members()
            if _enum_value(p.processor_type) in (None, "CPU")]


def _read_nics(system: Any) -> list[Nic]:
    nics = []
    for iface in system.ethernet_interfaces.get_members():
        doc = iface.json or {}
        nics.append(Nic(name=iface.name or iface.identity,
                        mac=(iface.mac_address or iface.permanent_mac_address or "").lower()
                        or None,
                        speed_mbps=_int(iface.speed_mbps), link=doc.get("LinkStatus"),
                        health=_enum_value(iface.status.health) if iface.status else None))
    return nics


def _read_adapters(system: Any) -> list[NicAdapter]:
    adapters = []
    for chassis in system.chassis:
        if not (chassis.json or {}).get("NetworkAdapters"):
            continue
        for adapter in chassis.network_adapters.get_members():
            adapters.append(NicAdapter(name=adapter.name, manufacturer=adapter.manufacturer,
                                       model=adapter.model, uri=adapter.path,
                                       firmware_version=_adapter_firmware(adapter.json or {})))
    return adapters


def _adapter_firmware(doc: dict[str, Any]) -> str | None:
    """An adapter's firmware as reported by its controllers (Redfish NetworkAdapter).

    Controllers[].FirmwarePackageVersion is where Intel E810, Mellanox and Broadcom
    adapters report it; not always the first controller.
    """
    controllers = doc.get("Controllers")
    for controller in controllers if isinstance(controllers, list) else []:
        version = _mapping(controller).get("FirmwarePackageVersion")
        if version:
            return str(version)
    return None


def _read_storage(system: Any) -> list[StorageController]:
    result = []
    for storage in system.storage.get_members():
        controllers = (storage.json or {}).get("StorageControllers") or [{}]
        first = controllers[0] if isinstance(controllers[0], dict) else {}
        drives = [_drive(d) for d in storage.drives]
        result.append(StorageController(name=storage.name or storage.identity,
                                        model=first.get("Model"),
                                        firmware_version=first.get("FirmwareVersion"),
                                        drives=drives))
    return result


def _drive(drive: Any) -> Drive:
    return Drive(name=drive.name or drive.identity, manufacturer=drive.manufacturer,
                 model=drive.model, serial=drive.serial_number,
                 capacity_bytes=_int(drive.capacity_bytes),
                 media_type=_enum_value(drive.media_type),
                 protocol=_enum_value(drive.protocol),
                 health=_enum_value(drive.status.health) if drive.status else None)


def _read_bmc_version(system: Any) -> str | None:
    managers = system.managers
    return str(managers[0].firmware_version) if managers and managers[0].firmware_version \
        else None


def _merge_firmware(bios: str | None, bmc: str | None, items: list[FirmwareComponent],
                    adapters: list[NicAdapter] | None = None) -> list[FirmwareComponent]:
    """BIOS, BMC and adapter versions from the node's own resources, then its inventory.

    ``items`` holds only the firmware inventory members the node owns; their
    version wins (it is what an update changes) and they bring the update target.
    """
    merged: dict[str, FirmwareComponent] = {}
    reported = [("BIOS", bios), ("BMC", bmc)] + [
        (a.label, a.firmware_version) for a in adapters or []]
    for component, version in reported:
        if version and component not in merged:
            merged[component] = FirmwareComponent(component=component, version=version,
                                                  owner="reported by the node's own resource")
    for item in items:
        known = merged.get(item.component)
        version = item.version or (known.version if known else None)
        merged[item.component] = item.model_copy(update={"version": version})
    return sorted(merged.values(), key=lambda c: c.component)
