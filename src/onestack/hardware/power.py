"""Power actions and one-time boot overrides, each confirmed by reading the state back."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial

from pydantic import BaseModel, ConfigDict

from onestack.drivers.redfish import BmcLogin, RedfishBmc, open_bmc
from onestack.drivers.redfish_errors import BmcFault
from onestack.hardware.fanout import Progress, for_each_node

POWER_RESULT = {"on": "On", "off": "Off", "shutdown": "Off", "cycle": "On"}
BOOT_RESULT = {"pxe": "Pxe", "disk": "Hdd", "cd": "Cd"}


class ActionOutcome(BaseModel):
    """What happened on one node: ``ok`` only once the new state was read back."""

    model_config = ConfigDict(frozen=True)

    node: str
    action: str
    ok: bool
    state: str | None = None
    detail: str = ""


def _until(read: Callable[[], str | None], wanted: str, timeout_s: float,
           poll_s: float) -> str | None:
    ends_at = time.monotonic() + timeout_s
    state = read()
    while state != wanted and time.monotonic() < ends_at:
        time.sleep(poll_s)
        state = read()
    return state


def _power_one(login: BmcLogin, action: str, timeout_s: float, poll_s: float) -> ActionOutcome:
    wanted = POWER_RESULT[action]
    try:
        with open_bmc(login) as bmc:
            before = bmc.power_state()
            if action == "cycle" or before != wanted:
                bmc.reset(action)
            state = _until(bmc.power_state, wanted, timeout_s, poll_s)
    except BmcFault as fault:
        return ActionOutcome(node=login.node.name, action=action, ok=False, detail=fault.reason)
    ok = state == wanted
    detail = "" if ok else f"power is {state} after {timeout_s:g}s, wanted {wanted}"
    return ActionOutcome(node=login.node.name, action=action, ok=ok, state=state, detail=detail)


def _boot_one(login: BmcLogin, device: str, image: str | None, timeout_s: float,
              poll_s: float) -> ActionOutcome:
    wanted = BOOT_RESULT[device]
    try:
        with open_bmc(login) as bmc:
            _set_boot(bmc, device, image)
            state = _until(bmc.boot_target, wanted, timeout_s, poll_s)
    except BmcFault as fault:
        return ActionOutcome(node=login.node.name, action=f"boot {device}", ok=False,
                             detail=fault.reason)
    ok = state == wanted
    return ActionOutcome(node=login.node.name, action=f"boot {device}", ok=ok, state=state,
                         detail="" if ok else f"boot target reads {state}, wanted {wanted}")


def _set_boot(bmc: RedfishBmc, device: str, image: str | None) -> None:
    if image:
        bmc.insert_virtual_media(image)
    bmc.set_boot_once(device)


def power_nodes(logins: list[BmcLogin], action: str, confirm_timeout_s: float = 120.0,
                poll_s: float = 1.0, workers: int = 32,
                progress: Progress | None = None) -> list[ActionOutcome]:
    """Power ``on``/``off``/``shutdown``/``cycle`` nodes and wait for the state to show."""
    if action not in POWER_RESULT:
        raise ValueError(f"unknown power action {action}")
    tasks = {lg.node.name: partial(_power_one, lg, action, confirm_timeout_s, poll_s)
             for lg in logins}
    return _run(tasks, action, confirm_timeout_s, workers, progress)


def set_boot_once(logins: list[BmcLogin], device: str, image: str | None = None,
                  confirm_timeout_s: float = 30.0, poll_s: float = 1.0, workers: int = 32,
                  progress: Progress | None = None) -> list[ActionOutcome]:
    """Boot nodes once from ``pxe``, ``disk`` or ``cd`` (virtual media ``image``)."""
    if device not in BOOT_RESULT:
        raise ValueError(f"unknown boot device {device}")
    tasks = {lg.node.name: partial(_boot_one, lg, device, image, confirm_timeout_s, poll_s)
             for lg in logins}
    return _run(tasks, f"boot {device}", confirm_timeout_s, workers, progress)


def _run(tasks: Mapping[str, Callable[[], ActionOutcome]], action: str, timeout_s: float,
         workers: int, progress: Progress | None) -> list[ActionOutcome]:
    waves = -(-len(tasks) // max(1, workers)) if tasks else 0
    deadline = waves * (timeout_s + 60.0)

    def timed_out(node: str) -> ActionOutcome:
        return ActionOutcome(node=node, action=action, ok=False, detail="no result in time")

    return list(for_each_node(dict(tasks), workers, deadline, timed_out, progress).values())
