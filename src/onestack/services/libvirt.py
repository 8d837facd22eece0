"""libvirt and QEMU on every compute host: libvirtd and virtlogd as programs of the
site's supervisord, and the nova settings of the libvirt driver (ADR 0016).

What a per-site instance can own, and what it cannot:

- its own: libvirtd's and virtlogd's configuration (``--config``), pid files, and
  libvirtd's sockets (``unix_sock_dir`` in the site's run folder); both log to
  stderr, i.e. to the program's log like every other program;
- the host's: QEMU driver state (/run/libvirt, /var/lib/libvirt, /var/log/libvirt/qemu),
  virtlogd's socket (/run/libvirt/virtlogd-sock, where the QEMU driver looks for it)
  and qemu.conf (read from /etc/libvirt by a privileged daemon). libvirt guards the
  state with a lock, so there is one libvirtd per host: a foreign one stops the
  deploy (``EnsureOnlyLibvirt``) instead of failing libvirtd's start.
"""

from __future__ import annotations

from pathlib import Path

from onestack.core.step import Step
from onestack.drivers.libvirt import (
    DOMAIN_DIR,
    VIRTLOGD_ADMIN_URI,
    LibvirtProbe,
    connection_uri,
    nova_definitions,
)
from onestack.drivers.processes import kill_if_running
from onestack.drivers.supervisor import Program
from onestack.model.paths import SITE_GROUP
from onestack.model.site import ComputeDriver, Host, Site
from onestack.services import oslo
from onestack.services.base import (
    Check,
    ServiceContext,
    config_steps,
    host_step,
    program_steps,
)
from onestack.services.base import sudoers_path as base_sudoers_path
from onestack.steps.actions import EnsureDirs, EnsureSystemUser, InstallPackages, WriteFile
from onestack.steps.hypervisor import (
    KVM,
    KVM_GROUP,
    QEMU,
    DetectAccelerator,
    EnsureKvmAccess,
    EnsureNoForeignGuests,
    EnsureOnlyLibvirt,
)

name = "libvirt"
kind = "infra"
FANOUT = "libvirt"  # every compute host's libvirt at once
# Installed on each compute host by its own step (on the controller with the site's
# infrastructure, ``registry.system_packages``). Not libvirt-daemon-system: it only adds
# the packaged daemons' start-up (systemd units, which pull systemd in) and their
# configuration, both unused here. genisoimage writes config drives; sudo starts
# nova-compute's privileged helper (oslo.privsep).
PACKAGES = ("libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients",
            "qemu-system-x86", "qemu-utils", "genisoimage", "sudo")
# The libvirt bindings every release environment links (ADR 0019), wherever it is
# built or shipped on a site with the libvirt driver.
BINDINGS = ("python3-libvirt",)
# QEMU runs as an account of its own (Debian's, libvirt's compiled-in default), group
# kvm, never as nova: a guest that escapes into its QEMU must not read nova.conf, use
# libvirtd or the switch's database (ADR 0021). libvirt's DAC driver gives each disk
# to it while its guest runs (dynamic ownership); nova's instances folder is open to
# group kvm, nothing else of nova's is.
QEMU_USER = "libvirt-qemu"
QEMU_GROUP = KVM_GROUP
# nova-compute drives libvirtd: the daemon's sockets are for nova's group only.
CLIENT_GROUP = "nova"
QEMU_CONF = Path("/etc/libvirt/qemu.conf")  # fixed for a privileged libvirtd
# Where a privileged libvirtd keeps running guests' state (fixed; definitions: DOMAIN_DIR).
DOMAIN_RUN_DIR = Path("/run/libvirt/qemu")
PROBE_TIMEOUT = 45.0  # seconds for the KVM probe guest (it boots in a few)

LIBVIRTD = "/usr/sbin/libvirtd"
VIRTLOGD = "/usr/sbin/virtlogd"


def hosts(site: Site) -> list[Host]:
    """Every compute host runs libvirt (with the libvirt compute driver)."""
    return site.computes if site.compute_driver == ComputeDriver.LIBVIRT else []


def run_dir(ctx: ServiceContext) -> Path:
    return ctx.paths.run / "libvirt"


def socket_path(ctx: ServiceContext) -> Path:
    """libvirtd's read-write socket (``unix_sock_dir``/libvirt-sock)."""
    return run_dir(ctx) / "libvirt-sock"


def uri(ctx: ServiceContext) -> str:
    """The site libvirtd's URI for nova and virsh on a compute host."""
    return connection_uri(socket_path(ctx))


def _etc(ctx: ServiceContext) -> Path:
    return ctx.etc_infra(name)


def virt_fragment_path(ctx: ServiceContext) -> Path:
    """nova settings for the host's decided virt_type (written by its probe step),
    read by nova-compute after nova.conf."""
    return _etc(ctx) / "nova-virt.conf"


def _header(ctx: ServiceContext, what: str) -> str:
    return f"# {what}: written by onestack for site {ctx.site.name} (ADR 0016)\n"


def libvirtd_conf(ctx: ServiceContext) -> str:
    """libvirtd.conf: sockets in the site's run folder, open to nova's group only."""
    return _header(ctx, "libvirtd") + f"""unix_sock_dir = "{run_dir(ctx)}"
unix_sock_group = "{CLIENT_GROUP}"
unix_sock_ro_perms = "0770"
unix_sock_rw_perms = "0770"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:stderr"
"""


def virtlogd_conf(ctx: ServiceContext) -> str:
    """virtlogd.conf: its own messages to stderr; guests' console logs are rotated."""
    return _header(ctx, "virtlogd") + """log_outputs = "3:stderr"
max_size = 2097152
max_backups = 3
"""


def qemu_conf(ctx: ServiceContext) -> str:
    """/etc/libvirt/qemu.conf (no Debian package owns it: libvirt-daemon-system is not
    installed). QEMU as its own user; the DAC driver (always on) gives it each disk
    while its guest runs. No MAC security driver: the hosts have neither AppArmor nor
    SELinux (ADR 0021)."""
    return _header(ctx, "qemu.conf, the host's") + f"""user = "{QEMU_USER}"
group = "{QEMU_GROUP}"
dynamic_ownership = 1
security_driver = "none"
stdio_handler = "logd"
"""


def config(ctx: ServiceContext) -> dict[Path, str]:
    return {_etc(ctx) / "libvirtd.conf": libvirtd_conf(ctx),
            _etc(ctx) / "virtlogd.conf": virtlogd_conf(ctx),
            QEMU_CONF: qemu_conf(ctx)}


def programs(ctx: ServiceContext) -> list[Program]:
    """The controller's share: its libvirt when it is a compute host of a site with
    the libvirt driver, else none."""
    here = ctx.controller.name
    return programs_on(ctx) if any(h.name == here for h in hosts(ctx.site)) else []


def programs_on(ctx: ServiceContext) -> list[Program]:
    """virtlogd, then libvirtd, in the foreground (the same on every compute host).
    Neither owns its process tree: a guest's QEMU must outlive a restart of libvirtd
    (it reconnects to it), and virtlogd starts nothing (ADR 0016)."""
    etc, run = _etc(ctx), run_dir(ctx)
    return [Program("virtlogd", [VIRTLOGD, "--config", str(etc / "virtlogd.conf"),
                                 "--pid-file", str(run / "virtlogd.pid")], owns_tree=False),
            Program("libvirtd", [LIBVIRTD, "--config", str(etc / "libvirtd.conf"),
                                 "--pid-file", str(run / "libvirtd.pid")], owns_tree=False,
                    startsecs=3)]


def probes(ctx: ServiceContext, host: Host) -> dict[str, LibvirtProbe]:
    """Per program, what shows it serves (run on ``host``)."""
    return {"virtlogd": LibvirtProbe(VIRTLOGD_ADMIN_URI, admin=True, runs_on=host.name),
            "libvirtd": LibvirtProbe(uri(ctx), runs_on=host.name)}


def checks(ctx: ServiceContext) -> list[Check]:
    """libvirtd on every compute host, for ``status``."""
    return [Check("libvirtd" if h.name == ctx.host else f"libvirtd/{h.name}",
                  probes(ctx, h)["libvirtd"]) for h in hosts(ctx.site)]


# --- the hypervisor decision ----------------------------------------------------------


def virt_settings(virt_type: str) -> str:
    """nova's [libvirt] settings for a decided virt_type. Under TCG no host CPU model:
    libvirt's default (qemu64) is what software emulation runs well; under KVM the
    host's CPU, as the probe guest ran it (``-cpu host``)."""
    cpu_mode = "host-passthrough" if virt_type == KVM else "none"
    return oslo.render_ini({"libvirt": {"virt_type": virt_type, "cpu_mode": cpu_mode}})


def accelerator_record(ctx: ServiceContext) -> Path:
    """Where a compute host keeps its probe and decision (JSON)."""
    return ctx.paths.data / name / "accelerator.json"


def detect_accelerator(ctx: ServiceContext) -> DetectAccelerator:
    return DetectAccelerator(
        requested=ctx.site.virt_type.value, image_dir=ctx.paths.images,
        work=ctx.paths.data / name / "kvm-probe", record=accelerator_record(ctx),
        fragment=virt_fragment_path(ctx),
        fragments=tuple((v, virt_settings(v)) for v in (KVM, QEMU)), timeout=PROBE_TIMEOUT)


# --- nova's side ------------------------------------------------------------------------

# oslo.privsep contexts nova-compute (and the libraries it loads) start with the libvirt
# driver; each needs a helper command that becomes root.
PRIVSEP_SECTIONS = ("nova_sys_admin", "privsep_osbrick", "vif_plug_ovs_privileged",
                    "vif_plug_linux_bridge_privileged")


def nova_config_files(ctx: ServiceContext) -> tuple[str, ...]:
    """nova-compute's ``--config-file`` arguments with the libvirt driver: nova.conf,
    then the host's decided virt_type (later files win in oslo.config)."""
    return ("--config-file", str(ctx.etc("nova") / "nova.conf"),
            "--config-file", str(virt_fragment_path(ctx)))


def nova_settings(ctx: ServiceContext) -> dict[str, dict[str, str]]:
    """nova.conf sections of a compute host for the site's compute driver, to merge
    into nova's own (``[libvirt] virt_type``/``cpu_mode`` come from the host's
    fragment, ``virt_fragment_path``)."""
    if ctx.site.compute_driver == ComputeDriver.FAKE:
        return {"DEFAULT": {"compute_driver": "fake.FakeDriverWithoutFakeNodes"}}
    helper = " ".join(("sudo", ctx.bin("privsep-helper"), *nova_config_files(ctx)))
    return {
        "DEFAULT": {"compute_driver": "libvirt.LibvirtDriver",
                    "instances_path": str(instances_dir(ctx)),
                    # Keep glance's qcow2 as the base image: no conversion to raw.
                    "force_raw_images": "false"},
        "libvirt": {"connection_uri": uri(ctx), "images_type": "qcow2",
                    # No file injection (it needs libguestfs): config drive or metadata.
                    "inject_partition": "-2", "inject_password": "false",
                    "inject_key": "false",
                    # No balloon statistics polling: every wakeup costs under TCG.
                    "mem_stats_period_seconds": "0"},
        # The console is the serial port, logged to console.log by virtlogd.
        "vnc": {"enabled": "false"},
        "spice": {"enabled": "false"},
        "serial_console": {"enabled": "false"},
        **{section: {"helper_command": helper} for section in PRIVSEP_SECTIONS},
    }


def sudoers_path(ctx: ServiceContext) -> Path:
    """The site's sudoers drop-in for nova-compute."""
    return base_sudoers_path(ctx, CLIENT_GROUP)


def privsep_sudoers(ctx: ServiceContext) -> str:
    """/etc/sudoers.d line letting nova-compute (user nova) start its privsep helper,
    of any release of the site (the upgrade starts the next release's nova-compute
    before this file is written again)."""
    helper = ctx.paths.venv("*") / "bin" / "privsep-helper"
    conf = ctx.paths.etc("*") / "nova" / "nova.conf"
    return (f"{CLIENT_GROUP} ALL=(root) NOPASSWD: {helper} --config-file {conf} "
            f"--config-file {virt_fragment_path(ctx)} *\n")


# --- purge --------------------------------------------------------------------------------


def instances_dir(ctx: ServiceContext) -> Path:
    """nova's instances folder on a compute host: every disk of the site's guests."""
    return ctx.paths.data / "nova" / "instances"


def remove_guests_script(ctx: ServiceContext) -> tuple[str, ...]:
    """argv, run on a compute host while its libvirtd still runs (``down --purge``):
    every guest of the site (its disks in the site's instances folder) stopped and
    undefined (their QEMU outlives libvirtd by design, and their definitions live in
    the host's /etc/libvirt, beside any other site's, which stay)."""
    virsh = f"virsh -q -c '{uri(ctx)}'"
    script = (f"for d in $({virsh} list --all --name 2>/dev/null); do "
              f"{virsh} dumpxml \"$d\" 2>/dev/null | grep -q '{instances_dir(ctx)}/' "
              "|| continue; "
              f"{virsh} destroy \"$d\" >/dev/null 2>&1; "
              f"{virsh} undefine --nvram \"$d\" >/dev/null 2>&1 || "
              f"{virsh} undefine \"$d\" >/dev/null 2>&1; echo \"$d\"; done; true")
    return ("sh", "-c", script)


def remove_guest_leftovers_script(instances: Path, domains: Path = DOMAIN_DIR,
                                  running: Path = DOMAIN_RUN_DIR) -> tuple[str, ...]:
    """argv, run on a compute host after a purge stopped libvirtd: the guests nova made
    that :func:`remove_guests_script` could not reach (libvirtd was already down, e.g.
    ``down`` then ``down --purge``): their QEMU killed (the pid file's process, only if
    it runs that guest) and their definitions removed. A leftover definition would
    make the next site's nova-compute refuse to start ("My hypervisor has existing
    instances, but I appear to be a new service"). Guests nova did not make, and another
    site's (disks elsewhere than ``instances``), stay."""
    script = (
        nova_definitions(instances, ours=True, domains=domains) + 'n=$(basename "$f" .xml); '
        f'p=$(cat "{running}/$n.pid" 2>/dev/null); '
        + kill_if_running('"$p"', "guest=$n,", "KILL") +
        f'rm -f "$f" "{domains}/autostart/$n.xml" "{running}/$n.xml" "{running}/$n.pid"; '
        f'echo "$n"; done; true')
    return ("sh", "-c", script)


def host_files(ctx: ServiceContext) -> tuple[Path, ...]:
    """Files of the site outside its folder on a compute host (removed by a purge)."""
    return (sudoers_path(ctx),)


# --- steps ------------------------------------------------------------------------------


def host_steps(ctx: ServiceContext, host: Host) -> list[Step]:
    """libvirt on one compute host: packages, users, folders, no foreign libvirt,
    configuration, virtlogd and libvirtd started and answering, then the KVM probe."""
    def on(step: str, summary: str, action: object) -> Step:
        return host_step(ctx, host, name, step, summary, action, fanout=FANOUT)

    conf = config(ctx)
    packages = ([] if host.name == ctx.host else  # the controller's come with the site's
                [on("packages", "install libvirt and QEMU (Debian)",
                    InstallPackages(PACKAGES + BINDINGS))])
    return [
        *packages,
        on("user:client", f"create system user {CLIENT_GROUP} (nova-compute; libvirtd's "
                          "sockets are its group's)", EnsureSystemUser(CLIENT_GROUP)),
        on("user:qemu", f"create system user {QEMU_USER} in groups {QEMU_GROUP} and "
                        f"{SITE_GROUP} (QEMU runs as it; guests' disks are in the site)",
           EnsureSystemUser(QEMU_USER, (QEMU_GROUP, SITE_GROUP))),
        on("kvm-access", f"let QEMU's user {QEMU_USER} open /dev/kvm (group kvm, as udev "
                         "would)", EnsureKvmAccess(QEMU_USER)),
        on("dirs", "create libvirt's site folders",
           EnsureDirs(((run_dir(ctx), None, 0o755), (ctx.paths.data / name, None, 0o755)))),
        on("only-libvirt", "check that no other libvirt daemon runs on the host",
           EnsureOnlyLibvirt(ctx.paths.log)),
        on("foreign-guests", "check that libvirt defines no guest of another site",
           EnsureNoForeignGuests(instances_dir(ctx))),
        *config_steps(ctx, name, conf, mode=0o644, on=host, fanout=FANOUT),
        on("sudoers", f"let nova-compute start its privileged helper ({sudoers_path(ctx)})",
           WriteFile(sudoers_path(ctx), privsep_sudoers(ctx), mode=0o440)),
        *program_steps(ctx, name, programs_on(ctx), conf, dict(probes(ctx, host)), 60,
                       on=host, fanout=FANOUT),
        on("accelerator", f"choose virt_type (site: {ctx.site.virt_type.value}; KVM only "
                          f"if a probe guest boots under it within {PROBE_TIMEOUT:.0f}s)",
           detect_accelerator(ctx)),
    ]


def steps(ctx: ServiceContext) -> list[Step]:
    """libvirt on every compute host (all at once); nothing with the fake driver."""
    return [s for host in hosts(ctx.site) for s in host_steps(ctx, host)]
