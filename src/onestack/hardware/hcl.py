"""The hardware compatibility list shipped in ``onestack/catalog/hcl``.

``servers.yaml`` lists certified models and components, ``roles.yaml`` the
minimum resources per role, and ``firmware/<release>.yaml`` each release
bundle's firmware baseline.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from onestack.errors import CatalogError
from onestack.model.hardware import FirmwareComponent, NodeInventory


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CertifiedServer(Strict):
    manufacturer: str
    model: str
    roles: list[str]

    @property
    def key(self) -> str:
        return server_key(self.manufacturer, self.model)


class CertifiedNic(Strict):
    manufacturer: str
    model: str


class CertifiedComponents(Strict):
    nic_adapters: list[CertifiedNic] = Field(default_factory=list)
    storage_controllers: list[str] = Field(default_factory=list)
    drives: list[str] = Field(default_factory=list)


class RoleMinimums(Strict):
    """Minimum resources for one role."""

    min_memory_gib: float = 0
    min_cores: int = 0
    min_nics: int = 0
    min_nic_speed_mbps: int = 0
    min_drives: int = 0
    min_disk_gib: float = 0
    ssd_only: bool = False


class FirmwareTarget(Strict):
    """One component's baseline: the least a node may run, and what the bundle ships."""

    minimum: str
    expected: str
    image: str


class FirmwareBaseline(Strict):
    """A release bundle's firmware baseline: ``servers[model key][component]``."""

    release: str
    servers: dict[str, dict[str, FirmwareTarget]]

    def for_model(self, manufacturer: str | None, model: str | None) -> dict[str, FirmwareTarget]:
        return self.servers.get(server_key(manufacturer or "", model or ""), {})


class HardwareCompatibilityList(Strict):
    servers: list[CertifiedServer]
    components: CertifiedComponents
    roles: dict[str, RoleMinimums]
    baselines: dict[str, FirmwareBaseline] = Field(default_factory=dict)

    def server(self, manufacturer: str | None, model: str | None) -> CertifiedServer | None:
        """The certified entry for a model, matching names loosely (case, spaces)."""
        key = server_key(manufacturer or "", model or "")
        return next((s for s in self.servers if s.key == key), None)

    def baseline(self, release: str) -> FirmwareBaseline:
        """The firmware baseline of one release bundle."""
        try:
            return self.baselines[release]
        except KeyError:
            known = ", ".join(sorted(self.baselines)) or "none"
            raise CatalogError(f"firmware baseline {release}",
                               f"no baseline shipped for this release (known: {known})") from None


def server_key(manufacturer: str, model: str) -> str:
    """``Manufacturer/Model`` as written in baselines, normalised for matching."""
    return f"{_norm(manufacturer)}/{_norm(model)}"


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def normalise(text: str | None) -> str:
    """Names compared loosely: case and runs of spaces do not matter."""
    return _norm(text or "")


# Words BMCs add to a maker's name ("Intel Corporation", "Seagate Technology LLC").
CORPORATE_WORDS = frozenset({"inc", "inc.", "corp", "corp.", "corporation", "co", "co.",
                             "ltd", "ltd.", "llc", "limited", "gmbh", "technology",
                             "technologies"})


def loose(text: str | None) -> str:
    """A name compared loosely: case, spacing, commas and corporate suffixes ignored."""
    words = normalise(text).replace(",", " ").split()
    return " ".join(w for w in words if w not in CORPORATE_WORDS)


def part_key(manufacturer: str | None, model: str | None) -> str:
    """``maker model`` as compared with the HCL, whether or not the model repeats the maker.

    ``SEAGATE`` + ``ST16000NM004J``, ``Seagate Technology`` + ``SEAGATE ST16000NM004J``
    and the HCL's ``Seagate ST16000NM004J`` all give ``seagate st16000nm004j``.
    """
    maker, name = loose(manufacturer), loose(model)
    first = maker.split(" ", 1)[0] if maker else ""
    for prefix in dict.fromkeys(p for p in (maker, first) if p):
        if name.startswith(prefix + " "):
            name = name[len(prefix) + 1:]
            break
    return f"{maker} {name}".strip()


def part_matches(manufacturer: str | None, model: str | None, listed: str) -> bool:
    """Whether a reported part is an HCL entry written ``maker model`` (or ``model``)."""
    entry = loose(listed)
    return entry in (part_key(manufacturer, model), loose(model)) and bool(entry)


def component_entry(inventory: NodeInventory, component: str) -> FirmwareComponent | None:
    """The node's firmware component named ``component`` in a baseline (loosely matched)."""
    wanted = loose(component)
    return next((f for f in inventory.firmware if loose(f.component) == wanted), None)


def component_version(inventory: NodeInventory, component: str) -> str | None:
    """Version of a baseline component on the node, or None if not reported."""
    entry = component_entry(inventory, component)
    return entry.version if entry else None


def _read_yaml(path: Path | Any, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(what, f"cannot read: {exc}") from None


def load_hcl(directory: Path | None = None) -> HardwareCompatibilityList:
    """Load the HCL from ``directory``, or the one shipped in the package."""
    root: Any = directory or resources.files("onestack.catalog").joinpath("hcl")
    servers = _read_yaml(root / "servers.yaml", "hcl/servers.yaml") or {}
    roles = _read_yaml(root / "roles.yaml", "hcl/roles.yaml") or {}
    baselines = {}
    firmware_dir = root / "firmware"
    if firmware_dir.is_dir():
        for entry in sorted(firmware_dir.iterdir(), key=lambda p: p.name):
            if entry.name.endswith(".yaml"):
                data = _read_yaml(entry, f"hcl/firmware/{entry.name}")
                data["servers"] = {_key_of(k): v for k, v in (data.get("servers") or {}).items()}
                baselines[str(data.get("release"))] = data
    try:
        return HardwareCompatibilityList.model_validate(
            {**servers, "roles": roles.get("roles", {}), "baselines": baselines})
    except ValidationError as exc:
        raise CatalogError("hardware compatibility list", str(exc)) from None


def _key_of(written: str) -> str:
    manufacturer, _, model = written.partition("/")
    return server_key(manufacturer, model)


ALWAYS_PRESENT = ("BIOS", "BMC")


def baseline_applies(inventory: NodeInventory, component: str) -> bool:
    """Whether a baseline component concerns this node.

    BIOS and BMC always do; an adapter's firmware only if the node reports that
    firmware or has that adapter (a node without the card needs no firmware for it).
    """
    if component in ALWAYS_PRESENT or component_version(inventory, component) is not None:
        return True
    return any(part_matches(a.manufacturer, a.model, component) or loose(a.name) == loose(component)
               for a in inventory.nic_adapters)


_TOKEN = re.compile(r"\d+|[A-Za-z]+")


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key comparing versions field by field, numbers as numbers.

    Works for the formats vendors use for one component (``1.10.2``,
    ``U46 v1.72``, ``6.10.30.00``, ``1.45.455b66-rev4``) as long as both
    versions share that format, which is true within one baseline entry.
    """
    return tuple((0, int(t)) if t.isdigit() else (1, t.casefold())
                 for t in _TOKEN.findall(version))


def version_below(version: str, floor: str) -> bool:
    """True if ``version`` is older than ``floor``."""
    return version_key(version) < version_key(floor)
