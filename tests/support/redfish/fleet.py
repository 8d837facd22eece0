"""A generated fleet of emulated BMCs: pure data, written as JSON for the emulator.

Each :class:`FakeBmc` is one node's BMC with its own port on 127.0.0.1. The
emulator (``fleet_emulator.py``) serves every BMC of a fleet from one process,
backed by sushy-tools' fake system driver.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

GIB = 1024**3


@dataclass
class FakeBmc:
    """One emulated BMC and the machine behind it."""

    name: str
    port: int
    manufacturer: str = "Dell Inc."
    model: str = "PowerEdge R650"
    memory_gib: int = 512
    sockets: int = 2
    cores_per_socket: int = 24
    cpu_model: str = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    nic_count: int = 2
    nic_speed_mbps: int = 25000
    nic_model: tuple[str, str] = ("Intel", "E810-XXVDA2")
    controller_model: str = "PERC H755 Front"
    drive_model: str = "Dell Ent NVMe P5600 MU U.2 3.2TB"
    drive_count: int = 2
    drive_bytes: int = 3200 * 10**9
    media_type: str = "SSD"
    health: str = "OK"
    power_state: str = "On"
    firmware: dict[str, str] = field(default_factory=lambda: {
        "BIOS": "1.10.2", "BMC": "6.10.30.00", "Intel E810-XXVDA2": "4.40"})
    username: str = "admin"
    password: str = "secret"
    fault: str | None = None
    """None, or one of: malformed, slow, storage-error, firmware-fail, firmware-hang,
    firmware-wrong-node (in an enclosure: the update lands on the next system)."""
    enclosure: str | None = None
    """BMCs naming the same enclosure share one endpoint (give them the same port and
    credentials) and one firmware inventory."""
    uuid: str = ""

    def __post_init__(self) -> None:
        if not self.uuid:
            self.uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"onestack-fake-bmc/{self.name}"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chassis_uuid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"onestack-fake-chassis/{self.name}"))

    def macs(self) -> list[str]:
        """Stable MAC addresses derived from the node's name."""
        seed = uuid.uuid5(uuid.NAMESPACE_URL, self.name).bytes
        return [f"52:54:{seed[0]:02x}:{seed[1]:02x}:{seed[2]:02x}:{i:02x}"
                for i in range(self.nic_count)]

    def as_spec(self) -> dict[str, Any]:
        spec = asdict(self)
        spec["macs"] = self.macs()
        spec["chassis_uuid"] = self.chassis_uuid
        spec["nic_model"] = list(self.nic_model)
        return spec


def write_fleet(path: Path, bmcs: list[FakeBmc], power_delay_s: float = 0.5) -> Path:
    """Write the fleet spec the emulator reads."""
    data = {"power_delay_s": power_delay_s, "bmcs": [b.as_spec() for b in bmcs]}
    path.write_text(json.dumps(data, indent=1))
    return path


def site_yaml(bmcs: list[FakeBmc], extra_nodes: list[dict[str, Any]] | None = None,
              release: str = "2026.1", roles: dict[str, str] | None = None) -> str:
    """A site file declaring one node per fake BMC (credentials by reference)."""
    roles = roles or {}
    lines = ["name: hwlab", f'release: "{release}"', "hosts:", "  - name: aio", "nodes:"]
    for bmc in bmcs:
        lines += [f"  - name: {bmc.name}", f"    bmc: {bmc.url}",
                  f"    credentials: bmc-{bmc.name}", f"    failure_domain: rack{bmc.port % 2}"]
        if bmc.enclosure:
            lines.append(f"    system_id: {bmc.uuid}")
        if bmc.name in roles:
            lines.append(f"    role: {roles[bmc.name]}")
    for node in extra_nodes or []:
        lines.append(f"  - name: {node['name']}")
        lines += [f"    {k}: {v}" for k, v in node.items() if k != "name"]
    return "\n".join(lines) + "\n"


def secrets_for(bmcs: list[FakeBmc], wrong: set[str] | None = None) -> dict[str, str]:
    """Secrets entries for the fleet; nodes in ``wrong`` get a wrong password."""
    wrong = wrong or set()
    values: dict[str, str] = {}
    for bmc in bmcs:
        values[f"bmc-{bmc.name}.username"] = bmc.username
        values[f"bmc-{bmc.name}.password"] = "not-the-password" if bmc.name in wrong \
            else bmc.password
    return values
