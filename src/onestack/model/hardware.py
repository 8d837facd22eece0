"""Hardware nodes as declared in the site file, and what their BMCs report.

Pure data, no I/O. ``Node`` is what the operator declares; ``NodeInventory`` is
what discovery read from the node's BMC (and is stored in the site's state).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from ipaddress import ip_address
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

LOOPBACK_NAMES = ("localhost", "localhost.localdomain")

MAX_NODES = 10_000
_LABEL = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Node(BaseModel):
    """A physical machine with a Redfish BMC.

    ``credentials`` names an entry in the site's secrets store; the secrets hold
    ``<credentials>.username`` and ``<credentials>.password``. Credentials are
    never written inline in the site file.

    ``bmc`` must be an ``https://`` URL. Plain ``http://`` is accepted only for
    a loopback address (emulators, SSH tunnels) or with ``insecure_http: true``
    on the node, because Basic credentials would cross the network in clear.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Length caps and patterns on every string: they reach URLs, logs and secret names.
    name: str = Field(max_length=64, pattern=_LABEL)
    # Declared before ``bmc`` so that the bmc validator can see it.
    insecure_http: bool = Field(default=False,
                                description="Allow plain http to a non-loopback BMC")
    bmc: str = Field(max_length=255,
                     description="Redfish URL of the BMC, e.g. https://10.0.0.5")
    credentials: str = Field(max_length=64, pattern=_LABEL,
                             description="Name of the credentials entry in the site secrets")
    system_id: str | None = Field(default=None, max_length=255, pattern=r"^[^\s]+$",
                                  description="Redfish system identity; default: the only one")
    failure_domain: str | None = Field(default=None, max_length=64, pattern=_LABEL)
    role: str | None = Field(default=None, max_length=64, pattern=_LABEL)
    verify_tls: bool = Field(default=True, strict=True)

    @field_validator("bmc")
    @classmethod
    def _bmc_is_a_redfish_url(cls, value: str, info: ValidationInfo) -> str:
        problem = bmc_url_problem(value, bool(info.data.get("insecure_http")))
        if problem:
            raise ValueError(problem)
        return value


def _is_loopback(host: str) -> bool:
    if host.casefold() in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def bmc_url_problem(url: str, insecure_http: bool = False) -> str | None:
    """Why ``url`` is not an acceptable BMC address, or None when it is."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("https", "http") or not host:
        return "must be a URL like https://10.0.0.5 (scheme https, then the BMC's host)"
    if parts.username or parts.password:
        return "must not carry credentials; name a secrets entry in credentials instead"
    if parts.scheme == "http" and not (insecure_http or _is_loopback(host)):
        return ("plain http sends the BMC password unencrypted; use https, or set "
                "insecure_http: true on this node to accept that")
    return None


class DiscoveryStatus(StrEnum):
    """How reading a node's BMC went, in the operator's words."""

    OK = "ok"
    PARTIAL = "partial"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth-failed"
    TLS_ERROR = "tls-error"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"
    ERROR = "error"
    NO_CREDENTIALS = "no-credentials"

    @property
    def has_data(self) -> bool:
        """Whether an inventory with this status describes the machine at all."""
        return self in (DiscoveryStatus.OK, DiscoveryStatus.PARTIAL)


class Record(BaseModel):
    """Base of inventory records: frozen, tolerant of fields added later."""

    model_config = ConfigDict(frozen=True)


class Cpu(Record):
    socket: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    cores: int | None = None
    threads: int | None = None


class Nic(Record):
    name: str | None = None
    mac: str | None = None
    speed_mbps: int | None = None
    link: str | None = Field(default=None, description="LinkUp, LinkDown, NoLink or None")
    model: str | None = None
    health: str | None = None


class NicAdapter(Record):
    """A network adapter card (what the HCL certifies), as opposed to its ports."""

    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware_version: str | None = None
    uri: str | None = Field(default=None, description="The adapter's Redfish resource")

    @property
    def label(self) -> str:
        """Make and model (the model alone if it already starts with the make)."""
        make, model = (self.manufacturer or "").strip(), (self.model or "").strip()
        first = make.split(" ", 1)[0].casefold()
        if first and model.casefold().startswith(first):
            return model
        return f"{make} {model}".strip() or (self.name or "")


class Drive(Record):
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    capacity_bytes: int | None = None
    media_type: str | None = Field(default=None, description="HDD or SSD")
    protocol: str | None = None
    health: str | None = None


class StorageController(Record):
    name: str | None = None
    model: str | None = None
    firmware_version: str | None = None
    drives: list[Drive] = Field(default_factory=list)


class FirmwareComponent(Record):
    """One piece of firmware: ``component`` is the name the HCL baseline uses."""

    component: str
    version: str | None = None
    inventory_uri: str | None = Field(default=None,
                                      description="FirmwareInventory member, when exposed")
    updateable: bool | None = None
    owner: str | None = Field(default=None,
                              description="How the version is known to be this node's")


class NodeInventory(Record):
    """Everything discovery learned about one node, with how complete it is."""

    node: str
    bmc: str
    status: DiscoveryStatus
    reason: str | None = None
    problems: list[str] = Field(default_factory=list,
                                description="Parts that could not be read (partial data)")
    discovered_at: datetime
    duration_s: float = 0.0
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    power_state: str | None = None
    health: str | None = None
    cpus: list[Cpu] = Field(default_factory=list)
    cpu_summary_count: int | None = None
    memory_gib: float | None = None
    nics: list[Nic] = Field(default_factory=list)
    nic_adapters: list[NicAdapter] = Field(default_factory=list)
    storage: list[StorageController] = Field(default_factory=list)
    firmware: list[FirmwareComponent] = Field(default_factory=list)

    @property
    def partial(self) -> bool:
        """True when some parts of the machine could not be read."""
        return bool(self.problems) or self.status is DiscoveryStatus.PARTIAL

    @property
    def sockets(self) -> int:
        return len(self.cpus) or (self.cpu_summary_count or 0)

    @property
    def cores(self) -> int:
        return sum(c.cores or 0 for c in self.cpus)

    @property
    def drives(self) -> list[Drive]:
        return [d for ctl in self.storage for d in ctl.drives]

    def firmware_version(self, component: str) -> str | None:
        """Version of one firmware component, or None if not reported."""
        for item in self.firmware:
            if item.component == component:
                return item.version
        return None
