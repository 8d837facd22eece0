"""apply's checks around one update: the target must be the node's, the version must move.

A fake BMC stands in for the driver (this tests our logic, not Redfish); the
real thing is exercised against the emulator in tests/e2e.
"""

from __future__ import annotations

from onestack.drivers.redfish import TaskProgress
from onestack.hardware.firmware import FirmwareAction, FirmwareChange, _update_one
from onestack.model.hardware import FirmwareComponent

MINE = "/redfish/v1/UpdateService/FirmwareInventory/BIOS.1"
THEIRS = "/redfish/v1/UpdateService/FirmwareInventory/BIOS.2"


class FakeBmc:
    """Reports the node's own BIOS member; an update lands where ``lands`` says."""

    def __init__(self, owned: str | None, lands: str) -> None:
        self.owned, self.lands = owned, lands
        self.version = "1.7.0"
        self.sent: list[list[str]] = []

    def firmware(self) -> list[FirmwareComponent]:
        return [FirmwareComponent(component="BIOS", version=self.version,
                                  inventory_uri=self.owned)]

    def start_firmware_update(self, image: str, targets: list[str]) -> str:
        self.sent.append(targets)
        if self.lands == "mine":
            self.version = "1.10.2"
        return "/redfish/v1/TaskService/Tasks/1"

    def task_progress(self, monitor: str) -> TaskProgress:
        return TaskProgress(done=True, state="Completed", status="OK")


CHANGE = FirmwareChange(node="blade1", component="BIOS", current="1.7.0", expected="1.10.2",
                        minimum="1.8.2", below_minimum=True, action=FirmwareAction.UPDATE,
                        image="http://fw/BIOS_1.10.2.exe", target=MINE)


def test_update_targets_the_nodes_member_and_checks_it_moved() -> None:
    bmc = FakeBmc(MINE, lands="mine")
    outcome = _update_one(bmc, CHANGE, 5, 0)  # type: ignore[arg-type]
    assert (outcome.status, outcome.version_after) == ("updated", "1.10.2")
    assert bmc.sent == [[MINE]]


def test_update_that_reached_another_node_is_a_failure() -> None:
    bmc = FakeBmc(MINE, lands="elsewhere")
    outcome = _update_one(bmc, CHANGE, 5, 0)  # type: ignore[arg-type]
    assert outcome.status == "failed"
    assert outcome.detail == ("task completed but blade1 still reports BIOS 1.7.0 (was 1.7.0, "
                              "wanted 1.10.2): the update did not reach this node")


def test_target_no_longer_provably_the_nodes_is_refused_before_sending() -> None:
    for owned in (THEIRS, None):
        bmc = FakeBmc(owned, lands="mine")
        outcome = _update_one(bmc, CHANGE, 5, 0)  # type: ignore[arg-type]
        assert outcome.status == "failed" and outcome.detail.startswith("refused: ")
        assert bmc.sent == []
