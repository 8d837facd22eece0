"""libvirt on a compute host, for real: libvirtd and virtlogd as programs of a real site
supervisord (no cloud), the KVM probe, and a guest of the test image defined, started
(TCG, 128 MiB, no NIC), booted to its console marker in the console log virtlogd
writes, destroyed and undefined, with no QEMU left.

Everything lives under /var/tmp/onestack-libvirt-e2e (ONESTACK_TEST_LIBVIRT_HOME) and
domains are named ostk-lv-*. libvirt's own state is the host's (/run/libvirt,
/var/lib/libvirt, /etc/libvirt/qemu.conf: ADR 0016), so the test refuses to run beside
another libvirt daemon rather than disturb it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.core.progress import PlainProgress
from onestack.drivers import accel_probe, libvirt
from onestack.drivers.guest_image import GuestImage, build_image
from onestack.drivers.host import LocalHost
from onestack.drivers.processes import MARKER_VARIABLE
from onestack.drivers.supervisor import Supervisor, render_supervisord_conf
from onestack.model.paths import SitePaths
from onestack.model.ports import Ports
from onestack.model.site import ComputeDriver, Host, Site
from onestack.services import libvirt as service
from onestack.services.base import ServiceContext
from onestack.steps.context import HostContext
from onestack.steps.hypervisor import recorded_decision

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.component,  # what tests/e2e/test_instances.py covers through a whole site
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"),
                       reason="libvirtd runs as root; its packages come from Debian"),
]

HOME = Path(os.environ.get("ONESTACK_TEST_LIBVIRT_HOME", "/var/tmp/onestack-libvirt-e2e"))
SITE = "ostk-lv"
BOOT_TIMEOUT = 240.0  # seconds to the console marker under TCG on a busy 2-core machine


def _context() -> ServiceContext:
    site = Site(name=SITE, release="2026.1", hosts=[Host(name="aio")], port_offset=800,
                compute_driver=ComputeDriver.LIBVIRT)
    paths = SitePaths(HOME, SITE)
    return ServiceContext(site=site, series=site.release, paths=paths, secrets={},
                          venv=paths.venv(site.release), ports=Ports(site.port_offset))


def _virsh(ctx: ServiceContext, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["virsh", "-c", service.uri(ctx), *args], capture_output=True,
                          text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"virsh {' '.join(args)} failed ({proc.returncode}): "
                             f"{proc.stdout}{proc.stderr}\n{_logs(ctx)}")
    return proc.stdout


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def _logs(ctx: ServiceContext) -> str:
    """Last lines of both daemons' program logs, for failure messages."""
    return "\n".join(f"--- {name}.log:\n{_tail(ctx.paths.log / f'{name}.log')}"
                     for name in ("libvirtd", "virtlogd"))


def _qemu_pids() -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,comm="], capture_output=True, text=True)
    return [int(f[0]) for f in (ln.split() for ln in out.stdout.splitlines())
            if len(f) == 2 and f[1].startswith("qemu-system")]


def _daemon_pids() -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,comm="], capture_output=True, text=True)
    return [int(f[0]) for f in (ln.split() for ln in out.stdout.splitlines())
            if len(f) == 2 and f[1] in ("libvirtd", "virtlogd", "virtqemud")]


@pytest.fixture(scope="module")
def image() -> GuestImage:
    return build_image(HOME / "images", say=print)


@pytest.fixture(scope="module")
def ctx(wrapper_packages: None, image: GuestImage) -> Iterator[ServiceContext]:
    """The site's supervisord with libvirt's steps applied (the KVM probe among them);
    afterwards every domain of the test destroyed and supervisord shut down."""
    if _daemon_pids():
        pytest.skip(f"a libvirt daemon already runs here (pids {_daemon_pids()}): one per host")
    context = _context()
    paths = context.paths
    for folder in (paths.run, paths.log, paths.site / "supervisor"):
        folder.mkdir(parents=True, exist_ok=True)
    (paths.run / "supervisord.conf").write_text(
        render_supervisord_conf(paths.run, paths.log, paths.site / "supervisor"))
    sup = Supervisor(paths.run / "supervisord.conf", paths.run / "supervisor.sock")
    hc = HostContext(LocalHost(), paths, sup, PlainProgress(sys.stdout))
    try:
        _apply(service.steps(context), hc)
        yield context
    finally:
        _destroy_test_domains(context)
        sup.shutdown()
        shutil.rmtree(paths.site, ignore_errors=True)


def _apply(steps: list, hc: HostContext) -> None:  # type: ignore[type-arg]
    for index, step in enumerate(steps, 1):
        started = time.monotonic()
        hc.progress.step_started(step, index, len(steps))
        if step.action.needed(step.action.probe(hc), None):
            step.action.apply(hc)
        hc.progress.step_done(step, time.monotonic() - started)


def _destroy_test_domains(ctx: ServiceContext) -> None:
    listed = subprocess.run(["virsh", "-c", service.uri(ctx), "list", "--all", "--name"],
                            capture_output=True, text=True, timeout=60).stdout.split()
    for domain in (d for d in listed if d.startswith("ostk-lv-")):
        _virsh(ctx, "destroy", domain, check=False)
        _virsh(ctx, "undefine", domain, check=False)


def _domain_xml(name: str, disk: Path, console: Path) -> str:
    """A guest as nova's libvirt driver defines one under TCG: q35, virtio disk, no
    <cpu> (cpu_mode none), the serial port logged to console.log by virtlogd."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'><log file='{console}' append='off'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def _instance(ctx: ServiceContext, image: GuestImage, name: str) -> tuple[Path, Path]:
    """A domain's folder as nova lays it out (base image, overlay disk, console.log),
    owned by the user QEMU runs as; returns (domain XML file, console log)."""
    instances = ctx.paths.data / "nova" / "instances"
    base, folder = instances / "_base", instances / name
    for path in (instances, base, folder):
        path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image.path, base / image.path.name)
    disk = folder / "disk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    str(base / image.path.name), str(disk)], check=True)
    subprocess.run(["chown", "-R", f"{service.QEMU_USER}:{service.QEMU_GROUP}",
                    str(instances)], check=True)
    xml = folder / "libvirt.xml"
    xml.write_text(_domain_xml(name, disk, folder / "console.log"))
    return xml, folder / "console.log"


def _wait_for(console: Path, marker: str, timeout: float, ctx: ServiceContext,
              domain: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if console.exists() and marker in console.read_bytes().decode(errors="replace"):
            return time.monotonic() - started
        if "running" not in _virsh(ctx, "domstate", domain, check=False):
            break
        time.sleep(0.5)
    qemu_log = Path("/var/log/libvirt/qemu") / f"{domain}.log"
    raise AssertionError(f"{domain}: no {marker!r} in {console} after "
                         f"{time.monotonic() - started:.0f}s (state "
                         f"{_virsh(ctx, 'domstate', domain, check=False).strip()})\n"
                         f"console:\n{_tail(console)}\nQEMU log:\n{_tail(qemu_log)}\n"
                         f"{_logs(ctx)}")


def test_daemons_run_under_the_site_supervisor(ctx: ServiceContext) -> None:
    sup = Supervisor(ctx.paths.run / "supervisord.conf", ctx.paths.run / "supervisor.sock")
    states = {n: sup.state(n) for n in ("virtlogd", "libvirtd")}
    assert states == {"virtlogd": "RUNNING", "libvirtd": "RUNNING"}, _logs(ctx)
    # Sockets and pid files in the site's run folder; messages in the program logs.
    assert service.socket_path(ctx).is_socket()
    pid = int((service.run_dir(ctx) / "libvirtd.pid").read_text())
    assert pid == sup.states()["libvirtd"]["pid"]  # no PID namespace: the same pid
    assert "libvirt version: 9." in (ctx.paths.log / "libvirtd.log").read_text()
    version = _virsh(ctx, "version")
    assert "QEMU 7." in version, version
    assert not libvirt.foreign_daemons(LocalHost(), ctx.paths.log)
    # Another site (another log folder) sees them as in its way.
    assert len(libvirt.foreign_daemons(LocalHost(), Path("/elsewhere/log"))) >= 2


def test_kvm_probe_recorded_its_decision(ctx: ServiceContext) -> None:
    record = service.accelerator_record(ctx).read_text()
    decision = recorded_decision(record)
    assert decision is not None, record
    print(f"\nKVM probe on this host: virt_type {decision.virt_type} ({decision.reason})")
    fragment = service.virt_fragment_path(ctx).read_text()
    assert f"virt_type = {decision.virt_type}" in fragment
    # Run once more by itself, and print what it saw.
    again = accel_probe.probe_kvm(LocalHost(), HOME / "images" / "onestack-guest.qcow2",
                                  ctx.paths.data / "libvirt" / "kvm-probe-again",
                                  "onestack-guest: boot done", service.PROBE_TIMEOUT)
    print(f"KVM probe again: {again.outcome} after {again.seconds:.1f}s: {again.describe()}")
    assert (again.booted, decision.virt_type) in ((True, "kvm"), (False, "qemu"))


def test_guest_boots_under_tcg_and_leaves_nothing(ctx: ServiceContext,
                                                  image: GuestImage) -> None:
    domain = "ostk-lv-guest"
    xml, console = _instance(ctx, image, domain)
    before = set(_qemu_pids())
    _virsh(ctx, "define", str(xml))
    started = time.monotonic()
    _virsh(ctx, "start", domain)
    try:
        seconds = _wait_for(console, image.console_markers["done"], BOOT_TIMEOUT, ctx, domain)
        total = time.monotonic() - started
        print(f"\nbench: virsh start -> '{image.console_markers['done']}' under TCG: "
              f"{total:.1f}s (marker seen {seconds:.1f}s after start returned)")
        qemu = sorted(set(_qemu_pids()) - before)
        assert len(qemu) == 1, qemu
        environ = Path(f"/proc/{qemu[0]}/environ").read_bytes()
        # QEMU is no process of the libvirtd program: a restart leaves it alone.
        assert MARKER_VARIABLE.encode() not in environ
        owner = subprocess.run(["ps", "-o", "user=", "-p", str(qemu[0])],
                               capture_output=True, text=True).stdout.strip()
        assert owner == service.QEMU_USER
        assert "-accel tcg" in Path(f"/proc/{qemu[0]}/cmdline").read_bytes().replace(
            b"\0", b" ").decode()
    finally:
        _virsh(ctx, "destroy", domain, check=False)
        _virsh(ctx, "undefine", domain, check=False)
    assert domain not in _virsh(ctx, "list", "--all", "--name")
    deadline = time.monotonic() + 20
    while set(_qemu_pids()) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not set(_qemu_pids()) - before, "a QEMU process outlived its domain"


def test_a_guest_outlives_a_libvirtd_restart(ctx: ServiceContext, image: GuestImage) -> None:
    domain = "ostk-lv-survivor"
    xml, _ = _instance(ctx, image, domain)
    sup = Supervisor(ctx.paths.run / "supervisord.conf", ctx.paths.run / "supervisor.sock")
    before = set(_qemu_pids())
    _virsh(ctx, "define", str(xml))
    _virsh(ctx, "start", domain)
    try:
        qemu = sorted(set(_qemu_pids()) - before)
        started = time.monotonic()
        sup.restart("libvirtd")
        stopped = time.monotonic() - started
        while not libvirt.LibvirtProbe(service.uri(ctx)).check()[0]:
            assert time.monotonic() - started < 90, _logs(ctx)
            time.sleep(0.5)
        print(f"\nlibvirtd restarted with a guest running: stopped in {stopped:.1f}s, "
              f"answering {time.monotonic() - started:.1f}s after the restart began")
        assert sorted(set(_qemu_pids()) - before) == qemu
        assert _virsh(ctx, "domstate", domain).strip() == "running"
    finally:
        _virsh(ctx, "destroy", domain, check=False)
        _virsh(ctx, "undefine", domain, check=False)
