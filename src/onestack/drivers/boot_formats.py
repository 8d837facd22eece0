"""Byte formats the test image is made of, as pure functions (no I/O).

An initramfs (cpio "newc", RFC-less but stable since Linux 2.6), an MBR partition
table, the libraries an ELF program needs (``DT_NEEDED``), the dependencies of a
kernel module (its ``.modinfo``) and the fields of an apt package record. Writing
them here rather than running cpio, sfdisk or depmod keeps the build free of tools
and the output independent of the build machine's clock and users.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from onestack.errors import GuestImageError

# --- initramfs ---------------------------------------------------------------------

S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR = 0o040000, 0o100000, 0o120000, 0o020000


@dataclass(frozen=True)
class ArchiveEntry:
    """One member of an initramfs: a directory, a file, a symbolic link or a device.

    ``data`` is the file's content, or the link's target for a link; ``device`` the
    (major, minor) of a character device."""

    path: str
    kind: int
    mode: int = 0o755
    data: bytes = b""
    device: tuple[int, int] = (0, 0)


def directory(path: str, mode: int = 0o755) -> ArchiveEntry:
    return ArchiveEntry(path, S_IFDIR, mode)


def regular(path: str, data: bytes, mode: int = 0o644) -> ArchiveEntry:
    return ArchiveEntry(path, S_IFREG, mode, data)


def symlink(path: str, target: str) -> ArchiveEntry:
    return ArchiveEntry(path, S_IFLNK, 0o777, target.encode())


def char_device(path: str, major: int, minor: int, mode: int = 0o600) -> ArchiveEntry:
    return ArchiveEntry(path, S_IFCHR, mode, device=(major, minor))


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _newc_member(ino: int, name: str, mode: int, data: bytes,
                 device: tuple[int, int] = (0, 0)) -> bytes:
    nlink = 2 if mode & 0o170000 == S_IFDIR else 1
    # ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
    # namesize check: uid/gid 0 (root) and mtime 0, so the archive depends on its
    # content only.
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, *device, len(name) + 1, 0)
    header = b"070701" + b"".join(f"{value:08X}".encode() for value in fields)
    return _pad4(header + name.encode() + b"\0") + _pad4(data)


def newc_archive(entries: Iterable[ArchiveEntry]) -> bytes:
    """A cpio archive in the "newc" format the kernel unpacks as an initramfs.

    Entries are written sorted by path, so a directory comes before its content and
    the same entries always give the same bytes."""
    out = []
    for ino, entry in enumerate(sorted(entries, key=lambda e: e.path.strip("/")), start=1):
        path = entry.path.strip("/")
        mode = entry.kind | (entry.mode & 0o7777)
        out.append(_newc_member(ino, path, mode, entry.data, entry.device))
    out.append(_newc_member(0, "TRAILER!!!", 0, b""))
    return b"".join(out)


def parent_directories(paths: Iterable[str]) -> set[str]:
    """Every directory above these relative paths (``a/b/c`` -> ``a``, ``a/b``)."""
    found: set[str] = set()
    for path in paths:
        parts = path.strip("/").split("/")[:-1]
        found.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return found


# --- disk --------------------------------------------------------------------------

SECTOR = 512
FAT32_LBA = 0x0C


def mbr_sector(boot_code: bytes, start_sector: int, sectors: int,
               partition_type: int = FAT32_LBA) -> bytes:
    """A master boot record: boot code, one active partition, the 0x55AA signature.

    The partition's CHS fields say "use LBA" (0xFE 0xFF 0xFF), as every partitioning
    tool writes them for disks of today."""
    if len(boot_code) > 440:
        raise GuestImageError("disk", f"MBR boot code is {len(boot_code)} bytes, over 440")
    chs_lba = b"\xfe\xff\xff"
    entry = (b"\x80" + chs_lba + bytes([partition_type]) + chs_lba
             + struct.pack("<II", start_sector, sectors))
    table = entry + b"\0" * 48
    return boot_code.ljust(440, b"\0") + b"\0" * 6 + table + b"\x55\xaa"


# --- ELF ---------------------------------------------------------------------------

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5


@dataclass(frozen=True)
class ElfLinks:
    """What a dynamically linked program needs: its interpreter and its libraries."""

    interpreter: str | None
    needed: tuple[str, ...]


def elf_links(data: bytes, name: str = "program") -> ElfLinks:
    """Read the interpreter and ``DT_NEEDED`` libraries of a 64-bit little-endian ELF."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise GuestImageError("programs", f"{name} is not a 64-bit little-endian ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    headers = [struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize) for i in range(phnum)]
    interpreter = None
    for kind, _flags, offset, _vaddr, _paddr, size in headers:
        if kind == PT_INTERP:
            interpreter = data[offset:offset + size].rstrip(b"\0").decode()
    dynamic = [h for h in headers if h[0] == PT_DYNAMIC]
    if not dynamic:
        return ElfLinks(interpreter, ())
    return ElfLinks(interpreter, _needed(data, dynamic[0][2], headers))


def _needed(data: bytes, dynamic_offset: int, headers: list[tuple[int, ...]]) -> tuple[str, ...]:
    entries, strtab, position = [], 0, dynamic_offset
    while True:
        tag, value = struct.unpack_from("<qQ", data, position)
        position += 16
        if tag == DT_NULL:
            break
        if tag == DT_STRTAB:
            strtab = value
        elif tag == DT_NEEDED:
            entries.append(value)
    base = _file_offset(strtab, headers)
    return tuple(data[base + e:data.index(b"\0", base + e)].decode() for e in entries)


def _file_offset(address: int, headers: list[tuple[int, ...]]) -> int:
    """Where a virtual address of a loaded segment is in the file."""
    for kind, _flags, offset, vaddr, _paddr, size in headers:
        if kind == PT_LOAD and vaddr <= address < vaddr + size:
            return address - vaddr + offset
    raise GuestImageError("programs", f"address {address:#x} is in no loaded segment")


# --- kernel modules ------------------------------------------------------------------


def module_name(file_name: str) -> str:
    """A module's name from its file: ``virtio-rng.ko`` -> ``virtio_rng``."""
    return file_name.split(".ko")[0].replace("-", "_")


def module_depends(data: bytes) -> tuple[str, ...]:
    """The ``depends=`` of a kernel module's ``.modinfo``: the modules it needs loaded."""
    marker = b"\0depends="
    start = data.find(marker)
    if start < 0:
        return ()
    value = data[start + len(marker):data.index(b"\0", start + len(marker))].decode()
    return tuple(module_name(name) for name in value.split(",") if name)


def load_order(wanted: Iterable[str], depends: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The modules to load for ``wanted``, each after the modules it depends on.

    ``depends`` maps every module of the kernel to its dependencies; a wanted module
    (or a dependency) missing from it is an error naming it."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, needed_by: str | None) -> None:
        if name in order:
            return
        if name not in depends:
            owner = f" (needed by {needed_by})" if needed_by else ""
            raise GuestImageError("kernel modules", f"the kernel has no module {name}{owner}")
        if name in visiting:
            raise GuestImageError("kernel modules", f"module {name} depends on itself")
        visiting.add(name)
        for dependency in depends[name]:
            visit(dependency, name)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name, None)
    return order


# --- apt -------------------------------------------------------------------------------


def apt_records(text: str) -> list[dict[str, str]]:
    """The records ``apt-cache show`` printed, as fields (continuation lines joined)."""
    records: list[dict[str, str]] = [{}]
    last = None
    for line in text.splitlines():
        if not line.strip():
            if records[-1]:
                records.append({})
            continue
        if line[0] in " \t" and last:
            records[-1][last] += "\n" + line.strip()
            continue
        key, _, value = line.partition(":")
        last = key.strip()
        records[-1][last] = value.strip()
    return [record for record in records if record]


def depends_names(depends: str) -> list[str]:
    """Package names of a ``Depends`` field, first choice of each alternative."""
    names = []
    for clause in depends.split(","):
        first = clause.split("|")[0].strip()
        if first:
            names.append(first.split()[0].split(":")[0])
    return names
