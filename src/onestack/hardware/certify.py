"""Certification: inventory + HCL + release (+ intended role) -> a verdict with every reason.

Pure functions, no I/O: every rule is a small function returning the reasons it
finds, and :func:`certify_node` collects them all (it never stops at the first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import BaseModel, ConfigDict, Field

from onestack.hardware.hcl import (
    FirmwareBaseline,
    HardwareCompatibilityList,
    RoleMinimums,
    baseline_applies,
    component_version,
    loose,
    normalise,
    part_key,
    part_matches,
    version_below,
)
from onestack.model.hardware import NodeInventory

GIB = 1024**3


class Reason(BaseModel):
    """Why a node is not certified (or not eligible for a role)."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    role: str | None = Field(default=None, description="Set when it concerns one role only")


class Certification(BaseModel):
    """The verdict for one node."""

    model_config = ConfigDict(frozen=True)

    node: str
    certified: bool
    role: str | None = None
    reasons: list[Reason] = Field(default_factory=list)
    eligible_roles: list[str] = Field(default_factory=list)


Rule = Callable[[NodeInventory, HardwareCompatibilityList, FirmwareBaseline], list[Reason]]


def check_discovery(inv: NodeInventory, hcl: HardwareCompatibilityList,
                    baseline: FirmwareBaseline) -> list[Reason]:
    """A node whose BMC could not be read fully cannot be certified."""
    if not inv.status.has_data:
        return [Reason(code="not-discovered",
                       message=f"discovery failed ({inv.status.value}): {inv.reason}")]
    return [Reason(code="inventory-partial", message=f"could not read {p}")
            for p in inv.problems]


def check_model(inv: NodeInventory, hcl: HardwareCompatibilityList,
                baseline: FirmwareBaseline) -> list[Reason]:
    if hcl.server(inv.manufacturer, inv.model) is None:
        return [Reason(code="unknown-model",
                       message=f"server model {inv.manufacturer} {inv.model} is not certified")]
    return []


def check_health(inv: NodeInventory, hcl: HardwareCompatibilityList,
                 baseline: FirmwareBaseline) -> list[Reason]:
    if inv.health != "OK":
        return [Reason(code="health-not-ok", message=f"health rollup is {inv.health or 'unknown'}")]
    return []


def check_components(inv: NodeInventory, hcl: HardwareCompatibilityList,
                     baseline: FirmwareBaseline) -> list[Reason]:
    """Every NIC adapter, storage controller and drive must be on the list.

    Makes and models are matched as BMCs report them: case, spacing, corporate
    suffixes and a model that repeats the make do not matter.
    """
    parts = hcl.components
    nics = {part_key(n.manufacturer, n.model) for n in parts.nic_adapters}
    controllers = {normalise(c) for c in parts.storage_controllers}
    reasons = [Reason(code="nic-not-certified",
                      message=f"NIC {a.manufacturer} {a.model} is not certified (compared as "
                              f"'{part_key(a.manufacturer, a.model)}')")
               for a in inv.nic_adapters if part_key(a.manufacturer, a.model) not in nics]
    reasons += [Reason(code="storage-controller-not-certified",
                       message=f"storage controller {c.model} is not certified")
                for c in inv.storage if c.model and normalise(c.model) not in controllers]
    return reasons + _drive_reasons(inv, parts.drives)


def _drive_reasons(inv: NodeInventory, listed: list[str]) -> list[Reason]:
    uncertified: dict[tuple[str | None, str | None], int] = {}
    for drive in inv.drives:
        if not any(part_matches(drive.manufacturer, drive.model, e) for e in listed):
            key = (drive.manufacturer, drive.model)
            uncertified[key] = uncertified.get(key, 0) + 1
    return [Reason(code="drive-not-certified",
                   message=f"{count} drive(s) {maker or '(no manufacturer)'} "
                           f"{model or '(no model)'} not certified (compared as "
                           f"'{part_key(maker, model)}' and '{loose(model)}' with the HCL's "
                           f"drives)")
            for (maker, model), count in sorted(uncertified.items(), key=str)]


def check_firmware(inv: NodeInventory, hcl: HardwareCompatibilityList,
                   baseline: FirmwareBaseline) -> list[Reason]:
    """Each baseline component must be reported and at least its minimum version."""
    reasons = []
    for component, target in sorted(baseline.for_model(inv.manufacturer, inv.model).items()):
        if not baseline_applies(inv, component):
            continue
        version = component_version(inv, component)
        if version is None:
            reasons.append(Reason(code="firmware-not-reported",
                                  message=f"{component} firmware version not reported"))
        elif version_below(version, target.minimum):
            reasons.append(Reason(
                code="firmware-below-baseline",
                message=f"{component} firmware {version} is below the {baseline.release} "
                        f"minimum {target.minimum} (expected {target.expected})"))
    return reasons


HARDWARE_RULES: tuple[Rule, ...] = (check_model, check_health, check_components,
                                    check_firmware)


def hardware_reasons(inv: NodeInventory, hcl: HardwareCompatibilityList,
                     baseline: FirmwareBaseline) -> list[Reason]:
    """Every hardware-level reason; an undiscovered node has only that one."""
    reasons = check_discovery(inv, hcl, baseline)
    if not inv.status.has_data:
        return reasons
    return reasons + [r for rule in HARDWARE_RULES for r in rule(inv, hcl, baseline)]


def role_shortfalls(inv: NodeInventory, role: str, need: RoleMinimums) -> list[Reason]:
    """What a node lacks for one role's minimum resources."""
    checks = [
        ("too-little-memory", inv.memory_gib or 0, need.min_memory_gib, "GiB of memory"),
        ("too-few-cores", inv.cores, need.min_cores, "CPU cores"),
        ("too-few-nics", _fast_nics(inv, need.min_nic_speed_mbps), need.min_nics,
         f"NIC ports of at least {need.min_nic_speed_mbps // 1000} Gb/s"),
        ("too-few-drives", len(_usable_drives(inv, need)), need.min_drives,
         "SSD drives" if need.ssd_only else "drives"),
        ("too-little-disk", _disk_gib(inv, need), need.min_disk_gib, "GiB of disk"),
    ]
    return [Reason(code=code, role=role,
                   message=f"{role} needs {_num(minimum)} {what}, node has {_num(have)}")
            for code, have, minimum, what in checks if have < minimum]


def _fast_nics(inv: NodeInventory, speed: int) -> int:
    return sum(1 for n in inv.nics if (n.speed_mbps or 0) >= speed)


def _usable_drives(inv: NodeInventory, need: RoleMinimums) -> list[int]:
    return [d.capacity_bytes or 0 for d in inv.drives
            if not need.ssd_only or (d.media_type or "").upper() == "SSD"]


def _disk_gib(inv: NodeInventory, need: RoleMinimums) -> float:
    return round(sum(_usable_drives(inv, need)) / GIB, 1)


def _num(value: float) -> str:
    return f"{value:g}"


def _roles_for(inv: NodeInventory, hcl: HardwareCompatibilityList) -> list[str]:
    server = hcl.server(inv.manufacturer, inv.model)
    return [r for r in (server.roles if server else []) if r in hcl.roles]


def certify_node(inv: NodeInventory, hcl: HardwareCompatibilityList,
                 baseline: FirmwareBaseline, role: str | None = None) -> Certification:
    """Certify one node (for its intended ``role``, if any), listing every reason."""
    reasons = hardware_reasons(inv, hcl, baseline)
    allowed = _roles_for(inv, hcl)
    shortfalls = {r: role_shortfalls(inv, r, hcl.roles[r]) for r in allowed}
    eligible = [r for r in allowed if not shortfalls[r]] if not reasons else []
    if role is not None:
        reasons += _role_reasons(inv, hcl, role, allowed, shortfalls)
    elif not reasons and not eligible:
        reasons.append(Reason(code="no-eligible-role",
                              message="meets the minimums of no role: " + "; ".join(
                                  r.message for rs in shortfalls.values() for r in rs)))
    return Certification(node=inv.node, certified=not reasons, role=role, reasons=reasons,
                         eligible_roles=eligible)


def _role_reasons(inv: NodeInventory, hcl: HardwareCompatibilityList, role: str,
                  allowed: list[str], shortfalls: dict[str, list[Reason]]) -> list[Reason]:
    if role not in hcl.roles:
        return [Reason(code="role-unknown", role=role,
                       message=f"role {role} is not one of {', '.join(sorted(hcl.roles))}")]
    if not inv.status.has_data or hcl.server(inv.manufacturer, inv.model) is None:
        return []  # already explained by the hardware reasons
    if role not in allowed:
        return [Reason(code="model-not-certified-for-role", role=role,
                       message=f"{inv.model} is not certified as {role}")]
    return shortfalls[role]


def certify_fleet(inventories: Iterable[NodeInventory], hcl: HardwareCompatibilityList,
                  baseline: FirmwareBaseline,
                  roles: dict[str, str | None] | None = None) -> list[Certification]:
    """Certify every node; ``roles`` maps node name to its intended role."""
    roles = roles or {}
    return [certify_node(inv, hcl, baseline, roles.get(inv.node)) for inv in inventories]
