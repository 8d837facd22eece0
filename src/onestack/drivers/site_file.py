"""Read a site file from disk: a regular file, at most 1 MiB, UTF-8; then parse it.

The file is untrusted: ``--site-file /dev/zero`` must not read forever, a FIFO must
not block, and bytes that are not UTF-8 are an error naming the line, not a
traceback. Parsing (``model.loader``) is pure; this module does the I/O.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection, Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from onestack.catalog.architectures import architecture_documents
from onestack.drivers import tls
from onestack.errors import SiteFileError
from onestack.model.architecture import Architecture, parse_architectures
from onestack.model.loader import MAX_BYTES, parse_site
from onestack.model.site import Site


def _open_regular(path: Path) -> int:
    """An fd of a regular file. O_NONBLOCK: opening a FIFO must not wait for a writer."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "error")
        raise SiteFileError(str(path), None, "(file)", f"cannot read site file: {reason}") \
            from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise SiteFileError(str(path), None, "(file)",
                            "not a regular file (a directory, device or pipe)")
    if info.st_size > MAX_BYTES:
        os.close(fd)
        raise SiteFileError(str(path), None, "(file)", _too_large())
    os.set_blocking(fd, True)
    return fd


def _too_large() -> str:
    return f"larger than {MAX_BYTES // 1024} KiB: not a site file"


def read_site_bytes(path: Path) -> bytes:
    """The file's bytes, refusing anything but a regular file of at most MAX_BYTES."""
    fd = _open_regular(path)
    try:
        chunks, size = [], 0
        while size <= MAX_BYTES:  # the file may grow after fstat: read at most cap + 1
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise SiteFileError(str(path), None, "(file)",
                            f"cannot read site file: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise SiteFileError(str(path), None, "(file)", _too_large())
    return b"".join(chunks)


def decode_site_text(data: bytes, path: str) -> str:
    """UTF-8 text, or an error naming the line of the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SiteFileError(path, line, "(file)",
                            f"not UTF-8 text (byte 0x{data[exc.start]:02x})") from None


def read_site_file(path: Path, releases: Collection[str] | None = None, *,
                   home: Path | None) -> Site:
    """Read, decode and validate a site file; SiteFileError names file, line and field.
    ``home``: the onestack home its ``known_hosts`` must be in (None only for a caller
    that uses none of the site's files, e.g. only its host names)."""
    text = decode_site_text(read_site_bytes(path), str(path))
    architectures = shipped_architectures()
    site = parse_site(text, str(path), releases, architectures)
    _check_known_hosts(site, text, path, home)
    _check_tls(site, text, path)
    _check_tunnels(site, text, path)
    return site


@lru_cache(maxsize=1)
def shipped_architectures() -> Mapping[str, Architecture]:
    """The reference architectures of the catalog, by name (ADR 0024; read once)."""
    return MappingProxyType(parse_architectures(architecture_documents()))


def architecture_of(site: Site) -> Architecture:
    """The site's architecture (a site not read from a file: the default's)."""
    architectures = shipped_architectures()
    try:
        return architectures[site.architecture]
    except KeyError:
        raise SiteFileError("(site)", None, "architecture",
                            f"unknown architecture {site.architecture} "
                            f"(known: {', '.join(sorted(architectures))})") from None


def _check_known_hosts(site: Site, text: str, path: Path, home: Path | None) -> None:
    """``known_hosts`` names a file onestack rewrites as root: a file named
    ``*known_hosts`` under the home (never /etc/shadow, nor the site's secrets), and a
    regular file (or not yet there), never a symbolic link, directory or device whose
    target would be written instead."""
    if site.known_hosts is None:
        return
    line = _line_of(text, "known_hosts:")
    if home is not None and not is_known_hosts_under(Path(site.known_hosts), home):
        raise SiteFileError(str(path), line, "known_hosts", outside_home(home))
    try:
        mode = os.lstat(site.known_hosts).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SiteFileError(str(path), line, "known_hosts",
                            f"cannot be checked: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise SiteFileError(str(path), line, "known_hosts", NOT_A_KNOWN_HOSTS_FILE)


def _check_tunnels(site: Site, text: str, path: Path) -> None:
    """Every chassis of a site of several has a tunnel (an interface and address)."""
    missing = site.untunnelled_chassis()
    if missing:
        host = missing[0]
        others = f" (and {', '.join(h.name for h in missing[1:])})" if missing[1:] else ""
        raise SiteFileError(str(path), _line_of(text, f"name: {host.name}"),
                            f"hosts.{site.hosts.index(host)}.tunnel",
                            f"host {host.name}{others} forwards instance traffic on a site "
                            f"with {len(site.chassis)} such hosts: give it `tunnel: "
                            "{interface: <NIC for tenant traffic>, address: <address/prefix>}`"
                            " (README: several hosts)")


def _check_tls(site: Site, text: str, path: Path) -> None:
    """The operator's certificate for the APIs (``tls``): each file readable, the
    certificate its key's, naming the controller's address and name, chaining to the
    CA file, not expiring within 30 days; else the site file's line and field."""
    if site.tls is None:
        return
    pems = {name: _read_pem(path, text, name, Path(getattr(site.tls, name)))
            for name in ("certificate", "key", "ca")}
    problem = tls.check_operator_certificate(pems["certificate"], pems["key"], pems["ca"],
                                             tls.certificate_names(site))
    if problem:
        raise SiteFileError(str(path), _line_of(text, "certificate:"), "tls.certificate",
                            problem)


def _read_pem(path: Path, text: str, field: str, pem: Path) -> str:
    """A PEM file the site file names (regular, at most MAX_BYTES, UTF-8)."""
    try:
        return read_site_bytes(pem).decode("ascii")
    except (SiteFileError, UnicodeDecodeError) as exc:
        why = (exc.problem.replace("cannot read site file", "cannot read")
               if isinstance(exc, SiteFileError) else "not a PEM file")
        raise SiteFileError(str(path), _line_of(text, f"{field}:"), f"tls.{field}",
                            f"{pem}: {why}") from None


def is_known_hosts_under(known_hosts: Path, home: Path) -> bool:
    """Whether the file is called ``*known_hosts`` and its folder, once ``..`` and
    symbolic links are resolved, is the home or inside it."""
    folder = Path(os.path.realpath(known_hosts.parent))
    return known_hosts.name.endswith("known_hosts") and \
        folder.is_relative_to(os.path.realpath(home))


def outside_home(home: Path) -> str:
    return (f"must be a file named *known_hosts under onestack's home {home} (leave it "
            "out for the site's own, sites/<site>/known_hosts): onestack rewrites it as root")


def _line_of(text: str, start: str) -> int | None:
    """The first line (from 1) whose text, indentation and list dash aside, starts so."""
    return next((i for i, t in enumerate(text.splitlines(), 1)
                 if t.strip().lstrip("- ").startswith(start)), None)


NOT_A_KNOWN_HOSTS_FILE = ("not a regular file (a symbolic link, directory or device): "
                          "name the file itself; onestack writes host keys into it")



