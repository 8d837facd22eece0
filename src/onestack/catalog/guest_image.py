"""The recipe of onestack's test image: what goes into the guest, as shipped data.

The image is built from Debian packages only (ADR 0013): the Debian cloud kernel,
busybox-static (shell, init, DHCP client, wget) and dropbear (SSH server) with the
libraries it links to. The guest's scripts live beside this module in ``guest/``.
Nothing here touches the host; ``drivers.guest_image`` builds the image from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from onestack.core.digest import digest

# Bump when the way the image is assembled changes, so existing images are rebuilt.
RECIPE_VERSION = 3

IMAGE_NAME = "onestack-guest"

# The kernel metapackage: it depends on exactly one versioned kernel package.
KERNEL_PACKAGE = "linux-image-cloud-amd64"

# Debian packages unpacked into the guest (besides the kernel). The libraries are
# those dropbear links to; the builder checks that every library it needs is found.
GUEST_PACKAGES = ("busybox-static", "dropbear-bin", "libc6", "libcrypt1", "libgmp10",
                  "libtomcrypt1", "libtommath1", "zlib1g")

# Programs of those packages copied into the guest, with their libraries.
GUEST_PROGRAMS = ("usr/sbin/dropbear", "usr/bin/dropbearkey", "usr/bin/dbclient")

# Kernel modules loaded at boot (their dependencies are added by the builder). The
# cloud kernel builds these as modules: virtio for the disk, network and entropy of
# a KVM/QEMU guest; IDE CD-ROM and ISO 9660 for nova's default config drive, SCSI
# and FAT for the other ways it can be attached. (It has no AHCI: a config drive on
# a q35 machine's SATA bus is not seen; the metadata service is.) The ACPI button
# and evdev let acpid see the power button nova presses for a clean shutdown.
GUEST_MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi", "virtio_rng",
                 "ata_piix", "sr_mod", "sd_mod", "isofs", "vfat", "nls_cp437",
                 "nls_ascii", "nls_utf8", "button", "evdev")

# The console is the serial port (what nova's console log records); `quiet` keeps
# the kernel's own messages from slowing an emulated serial port down.
KERNEL_CMDLINE = "console=tty0 console=ttyS0,115200n8 quiet"

# Build tools on the build machine: command (or file) -> the Debian package with it.
BUILD_TOOLS = {
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "syslinux": "syslinux",
    "qemu-img": "qemu-utils",
}
SYSLINUX_MBR = "/usr/lib/syslinux/mbr/mbr.bin"
BUILD_FILES = {SYSLINUX_MBR: "syslinux-common"}

# Scripts of guest/ and where they go in the guest, with their modes.
GUEST_SCRIPTS = {
    "init": ("init", 0o755),
    "guest.sh": ("lib/onestack/guest.sh", 0o644),
    "udhcpc.script": ("lib/onestack/udhcpc.script", 0o755),
    "inittab": ("etc/inittab", 0o644),
    # What a cloud guest is expected to have and busybox lacks (Tempest runs them).
    "sudo": ("usr/bin/sudo", 0o755),
    "blkid": ("sbin/blkid", 0o755),
    "curl": ("usr/bin/curl", 0o755),
    # busybox acpid runs /etc/acpi/<action>/<parameter> for an event.
    "power-button": ("etc/acpi/PWRF/00000080", 0o755),
}

# Small configuration files of the guest. dropbear wants root in passwd with a
# shell listed in /etc/shells; the "x" password (no shadow file) is never a valid
# one, and -s refuses passwords anyway.
GUEST_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\ntty:x:5:\n",
    "etc/shells": "/bin/sh\n/bin/ash\n",
    "etc/hostname": "onestack-guest\n",
    "etc/profile": "export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1='\\h:\\w\\$ '\n",
}


@dataclass(frozen=True)
class GuestFile:
    """A file of the guest's root file system: its path (relative), text and mode."""

    path: str
    text: str
    mode: int


@cache
def guest_scripts() -> tuple[GuestFile, ...]:
    """The shipped guest scripts and configuration files, where they go in the guest."""
    folder = resources.files("onestack.catalog").joinpath("guest")
    scripts = [GuestFile(target, folder.joinpath(name).read_text(), mode)
               for name, (target, mode) in GUEST_SCRIPTS.items()]
    files = [GuestFile(path, text, 0o644) for path, text in GUEST_FILES.items()]
    return tuple(scripts + files)


def syslinux_cfg(kernel: str = "vmlinuz", initrd: str = "initrd.img") -> str:
    """The boot loader's configuration: boot the one kernel at once, no menu."""
    return (f"DEFAULT onestack\nPROMPT 0\nTIMEOUT 0\nLABEL onestack\n"
            f"  LINUX /{kernel}\n  INITRD /{initrd}\n  APPEND {KERNEL_CMDLINE}\n")


def recipe_digest() -> str:
    """A digest of everything of the recipe that shapes the image (not the packages)."""
    parts = [f"recipe {RECIPE_VERSION}", KERNEL_PACKAGE, " ".join(GUEST_PACKAGES),
             " ".join(GUEST_PROGRAMS), " ".join(GUEST_MODULES), syslinux_cfg()]
    parts += [f"{f.path} {f.mode:o}\n{f.text}" for f in guest_scripts()]
    return digest("\0".join(parts))
