"""Steps of a compute host's hypervisor: one libvirt per host, and KVM only where it
works (ADR 0016)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onestack.core.digest import digest
from onestack.drivers import accel_probe, libvirt
from onestack.drivers.accel_probe import KvmProbe
from onestack.drivers.host import LocalHost
from onestack.errors import ForeignGuestsError, HypervisorInUseError, KvmUnusableError
from onestack.steps.context import HostContext

AUTO, QEMU, KVM = "auto", "qemu", "kvm"


@dataclass(frozen=True)
class VirtDecision:
    """The hypervisor a compute host's guests run under, and why."""

    virt_type: str  # "kvm" or "qemu" (nova's [libvirt] virt_type)
    reason: str


def decide_virt_type(requested: str, probe: KvmProbe | None) -> VirtDecision:
    """Pure: KVM only where a probe guest booted under it; ``requested`` is the site's
    ``virt_type`` (``kvm`` turns a failed probe into an error, raised by the caller)."""
    if requested == QEMU:
        return VirtDecision(QEMU, "the site asks for qemu (software emulation)")
    if probe is None:
        return VirtDecision(QEMU, "KVM not probed")
    if probe.booted:
        return VirtDecision(KVM, probe.describe())
    return VirtDecision(QEMU, probe.describe())


# /dev/kvm as Debian's udev rule leaves it: rw for group kvm. Where nothing set it so
# (a container, a host without udev) only root can open it, and libvirt, which
# probes QEMU as root but checks KVM as the QEMU user, finds KVM "enabled when
# probing but not available now" and probes QEMU again on every call (5-12 s each:
# a server took 80 s to define instead of 20 s).
KVM_DEVICE = Path("/dev/kvm")
KVM_GROUP = "kvm"
KVM_MODE = 0o660


@dataclass(frozen=True)
class EnsureKvmAccess:
    """/dev/kvm (where the host has one) is rw for group kvm, and ``user`` (QEMU's)
    is in that group. Nothing to do on a host without /dev/kvm. Re-applied by every
    ``up`` (devtmpfs forgets it at boot)."""

    user: str
    kind: str = "device"

    def fingerprint(self) -> str:
        return digest(f"kvm-access|{self.user}|{KVM_GROUP}|{KVM_MODE:o}")

    def probe(self, ctx: HostContext) -> Any:
        script = (f'test -e {KVM_DEVICE} || {{ echo absent; exit 0; }}; '
                  f'stat -c "%G %a" {KVM_DEVICE}; id -nG {self.user} 2>/dev/null || true')
        return ctx.host.run(["sh", "-c", script]).split()

    def needed(self, fact: Any, done: str | None) -> bool:
        if not isinstance(fact, list) or fact == ["absent"]:
            return False
        return fact[:2] != [KVM_GROUP, f"{KVM_MODE:o}"] or KVM_GROUP not in fact[2:]

    def apply(self, ctx: HostContext) -> None:
        run = ctx.host.run
        if not run(["getent", "group", KVM_GROUP], check=False).strip():
            run(["groupadd", "--system", KVM_GROUP])
        run(["chgrp", KVM_GROUP, str(KVM_DEVICE)])
        run(["chmod", f"{KVM_MODE:o}", str(KVM_DEVICE)])
        run(["usermod", "--append", "--groups", KVM_GROUP, self.user])


@dataclass(frozen=True)
class EnsureOnlyLibvirt:
    """No libvirt daemon but the site's own on the host: a second one cannot run
    beside it (libvirt keeps one state under /run/libvirt per host)."""

    log_dir: Path  # the site's: its programs' markers start with it
    kind: str = "guard"

    def fingerprint(self) -> str:
        return digest(f"only-libvirt|{self.log_dir}")

    def probe(self, ctx: HostContext) -> Any:
        return libvirt.foreign_daemons(ctx.host, self.log_dir)

    def needed(self, fact: Any, done: str | None) -> bool:
        return bool(fact)

    def apply(self, ctx: HostContext) -> None:
        found = libvirt.foreign_daemons(ctx.host, self.log_dir)
        if found:
            raise HypervisorInUseError(ctx.host.name, ", ".join(found))


@dataclass(frozen=True)
class EnsureNoForeignGuests:
    """No guest of another site defined in the host's libvirt (one folder of guest
    definitions per host): checked before the site's nova-compute first starts there,
    which would refuse to, with a message about its database."""

    instances: Path  # the site's nova instances folder on the host
    kind: str = "guard"

    def fingerprint(self) -> str:
        return digest(f"no-foreign-guests|{self.instances}")

    def probe(self, ctx: HostContext) -> Any:
        return libvirt.foreign_guests(ctx.host, self.instances)

    def needed(self, fact: Any, done: str | None) -> bool:
        return bool(fact)

    def apply(self, ctx: HostContext) -> None:
        found = libvirt.foreign_guests(ctx.host, self.instances)
        if found:
            raise ForeignGuestsError(ctx.host.name, ", ".join(found))


@dataclass(frozen=True)
class DetectAccelerator:
    """Decide a compute host's ``virt_type`` there, at deploy time: boot the test image
    under KVM (``drivers.accel_probe``) unless the site asks for qemu; write nova's
    setting for the decision (``fragments``: virt_type -> text) to ``fragment`` and the
    probe and decision to ``record`` (JSON, what plan and status show). Probed again
    when the host's kernel or QEMU changes."""

    requested: str
    image_dir: Path  # the test image on this machine (built if missing), same path there
    work: Path
    record: Path
    fragment: Path
    fragments: tuple[tuple[str, str], ...] = field(repr=False)
    timeout: float = 45
    kind: str = "accelerator"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.requested, str(self.image_dir), str(self.work),
                                  str(self.record), str(self.fragment), self.fragments,
                                  self.timeout]))

    def probe(self, ctx: HostContext) -> Any:
        text = ctx.host.read_file(self.record)
        try:
            recorded = json.loads(text) if text else None
        except ValueError:
            recorded = None
        basis = "" if self.requested == QEMU else accel_probe.host_basis(ctx.host)
        return {"recorded": recorded, "basis": basis,
                "fragment": ctx.host.file_digest(self.fragment)}

    def needed(self, fact: Any, done: str | None) -> bool:
        if done is None or not isinstance(fact, dict):
            return True
        recorded = fact.get("recorded")
        if not isinstance(recorded, dict) or recorded.get("requested") != self.requested:
            return True
        probe = accel_probe.from_dict(recorded.get("probe"))
        if self.requested != QEMU and (probe is None or probe.basis != fact.get("basis")):
            return True  # a new kernel or QEMU: KVM may work now, or no more
        wanted = dict(self.fragments).get(str(recorded.get("virt_type")))
        return wanted is None or fact.get("fragment") != digest(wanted)

    def apply(self, ctx: HostContext) -> None:
        probe = None if self.requested == QEMU else self._boot(ctx)
        decision = decide_virt_type(self.requested, probe)
        if self.requested == KVM and decision.virt_type != KVM:
            raise KvmUnusableError(ctx.host.name, decision.reason)
        ctx.host.write_file(self.fragment, dict(self.fragments)[decision.virt_type],
                            mode=0o644)
        ctx.host.write_file(self.record, json.dumps({
            "requested": self.requested, "virt_type": decision.virt_type,
            "reason": decision.reason, "probe": probe.to_dict() if probe else None},
            indent=1) + "\n", mode=0o644)
        ctx.progress.message(f"{ctx.host.name}: virt_type {decision.virt_type} "
                             f"({decision.reason})")

    def _boot(self, ctx: HostContext) -> KvmProbe:
        from onestack.drivers.guest_image import build_image

        image = build_image(self.image_dir, say=ctx.progress.message)
        if not isinstance(ctx.host, LocalHost) and \
                ctx.host.file_digest(image.path) != image.sha256:
            ctx.host.ensure_dir(image.path.parent)
            ctx.host.put_file(image.path, image.path, mode=0o644)
        return accel_probe.probe_kvm(ctx.host, image.path, self.work,
                                     image.console_markers["done"], self.timeout)


def recorded_decision(text: str | None) -> VirtDecision | None:
    """A host's recorded decision (``DetectAccelerator.record``), for plan and status."""
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("virt_type") not in (KVM, QEMU):
        return None
    return VirtDecision(str(data["virt_type"]), str(data.get("reason") or ""))
