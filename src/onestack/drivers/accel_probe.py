"""Does hardware virtualisation work on a host? Boot a probe guest under KVM and see.

/dev/kvm existing proves little: on this machine kind a trivial KVM guest runs while a
Linux kernel hangs ("KVM internal error ... emulation failure") or QEMU aborts at once
with ``-cpu host`` ("failed to set MSR"). So the probe boots the test image
(``drivers.guest_image``) with ``-accel kvm -cpu host`` (what ``cpu_mode =
host-passthrough`` gives nova's guests), no network, 128 MiB, and waits for its
console marker for a bounded time (ADR 0016).

The probe runs on the host through its connection: one ``python3`` script (standard
library only, request on stdin, one marked JSON line back), so it works the same on
this machine and over SSH.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from onestack.core.host import HostConnection
from onestack.errors import CommandError

PROBE_MARK = "__onestack_kvm_probe="
BOOTED = "booted"
# What else a probe can find: no /dev/kvm, QEMU exited (error), KVM stopped the guest
# (internal error), or the marker did not come in time (a hang).
NO_KVM, QEMU_EXITED, KVM_ERROR, TIMEOUT = "no-kvm", "qemu-exited", "kvm-error", "timeout"

PROBE_SCRIPT = r"""
import json, os, shutil, subprocess, sys, time
req = json.load(sys.stdin)
work, limit, marker = req["work"], req["timeout"], req["marker"]
basis = os.uname().release + " " + (subprocess.run(
    ["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.split("\n")[0])
def answer(outcome, seconds=0.0, log=""):
    print(req["mark"] + json.dumps({"outcome": outcome, "seconds": round(seconds, 1),
                                    "detail": log[-600:], "basis": basis}))
    sys.exit(0)
if not os.path.exists("/dev/kvm"):
    answer("no-kvm", log="/dev/kvm does not exist")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
disk, console, qlog = (os.path.join(work, n) for n in ("disk.qcow2", "console.log", "qemu.log"))
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", req["image"],
                disk], check=True)
argv = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "128", "-nodefaults",
        "-nographic", "-monitor", "none", "-serial", "file:" + console,
        "-drive", "file=" + disk + ",if=virtio", "-net", "none"]
started = time.monotonic()
with open(qlog, "wb") as out:
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
outcome = "timeout"
while time.monotonic() - started < limit:
    if marker in read(console):
        outcome = "booted"
        break
    if qemu.poll() is not None:
        outcome = "qemu-exited"
        break
    if "KVM internal error" in read(qlog):
        outcome = "kvm-error"
        break
    time.sleep(0.2)
seconds = time.monotonic() - started
qemu.kill()
qemu.wait()
log = read(qlog).strip() or read(console).strip()
shutil.rmtree(work, ignore_errors=True)
answer(outcome, seconds, log)
"""


@dataclass(frozen=True)
class KvmProbe:
    """What a probe guest under KVM did on one host.

    ``basis`` names what the verdict holds for (host kernel and QEMU version): a
    recorded probe is stale once either changes."""

    outcome: str
    seconds: float = 0.0
    detail: str = ""
    basis: str = ""

    @property
    def booted(self) -> bool:
        return self.outcome == BOOTED

    def describe(self) -> str:
        """One line for the operator."""
        if self.booted:
            return f"a KVM guest booted in {self.seconds:.1f}s"
        reason = {NO_KVM: "no /dev/kvm", QEMU_EXITED: "QEMU exited under KVM",
                  KVM_ERROR: "KVM stopped the guest (internal error)",
                  TIMEOUT: f"a KVM guest did not boot within {self.seconds:.0f}s"}
        first = self.detail.strip().splitlines()[:1]
        return reason.get(self.outcome, self.outcome) + (f": {first[0]}" if first else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def from_dict(data: Any) -> KvmProbe | None:
    """A recorded probe (JSON), or None if it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("outcome"), str):
        return None
    return KvmProbe(str(data["outcome"]), float(data.get("seconds") or 0.0),
                    str(data.get("detail") or ""), str(data.get("basis") or ""))


def parse_answer(output: str) -> KvmProbe:
    """The probe script's marked line; CommandError if there is none."""
    for line in reversed(output.splitlines()):
        if line.startswith(PROBE_MARK):
            probe = from_dict(json.loads(line.removeprefix(PROBE_MARK)))
            if probe is not None:
                return probe
    raise CommandError("KVM probe", 1, output[-2000:])


def probe_kvm(host: HostConnection, image: Path, work: Path, marker: str,
              timeout: float = 45) -> KvmProbe:
    """Boot ``image`` under KVM on ``host`` until ``marker`` is on its console, for
    ``timeout`` seconds at most; the guest is killed and ``work`` removed after."""
    request = json.dumps({"image": str(image), "work": str(work), "marker": marker,
                          "timeout": timeout, "mark": PROBE_MARK})
    out = host.run(["python3", "-c", PROBE_SCRIPT], input=request, timeout=timeout + 60)
    return parse_answer(out)


def host_basis(host: HostConnection) -> str:
    """Host kernel and QEMU version, as the probe records them (cheap: no guest)."""
    kernel = host.run(["uname", "-r"], check=False).strip()
    qemu = host.run(["qemu-system-x86_64", "--version"], check=False).split("\n")[0]
    return f"{kernel} {qemu}".strip()
