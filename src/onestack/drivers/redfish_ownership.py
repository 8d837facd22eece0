"""Which members of a BMC's firmware inventory belong to one node.

A BMC that manages several systems (a blade enclosure, a multi-node chassis)
has one ``UpdateService/FirmwareInventory`` for all of them. A member belongs
to the node only when a link proves it:

* its ``RelatedItem`` points at the node's system, one of its managers
  (``Links.ManagedBy``), chassis (``Links.Chassis``) or network adapters (read
  through those chassis), or something under them (``.../Bios``);
* or the node's manager or BIOS names it in ``Links.ActiveSoftwareImage`` /
  ``Links.SoftwareImages``.

When the BMC manages this system only, every member is the node's: the service
serves one machine. Otherwise a member without such a link is left out, never
guessed from its position or name. Members that are not running firmware (Dell's
``Previous-`` rollback and ``Available-`` staged images) are left out too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from onestack.model.hardware import FirmwareComponent

NOT_RUNNING_PREFIXES = ("Previous-", "Available-")
ONLY_SYSTEM = "the BMC manages this system only"


def link_ids(links: Any) -> tuple[str, ...]:
    """The ``@odata.id`` of each link in a Redfish link array (or a single link)."""
    items = links if isinstance(links, list) else [links] if isinstance(links, dict) else []
    return tuple(str(i["@odata.id"]).rstrip("/") for i in items
                 if isinstance(i, dict) and i.get("@odata.id"))


def software_images(doc: dict[str, Any], component: str = "BMC") -> dict[str, str]:
    """Firmware inventory members a manager (or BIOS) says it runs: ``uri -> component``."""
    links = doc.get("Links")
    if not isinstance(links, dict):
        return {}
    uris = link_ids(links.get("ActiveSoftwareImage")) + link_ids(links.get("SoftwareImages"))
    return dict.fromkeys(uris, component)


def _under(uri: str, roots: Iterable[str]) -> bool:
    return any(uri == root or uri.startswith(root + "/") for root in roots)


@dataclass(frozen=True)
class Ownership:
    """What on a BMC is one node's, read from its system's links."""

    system: str
    managers: tuple[str, ...] = ()
    chassis: tuple[str, ...] = ()
    images: dict[str, str] = field(default_factory=dict)
    """Members the node's manager or BIOS link to, with the component they are."""
    only_system: bool = False
    adapters: dict[str, str] = field(default_factory=dict)
    """The node's network adapters: ``uri -> component name`` (make and model)."""

    @property
    def roots(self) -> tuple[str, ...]:
        adapters = (a.rstrip("/") for a in self.adapters)
        return (self.system.rstrip("/"), *self.managers, *self.chassis, *adapters)

    def why_owned(self, uri: str, related: tuple[str, ...]) -> str | None:
        """How a member is known to be the node's, or None if it is not provably."""
        if uri in self.images:
            return f"linked from the node's {self.images[uri]} (SoftwareImages)"
        mine = [r for r in related if _under(r, self.roots)]
        if mine:
            return f"RelatedItem {mine[0]}"
        return ONLY_SYSTEM if self.only_system else None

    def component(self, uri: str, identity: str, name: str, related: tuple[str, ...]) -> str:
        """The baseline's name for a member: BIOS, BMC, an adapter's make and model."""
        for adapter, adapter_name in self.adapters.items():
            if any(_under(r, [adapter.rstrip("/")]) for r in related):
                return adapter_name
        if uri in self.images:
            return self.images[uri]
        text = f"{identity} {name}".lower()
        system = self.system.rstrip("/")
        if "bios" in text or f"{system}/Bios" in related or (system in related and "uefi" in text):
            return "BIOS"
        if any(_under(r, self.managers) for r in related) or "bmc" in text:
            return "BMC"
        return name

    def components(self, members: Iterable[Any]) -> list[FirmwareComponent]:
        """The node's firmware components among inventory members (sushy resources)."""
        found: dict[str, list[FirmwareComponent]] = {}
        for member in members:
            item = self._item(member)
            if item is not None:
                found.setdefault(item.component, []).append(item)
        return [_one(items) for items in found.values()]

    def _item(self, member: Any) -> FirmwareComponent | None:
        if str(member.identity).startswith(NOT_RUNNING_PREFIXES):
            return None
        doc: dict[str, Any] = member.json or {}
        uri = str(member.path).rstrip("/")
        related = link_ids(doc.get("RelatedItem"))
        why = self.why_owned(uri, related)
        if why is None:
            return None
        name = self.component(uri, str(member.identity), str(member.name), related)
        return FirmwareComponent(component=name, version=member.version, inventory_uri=uri,
                                 updateable=member.updateable, owner=why)


def _one(items: list[FirmwareComponent]) -> FirmwareComponent:
    """One member per component; several are ambiguous, so none is a target."""
    if len(items) == 1:
        return items[0]
    uris = ", ".join(str(i.inventory_uri) for i in items)
    versions = {i.version for i in items}
    return items[0].model_copy(update={
        "inventory_uri": None,
        "version": items[0].version if len(versions) == 1 else None,
        "owner": f"ambiguous: {len(items)} of the node's members are {items[0].component} "
                 f"({uris})"})
