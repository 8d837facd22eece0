"""libvirt on compute hosts as data: rendered files, programs, steps per host, nova's
settings for either compute driver."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from onestack.drivers.libvirt import NOVA_XMLNS
from onestack.drivers.supervisor import (
    PARENT_WRAPPER,
    TREE_WRAPPER,
    Program,
    supervised_command,
)
from onestack.model.site import ComputeDriver, Host, Role, Site, VirtType
from onestack.services import libvirt
from onestack.services.base import ServiceContext
from onestack.steps.hypervisor import DetectAccelerator, EnsureOnlyLibvirt

# The make_service_context fixture (tests/conftest.py) builds these.
ContextFactory = Callable[..., ServiceContext]


def _site(driver: ComputeDriver = ComputeDriver.LIBVIRT,
          virt: VirtType = VirtType.AUTO) -> Site:
    return Site(name="lv", release="2026.1", compute_driver=driver, virt_type=virt, hosts=[
        Host(name="ctl", address=IPv4Address("198.18.80.1"), roles=[Role.CONTROLLER]),
        Host(name="c1", address=IPv4Address("198.18.80.11"), roles=[Role.COMPUTE]),
        Host(name="c2", address=IPv4Address("198.18.80.12"), roles=[Role.COMPUTE])])


def test_sockets_pids_and_logs_belong_to_the_site(make_service_context: ContextFactory) -> None:
    ctx = make_service_context(_site())
    run = ctx.paths.run / "libvirt"
    conf = libvirt.libvirtd_conf(ctx)
    assert f'unix_sock_dir = "{run}"' in conf and 'log_outputs = "3:stderr"' in conf
    assert 'unix_sock_group = "nova"' in conf  # nova-compute's user, nobody else
    assert libvirt.uri(ctx) == f"qemu+unix:///system?socket={run}/libvirt-sock"
    # QEMU under its own account, never nova's (issue 21: an escape read nova.conf)
    qemu = libvirt.qemu_conf(ctx)
    assert 'user = "libvirt-qemu"' in qemu and 'group = "kvm"' in qemu
    assert "dynamic_ownership = 1" in qemu
    assert libvirt.QEMU_CONF in libvirt.config(ctx)
    virtlogd, libvirtd = libvirt.programs_on(ctx)
    assert libvirtd.command[-2:] == ["--pid-file", f"{run}/libvirtd.pid"]
    assert virtlogd.command[-2:] == ["--pid-file", f"{run}/virtlogd.pid"]
    for program in (virtlogd, libvirtd):  # foreground: supervisord holds them
        assert not {"-d", "--daemon"} & set(program.command)


def test_guests_outlive_libvirtd_no_pid_namespace(make_service_context: ContextFactory) -> None:
    for program in libvirt.programs_on(make_service_context(_site())):
        command = supervised_command(program)
        assert command[:len(PARENT_WRAPPER)] == list(PARENT_WRAPPER)
        assert "/usr/bin/unshare" not in command and "/usr/bin/tini" not in command
    # Every other program still owns its tree (ADR 0010).
    assert supervised_command(Program("x", ["x"]))[:len(TREE_WRAPPER)] == list(TREE_WRAPPER)


def test_steps_on_every_compute_host_at_once(make_service_context: ContextFactory) -> None:
    ctx = make_service_context(_site())
    steps = libvirt.steps(ctx)
    assert {s.host for s in steps} == {"c1", "c2"}
    assert {s.fanout for s in steps} == {libvirt.FANOUT}
    ids = [s.id for s in steps if s.host == "c1"]
    assert ids[0] == "libvirt/c1/packages" and ids[-1] == "libvirt/c1/accelerator"
    assert ids.index("libvirt/c1/only-libvirt") < ids.index("libvirt/c1/start:virtlogd") \
        < ids.index("libvirt/c1/start:libvirtd") < ids.index("libvirt/c1/accelerator")
    kinds = {type(s.action) for s in steps}
    assert {EnsureOnlyLibvirt, DetectAccelerator} <= kinds
    assert len(ids) == len(set(ids))


def test_no_libvirt_with_the_fake_driver(make_service_context: ContextFactory) -> None:
    ctx = make_service_context(_site(ComputeDriver.FAKE))
    assert libvirt.steps(ctx) == [] and libvirt.checks(ctx) == []
    assert libvirt.programs(ctx) == []  # (a self-heal test once killed "virtlogd" here)
    assert libvirt.nova_settings(ctx) == {
        "DEFAULT": {"compute_driver": "fake.FakeDriverWithoutFakeNodes"}}


def test_nova_settings_for_the_libvirt_driver(make_service_context: ContextFactory) -> None:
    ctx = make_service_context(_site())
    settings = libvirt.nova_settings(ctx)
    assert settings["DEFAULT"]["compute_driver"] == "libvirt.LibvirtDriver"
    assert settings["libvirt"]["connection_uri"] == libvirt.uri(ctx)
    assert "virt_type" not in settings["libvirt"]  # the host's fragment decides
    assert settings["vnc"] == {"enabled": "false"}
    helper = settings["nova_sys_admin"]["helper_command"]
    assert helper.startswith(f"sudo {ctx.bin('privsep-helper')} --config-file ")
    assert str(libvirt.virt_fragment_path(ctx)) in helper
    sudoers = libvirt.privsep_sudoers(ctx)
    # issue 21: the exact helper and configuration, not any argument
    assert sudoers == (f"nova ALL=(root) NOPASSWD: {ctx.paths.releases}/*/venv/bin/"
                       f"privsep-helper --config-file {ctx.paths.site}/etc/*/nova/nova.conf "
                       f"--config-file {libvirt.virt_fragment_path(ctx)} *\n")
    assert helper == f"sudo {ctx.bin('privsep-helper')} " + " ".join(
        libvirt.nova_config_files(ctx))  # what the rule allows
    files = libvirt.nova_config_files(ctx)
    assert files[-1] == str(libvirt.virt_fragment_path(ctx))  # read last: it wins


def test_virt_settings_per_decision() -> None:
    assert libvirt.virt_settings("qemu") == "[libvirt]\nvirt_type = qemu\ncpu_mode = none\n"
    assert "cpu_mode = host-passthrough" in libvirt.virt_settings("kvm")


def test_the_probe_step_carries_the_site_choice(make_service_context: ContextFactory) -> None:
    ctx = make_service_context(_site(virt=VirtType.QEMU))
    action = libvirt.detect_accelerator(ctx)
    assert action.requested == "qemu" and action.image_dir == ctx.paths.images
    assert dict(action.fragments).keys() == {"kvm", "qemu"}
    other = libvirt.detect_accelerator(make_service_context(_site()))
    assert action.fingerprint() != other.fingerprint()


def test_kvm_access_is_needed_only_where_dev_kvm_is_not_udevs() -> None:
    from onestack.steps.hypervisor import EnsureKvmAccess

    action = EnsureKvmAccess("nova")
    assert not action.needed(["absent"], None)  # no /dev/kvm: nothing to open
    assert action.needed(["root", "600", "nova"], None)
    assert action.needed(["kvm", "660", "nova"], None)  # nova not in group kvm
    assert not action.needed(["kvm", "660", "nova", "kvm"], "done")


def test_purge_removes_the_guests_nova_made_that_libvirt_still_defines(tmp_path: Path) -> None:
    """After libvirtd stopped: the site's nova's definitions go and their QEMU is
    killed; a guest nova did not make, another site's guest, and a process that
    merely reuses a stale pid, stay."""
    domains, running = tmp_path / "qemu", tmp_path / "run"
    (domains / "autostart").mkdir(parents=True)
    running.mkdir()
    instances = tmp_path / "site" / "data" / "nova" / "instances"
    nova_xml = (f'<domain><metadata><nova:instance xmlns:nova="{NOVA_XMLNS}1.1"/>'
                "<source file='{dir}/u/disk'/>")
    (domains / "instance-0000000a.xml").write_text(nova_xml.format(dir=instances))
    (domains / "instance-0000000b.xml").write_text(nova_xml.format(dir=instances))
    (domains / "instance-00000001.xml").write_text(nova_xml.format(dir=tmp_path / "other"))
    (domains / "autostart" / "instance-0000000a.xml").write_text("")
    (domains / "operators-vm.xml").write_text("<domain><name>operators-vm</name></domain>")
    guest = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "-name",
                              "guest=instance-0000000a,debug-threads=on"])
    bystander = subprocess.Popen(["sleep", "600"])
    (running / "instance-0000000a.pid").write_text(str(guest.pid))
    (running / "instance-0000000b.pid").write_text(str(bystander.pid))  # stale pid
    try:
        out = subprocess.run(list(libvirt.remove_guest_leftovers_script(instances, domains,
                                                                        running)),
                             capture_output=True, text=True, check=True).stdout
        assert out.split() == ["instance-0000000a", "instance-0000000b"]
        assert guest.wait(timeout=5) == -signal.SIGKILL
        assert bystander.poll() is None
        assert sorted(p.name for p in domains.rglob("*.xml")) == ["instance-00000001.xml",
                                                                  "operators-vm.xml"]
        assert list(running.iterdir()) == []
    finally:
        for proc in (guest, bystander):
            proc.kill()
            proc.wait()


def test_foreign_guests_are_nova_guests_with_disks_outside_the_site(tmp_path: Path) -> None:
    from onestack.drivers.host import LocalHost
    from onestack.drivers.libvirt import foreign_guests

    domains = tmp_path / "qemu"
    domains.mkdir()
    ours, theirs = tmp_path / "a" / "instances", tmp_path / "b" / "instances"
    xml = (f'<domain><metadata><nova:instance xmlns:nova="{NOVA_XMLNS}1.1"/>'
           "<source file='{dir}/u/disk'/>")
    (domains / "instance-00000002.xml").write_text(xml.format(dir=ours))
    (domains / "instance-00000001.xml").write_text(xml.format(dir=theirs))
    (domains / "operators-vm.xml").write_text("<domain><name>operators-vm</name></domain>")
    assert foreign_guests(LocalHost(), ours, domains) == ["instance-00000001"]
    assert foreign_guests(LocalHost(), theirs, domains) == ["instance-00000002"]
    assert foreign_guests(LocalHost(), ours, tmp_path / "none") == []
