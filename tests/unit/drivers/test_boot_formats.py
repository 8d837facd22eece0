"""The byte formats of the test image: initramfs, MBR, ELF links, modules, apt records."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from onestack.drivers import boot_formats as fmt
from onestack.errors import GuestImageError


def _read_newc(data: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    """Members of a newc archive: (name, mode, data, rdev), trailer excluded."""
    members, position = [], 0
    while True:
        assert data[position:position + 6] == b"070701"
        fields = [int(data[position + 6 + 8 * i:position + 14 + 8 * i], 16) for i in range(13)]
        name_start = position + 110
        name = data[name_start:name_start + fields[11] - 1].decode()
        body = name_start + fields[11] + (-(110 + fields[11]) % 4)
        content = data[body:body + fields[6]]
        position = body + fields[6] + (-fields[6] % 4)
        if name == "TRAILER!!!":
            return members
        assert fields[2:4] == [0, 0] and fields[5] == 0  # root-owned, mtime 0
        members.append((name, fields[1], content, (fields[9], fields[10])))


def test_newc_archive_holds_every_kind_of_entry_sorted() -> None:
    archive = fmt.newc_archive([
        fmt.regular("/bin/busybox", b"\x7fELF...", 0o755),
        fmt.symlink("bin/sh", "/bin/busybox"),
        fmt.directory("bin"),
        fmt.char_device("dev/console", 5, 1),
    ])
    members = _read_newc(archive)
    assert [m[0] for m in members] == ["bin", "bin/busybox", "bin/sh", "dev/console"]
    assert members[0][1] == fmt.S_IFDIR | 0o755
    assert members[1][1:3] == (fmt.S_IFREG | 0o755, b"\x7fELF...")
    assert members[2][1:3] == (fmt.S_IFLNK | 0o777, b"/bin/busybox")
    assert members[3][1] == fmt.S_IFCHR | 0o600 and members[3][3] == (5, 1)
    assert len(archive) % 4 == 0


def test_newc_archive_depends_on_content_only() -> None:
    entries = [fmt.regular("b", b"2"), fmt.regular("a", b"1")]
    assert fmt.newc_archive(entries) == fmt.newc_archive(list(reversed(entries)))


def test_parent_directories() -> None:
    assert fmt.parent_directories(["a/b/c", "/a/d", "e"]) == {"a", "a/b"}


def test_mbr_has_one_active_partition_and_the_signature() -> None:
    sector = fmt.mbr_sector(b"\xfa" * 440, 2048, 40960, partition_type=0x0E)
    assert len(sector) == 512 and sector[510:] == b"\x55\xaa"
    entry = sector[446:462]
    assert entry[0] == 0x80 and entry[4] == 0x0E
    assert struct.unpack("<II", entry[8:16]) == (2048, 40960)
    assert sector[462:510] == b"\0" * 48


def test_mbr_refuses_oversized_boot_code() -> None:
    with pytest.raises(GuestImageError, match="over 440"):
        fmt.mbr_sector(b"\0" * 441, 2048, 1)


@pytest.mark.skipif(not shutil.which("true"), reason="needs a dynamically linked program")
def test_elf_links_of_a_real_program() -> None:
    links = fmt.elf_links(Path(shutil.which("true") or "").read_bytes())
    assert links.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert "libc.so.6" in links.needed


def test_elf_links_refuses_other_files() -> None:
    with pytest.raises(GuestImageError, match="not a 64-bit little-endian ELF"):
        fmt.elf_links(b"#!/bin/sh\n", "init")


def test_module_name_and_depends() -> None:
    assert fmt.module_name("virtio-rng.ko") == "virtio_rng"
    assert fmt.module_name("isofs.ko.xz") == "isofs"
    modinfo = b"\x7fELF\0license=GPL\0depends=virtio_ring,net-failover\0vermagic=6.1\0"
    assert fmt.module_depends(modinfo) == ("virtio_ring", "net_failover")
    assert fmt.module_depends(b"\0depends=\0") == ()
    assert fmt.module_depends(b"no modinfo") == ()


DEPENDS = {"virtio_net": ("virtio", "net_failover"), "net_failover": ("failover",),
           "failover": (), "virtio": ("virtio_ring",), "virtio_ring": (),
           "virtio_pci": ("virtio", "virtio_ring")}


def test_load_order_puts_dependencies_first_once() -> None:
    order = fmt.load_order(["virtio_pci", "virtio_net"], DEPENDS)
    assert order == ["virtio_ring", "virtio", "virtio_pci", "failover", "net_failover",
                     "virtio_net"]


def test_load_order_names_a_missing_module_and_who_needs_it() -> None:
    with pytest.raises(GuestImageError, match="no module failover \\(needed by net_failover\\)"):
        fmt.load_order(["virtio_net"], {k: v for k, v in DEPENDS.items() if k != "failover"})
    with pytest.raises(GuestImageError, match="no module ahci$"):
        fmt.load_order(["ahci"], DEPENDS)


def test_load_order_refuses_a_cycle() -> None:
    with pytest.raises(GuestImageError, match="depends on itself"):
        fmt.load_order(["a"], {"a": ("b",), "b": ("a",)})


APT_SHOW = """Package: linux-image-cloud-amd64
Version: 6.1.192-3
Depends: linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)
Description: Linux for x86-64 cloud (meta-package)
 This package depends on the latest Linux kernel
 and modules for use on cloud platforms.

Package: dropbear-bin
Version: 2022.83-1+deb12u3
SHA256: 44ac9aaae0105bca66ea4d457852bf97020ccab33d5c088b0e5c8668891290a0
"""


def test_apt_records() -> None:
    meta, dropbear = fmt.apt_records(APT_SHOW)
    assert meta["Version"] == "6.1.192-3"
    assert meta["Description"].endswith("\nand modules for use on cloud platforms.")
    assert dropbear["SHA256"].startswith("44ac9a")
    assert fmt.apt_records("\n\n") == []


def test_depends_names() -> None:
    assert fmt.depends_names("linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)") == [
        "linux-image-6.1.0-57-cloud-amd64"]
    assert fmt.depends_names("libc6 (>= 2.34), mawk | awk, python3:any") == [
        "libc6", "mawk", "python3"]
