"""The KVM decision and the hypervisor steps: pure rules, and apply against fakes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from onestack.core.digest import digest
from onestack.core.progress import SilentProgress
from onestack.drivers import accel_probe
from onestack.drivers.accel_probe import KvmProbe
from onestack.errors import ForeignGuestsError, HypervisorInUseError, KvmUnusableError
from onestack.model.paths import SitePaths
from onestack.steps import hypervisor
from onestack.steps.context import HostContext
from onestack.steps.hypervisor import (
    DetectAccelerator,
    EnsureNoForeignGuests,
    EnsureOnlyLibvirt,
    decide_virt_type,
    recorded_decision,
)

BASIS = "6.1.0-57-cloud-amd64 QEMU emulator version 7.2.22"
BOOTED = KvmProbe("booted", 3.2, "", BASIS)
HUNG = KvmProbe("kvm-error", 0.8, "KVM internal error. Suberror: 1", BASIS)
FRAGMENTS = (("kvm", "[libvirt]\nvirt_type = kvm\n"), ("qemu", "[libvirt]\nvirt_type = qemu\n"))


@pytest.mark.parametrize(("requested", "probe", "virt_type"), [
    ("auto", BOOTED, "kvm"),
    ("auto", HUNG, "qemu"),
    ("auto", KvmProbe("no-kvm"), "qemu"),
    ("auto", KvmProbe("timeout", 45.0), "qemu"),
    ("auto", None, "qemu"),
    ("qemu", BOOTED, "qemu"),  # the site's choice wins over a working KVM
    ("kvm", BOOTED, "kvm"),
    ("kvm", HUNG, "qemu"),  # the step turns this into KvmUnusableError
])
def test_kvm_only_where_a_probe_guest_booted(requested: str, probe: KvmProbe | None,
                                             virt_type: str) -> None:
    assert decide_virt_type(requested, probe).virt_type == virt_type


def test_reasons_say_what_the_probe_saw() -> None:
    assert decide_virt_type("auto", BOOTED).reason == "a KVM guest booted in 3.2s"
    assert decide_virt_type("auto", HUNG).reason == (
        "KVM stopped the guest (internal error): KVM internal error. Suberror: 1")
    assert "did not boot within 45s" in KvmProbe("timeout", 45.0).describe()


def test_probe_answer_is_parsed_from_its_marked_line() -> None:
    line = accel_probe.PROBE_MARK + json.dumps(BOOTED.to_dict())
    assert accel_probe.parse_answer(f"noise\n{line}\n") == BOOTED
    with pytest.raises(Exception, match="KVM probe"):
        accel_probe.parse_answer("Traceback ...")
    assert accel_probe.from_dict({"nothing": 1}) is None


def _action(requested: str = "auto") -> DetectAccelerator:
    return DetectAccelerator(requested, Path("/h/images"), Path("/h/work"),
                             Path("/h/accelerator.json"), Path("/h/nova-virt.conf"), FRAGMENTS)


def _fact(virt_type: str = "qemu", requested: str = "auto", basis: str = BASIS,
          fragment: str | None = None) -> dict[str, Any]:
    recorded = {"requested": requested, "virt_type": virt_type, "reason": "r",
                "probe": HUNG.to_dict()}
    text = fragment if fragment is not None else dict(FRAGMENTS)[virt_type]
    return {"recorded": recorded, "basis": basis, "fragment": digest(text)}


def test_probed_once_then_again_only_when_the_host_changes() -> None:
    action = _action()
    assert action.needed(_fact(), None)  # never done
    assert not action.needed(_fact(), "done")
    assert action.needed(_fact(basis="6.1.0-58-cloud-amd64 QEMU 7.2.23"), "done")
    assert action.needed(_fact(requested="qemu"), "done")  # the site changed its mind
    assert action.needed(_fact(fragment="edited by hand"), "done")
    assert action.needed({"recorded": None, "basis": BASIS, "fragment": None}, "done")
    # With qemu asked for, a new kernel does not matter: nothing is probed.
    assert not _action("qemu").needed(_fact(requested="qemu", basis=""), "done")


class FakeHost:
    """Files in a dict; any command answers with ``out``."""

    name = "c1"

    def __init__(self, out: str = "") -> None:
        self.files: dict[Path, str] = {}
        self.out = out

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 600, check: bool = True,
            input: str | None = None) -> str:
        return self.out

    def write_file(self, path: Path, content: str, *, mode: int = 0o644,
                   owner: str | None = None) -> bool:
        self.files[path] = content
        return True

    def read_file(self, path: Path) -> str | None:
        return self.files.get(path)


def _context(host: FakeHost) -> HostContext:
    return HostContext(host, SitePaths(Path("/h"), "lv"), None, SilentProgress())  # type: ignore[arg-type]


def test_apply_writes_the_decision_and_nova_fragment(monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeHost()
    monkeypatch.setattr(DetectAccelerator, "_boot", lambda self, ctx: BOOTED)
    _action().apply(_context(host))
    assert host.files[Path("/h/nova-virt.conf")] == dict(FRAGMENTS)["kvm"]
    decision = recorded_decision(host.files[Path("/h/accelerator.json")])
    assert decision == hypervisor.VirtDecision("kvm", "a KVM guest booted in 3.2s")


def test_kvm_required_but_hung_fails_naming_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeHost()
    monkeypatch.setattr(DetectAccelerator, "_boot", lambda self, ctx: HUNG)
    with pytest.raises(KvmUnusableError, match="host c1: virt_type kvm was asked for, but KVM"):
        _action("kvm").apply(_context(host))
    assert not host.files  # nothing half-decided


def test_qemu_asked_for_boots_no_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_boot(self: DetectAccelerator, ctx: HostContext) -> KvmProbe:
        raise AssertionError("probed")

    host = FakeHost()
    monkeypatch.setattr(DetectAccelerator, "_boot", no_boot)
    _action("qemu").apply(_context(host))
    assert host.files[Path("/h/nova-virt.conf")] == dict(FRAGMENTS)["qemu"]


def test_a_foreign_libvirt_stops_the_deploy(monkeypatch: pytest.MonkeyPatch) -> None:
    found = ["libvirtd (pid 812)"]
    monkeypatch.setattr(hypervisor.libvirt, "foreign_daemons", lambda host, log: found)
    guard = EnsureOnlyLibvirt(Path("/h/sites/lv/log"))
    ctx = _context(FakeHost())
    assert guard.needed(guard.probe(ctx), None)
    with pytest.raises(HypervisorInUseError,
                       match=r"host c1: .* \(libvirtd \(pid 812\)\); one libvirtd per host"):
        guard.apply(ctx)
    found.clear()
    assert not guard.needed(guard.probe(ctx), None)


def test_another_sites_guests_stop_the_deploy(monkeypatch: pytest.MonkeyPatch) -> None:
    found = ["instance-00000001"]
    monkeypatch.setattr(hypervisor.libvirt, "foreign_guests", lambda host, instances: found)
    guard = EnsureNoForeignGuests(Path("/h/sites/lv/data/nova/instances"))
    ctx = _context(FakeHost())
    assert guard.needed(guard.probe(ctx), None)
    with pytest.raises(ForeignGuestsError,
                       match=r"host c1: .*another site \(instance-00000001\)") as raised:
        guard.apply(ctx)
    assert "down --purge" in str(raised.value.hint)
    found.clear()
    assert not guard.needed(guard.probe(ctx), None)


def test_recorded_decision_ignores_garbage() -> None:
    assert recorded_decision(None) is None
    assert recorded_decision("{not json") is None
    assert recorded_decision('{"virt_type": "xen"}') is None
