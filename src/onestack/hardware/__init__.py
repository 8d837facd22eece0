"""Certified hardware: discovery over Redfish, HCL certification, firmware, power.

The public facade; callers (CLI, API) use these names only.
"""

from onestack.hardware.access import SecretsSnapshot, Timeouts, login_for, select_nodes
from onestack.hardware.certify import Certification, Reason, certify_fleet, certify_node
from onestack.hardware.discovery import discover_nodes
from onestack.hardware.firmware import (
    FirmwareAction,
    FirmwareChange,
    FirmwareOutcome,
    OnFailure,
    apply_firmware,
    plan_firmware,
)
from onestack.hardware.hcl import HardwareCompatibilityList, load_hcl
from onestack.hardware.power import ActionOutcome, power_nodes, set_boot_once
from onestack.hardware.store import InventoryStore

__all__ = [
    "ActionOutcome", "Certification", "FirmwareAction", "FirmwareChange", "FirmwareOutcome",
    "HardwareCompatibilityList", "InventoryStore", "OnFailure", "Reason", "SecretsSnapshot",
    "Timeouts",
    "apply_firmware", "certify_fleet", "certify_node", "discover_nodes", "load_hcl",
    "login_for", "plan_firmware", "power_nodes", "select_nodes", "set_boot_once",
]
