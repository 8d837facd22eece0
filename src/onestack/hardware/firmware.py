"""Firmware against the release bundle's baseline: a pure plan, then apply via Redfish.

``plan_firmware`` compares inventories with the baseline (no I/O).
``apply_firmware`` runs each update through the BMC's UpdateService, watches
the task to completion, re-reads the version, and records the outcome per node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum
from functools import partial

from pydantic import BaseModel, ConfigDict

from onestack.drivers.redfish import BmcLogin, RedfishBmc, open_bmc
from onestack.drivers.redfish_errors import BmcFault
from onestack.hardware.fanout import Progress, for_each_node
from onestack.hardware.hcl import (
    FirmwareBaseline,
    baseline_applies,
    component_entry,
    component_version,
    loose,
    version_below,
)
from onestack.hardware.store import InventoryStore
from onestack.model.hardware import FirmwareComponent, NodeInventory


class FirmwareAction(StrEnum):
    UPDATE = "update"
    NEWER = "newer-than-baseline"
    CANNOT_UPDATE = "cannot-update"


class FirmwareChange(BaseModel):
    """One component on one node that differs from the baseline."""

    model_config = ConfigDict(frozen=True)

    node: str
    component: str
    current: str | None
    expected: str
    minimum: str
    below_minimum: bool
    action: FirmwareAction
    image: str
    target: str | None
    note: str = ""


class OnFailure(StrEnum):
    """What the rest of a firmware plan does after one update fails."""

    STOP = "stop"
    CONTINUE = "continue"


class FirmwareOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    node: str
    component: str
    status: str  # updated, failed, timeout, skipped
    detail: str = ""
    version_after: str | None = None


def _change(inv: NodeInventory, component: str, current: str | None, minimum: str,
            expected: str, image: str) -> FirmwareChange | None:
    if current == expected:
        return None
    entry = component_entry(inv, component)
    target = entry.inventory_uri if entry else None
    if current is not None and not version_below(current, expected):
        action, note = FirmwareAction.NEWER, "newer than the baseline; left as is"
    elif target is None:
        action, note = FirmwareAction.CANNOT_UPDATE, _why_no_target(entry)
    else:
        action, note = FirmwareAction.UPDATE, ""
    return FirmwareChange(node=inv.node, component=component, current=current,
                          expected=expected, minimum=minimum, action=action, image=image,
                          below_minimum=current is None or version_below(current, minimum),
                          target=target, note=note)


def _why_no_target(entry: FirmwareComponent | None) -> str:
    if entry is not None and entry.owner and entry.owner.startswith("ambiguous"):
        return entry.owner
    return ("no member of the BMC's firmware inventory provably belongs to this node "
            "(see docs/hardware.md, firmware ownership)")


def plan_firmware(inventories: list[NodeInventory],
                  baseline: FirmwareBaseline) -> list[FirmwareChange]:
    """Every component, on every discovered node, whose version is not the baseline's."""
    changes = []
    for inv in inventories:
        if not inv.status.has_data:
            continue
        for component, want in sorted(baseline.for_model(inv.manufacturer, inv.model).items()):
            if not baseline_applies(inv, component):
                continue
            change = _change(inv, component, component_version(inv, component), want.minimum,
                             want.expected, want.image)
            if change is not None:
                changes.append(change)
    return changes


def _wait_task(bmc: RedfishBmc, monitor: str, timeout_s: float, poll_s: float) -> tuple[str, str]:
    ends_at = time.monotonic() + timeout_s
    while True:
        progress = bmc.task_progress(monitor)
        if progress.done:
            if progress.succeeded:
                return "ok", ""
            detail = "; ".join(progress.messages) or "no message"
            return "failed", f"task ended {progress.state}/{progress.status}: {detail}"
        if time.monotonic() >= ends_at:
            return "timeout", f"task still {progress.state} after {timeout_s:g}s"
        time.sleep(poll_s)


def _owned_entry(bmc: RedfishBmc, component: str) -> FirmwareComponent | None:
    """The node's component as its BMC reports it now (only members it provably owns)."""
    wanted = loose(component)
    return next((f for f in bmc.firmware() if loose(f.component) == wanted), None)


def _outcome(change: FirmwareChange, status: str, detail: str = "",
             after: str | None = None) -> FirmwareOutcome:
    return FirmwareOutcome(node=change.node, component=change.component, status=status,
                           detail=detail, version_after=after)


def _update_one(bmc: RedfishBmc, change: FirmwareChange, timeout_s: float,
                poll_s: float) -> FirmwareOutcome:
    """Update one component, targeting only the node's own inventory member.

    Before: the planned target must still be the member the node owns for that
    component (else refused, nothing sent). After: the node's own reading must
    show the new version; a BMC that updated something else is a failure.
    """
    before = _owned_entry(bmc, change.component)
    if before is None or before.inventory_uri is None or before.inventory_uri != change.target:
        found = before.inventory_uri if before else None
        return _outcome(change, "failed", f"refused: {change.target} is not the member of "
                        f"{change.node}'s firmware inventory for {change.component} (the BMC "
                        f"now links {found or 'none'} to it); run discover and plan again")
    monitor = bmc.start_firmware_update(change.image, [before.inventory_uri])
    status, detail = _wait_task(bmc, monitor, timeout_s, poll_s)
    if status != "ok":
        return _outcome(change, status, detail)
    after_entry = _owned_entry(bmc, change.component)
    after = after_entry.version if after_entry else None
    if after != change.expected:
        return _outcome(change, "failed", f"task completed but {change.node} still reports "
                        f"{change.component} {after} (was {before.version}, wanted "
                        f"{change.expected}): the update did not reach this node", after)
    return _outcome(change, "updated", after=after)


class _Run:
    """Shared state of one apply: the stop flag and the store to mark nodes in."""

    def __init__(self, store: InventoryStore | None, on_failure: OnFailure, timeout_s: float,
                 poll_s: float) -> None:
        self.store, self.on_failure = store, on_failure
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.stopped = threading.Event()

    def record(self, outcome: FirmwareOutcome) -> FirmwareOutcome:
        if self.store is not None and outcome.status != "skipped":
            self.store.mark_firmware(outcome.node, outcome.component, outcome.status,
                                     outcome.detail)
        if outcome.status in ("failed", "timeout") and self.on_failure is OnFailure.STOP:
            self.stopped.set()
        return outcome

    def skipped(self, change: FirmwareChange, why: str) -> FirmwareOutcome:
        return FirmwareOutcome(node=change.node, component=change.component, status="skipped",
                               detail=why)


def _apply_node(run: _Run, login: BmcLogin, changes: list[FirmwareChange]
                ) -> list[FirmwareOutcome]:
    outcomes: list[FirmwareOutcome] = []
    try:
        with open_bmc(login) as bmc:
            for change in changes:
                if run.stopped.is_set():
                    outcomes.append(run.skipped(change, "plan stopped after a failure"))
                    continue
                try:
                    outcomes.append(run.record(_update_one(bmc, change, run.timeout_s,
                                                           run.poll_s)))
                except BmcFault as fault:
                    outcomes.append(run.record(FirmwareOutcome(
                        node=change.node, component=change.component, status="failed",
                        detail=fault.reason)))
    except BmcFault as fault:
        done = {o.component for o in outcomes}
        outcomes += [run.record(FirmwareOutcome(node=c.node, component=c.component,
                                                status="failed", detail=fault.reason))
                     for c in changes if c.component not in done]
    return outcomes


def apply_firmware(changes: list[FirmwareChange], logins: dict[str, BmcLogin],
                   store: InventoryStore | None = None,
                   on_failure: OnFailure = OnFailure.STOP, task_timeout_s: float = 1800.0,
                   poll_s: float = 1.0, workers: int = 8,
                   progress: Progress | None = None) -> list[FirmwareOutcome]:
    """Apply the ``update`` changes, node by node in parallel, components in order."""
    run = _Run(store, on_failure, task_timeout_s, poll_s)
    by_node: dict[str, list[FirmwareChange]] = {}
    for change in changes:
        if change.action is FirmwareAction.UPDATE:
            by_node.setdefault(change.node, []).append(change)
    tasks: dict[str, Callable[[], list[FirmwareOutcome]]] = {
        node: partial(_apply_node, run, logins[node], items) for node, items in by_node.items()}
    deadline = (task_timeout_s + 120.0) * max(len(c) for c in by_node.values()) \
        * (-(-len(by_node) // workers)) if by_node else 0.0

    def timed_out(node: str) -> list[FirmwareOutcome]:
        return [run.record(FirmwareOutcome(node=node, component=c.component, status="timeout",
                                           detail="no result in time"))
                for c in by_node[node]]

    results = for_each_node(tasks, workers, deadline, timed_out, progress)
    return [o for node in by_node for o in results[node]]
