"""Host keys of a site's SSH hosts: read off the hosts with ``ssh-keyscan`` (OpenSSH's
own tool), shown as fingerprints, recorded in the site's known_hosts.

Only the parsing and the fingerprints are ours (pure); reaching the host is
``ssh-keyscan``'s, checking keys at connection time pyinfra's (ADR 0009).

The known_hosts file may be one a site file names: onestack (root) reads and replaces
it without following a symbolic link, never makes it readable by more users than
before, and keeps its owner.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from onestack.drivers.host import LocalHost
from onestack.errors import StateFileError

SCAN_TIMEOUT = 5  # seconds ssh-keyscan waits for a host
KEY_TYPES = "ed25519,ecdsa,rsa"
KNOWN_HOSTS_MODE = 0o600  # at most: a stricter mode of an existing file is kept
MAX_KNOWN_HOSTS_BYTES = 16 * 1024 * 1024  # far more than any fleet's host keys
NOT_REGULAR = ("not a regular file (a symbolic link, directory or device): onestack "
               "writes host keys only into a file of their own")


@dataclass(frozen=True)
class HostKey:
    """One public host key, under the name known_hosts knows the host by."""

    pattern: str  # "198.18.0.11", or "[198.18.0.11]:2222" off port 22
    key_type: str
    key: str  # base64, as in known_hosts

    @property
    def line(self) -> str:
        return f"{self.pattern} {self.key_type} {self.key}"

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` as ``ssh-keygen -l`` and ssh print it."""
        raw = hashlib.sha256(base64.b64decode(self.key)).digest()
        return "SHA256:" + base64.b64encode(raw).decode().rstrip("=")


def host_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def parse(text: str) -> list[HostKey]:
    """Key lines of known_hosts or ssh-keyscan output (comments, markers such as
    ``@revoked`` and hashed names are skipped: they name no host we can match)."""
    keys = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or line.startswith(("#", "@", "|")):
            continue
        for pattern in parts[0].split(","):
            keys.append(HostKey(pattern, parts[1], parts[2]))
    return keys


def scan(address: str, port: int) -> list[HostKey]:
    """The keys a host offers now (none if it cannot be reached)."""
    out = LocalHost().run(["ssh-keyscan", "-T", str(SCAN_TIMEOUT), "-t", KEY_TYPES,
                           "-p", str(port), address], timeout=SCAN_TIMEOUT * 4, check=False)
    wanted = host_pattern(address, port)
    return [k for k in parse(out) if k.pattern == wanted]


def recorded(path: Path, pattern: str) -> list[HostKey]:
    """The keys known_hosts holds for a host."""
    return [k for k in parse(read_known_hosts(path).text) if k.pattern == pattern]


def record(path: Path, keys: list[HostKey], replace: bool = False) -> None:
    """Add these keys to known_hosts, first dropping the host's old ones if ``replace``.
    Every other line is kept as it was."""
    current = read_known_hosts(path)
    patterns = {k.pattern for k in keys}
    lines = current.text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if replace:
        lines = [line for line in lines
                 if not (line.split() and set(line.split()[0].split(",")) & patterns)]
    lines += [k.line for k in keys]
    write_known_hosts(path, "".join(f"{line}\n" for line in lines), current.info)


@dataclass(frozen=True)
class KnownHostsFile:
    """A known_hosts file as read: its text, and what to keep of it when it is replaced
    (its mode and owner; None if it does not exist yet)."""

    text: str
    info: os.stat_result | None


def read_known_hosts(path: Path) -> KnownHostsFile:
    """The file's text (bytes that are not UTF-8 kept as they are), refusing anything
    but a regular file of at most MAX_KNOWN_HOSTS_BYTES; a symbolic link is not followed.
    O_NONBLOCK: opening a FIFO must not wait for a writer."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return KnownHostsFile("", None)
    except OSError as exc:
        problem = NOT_REGULAR if exc.errno == errno.ELOOP else f"cannot read: {exc.strerror}"
        raise StateFileError(str(path), None, problem) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise StateFileError(str(path), None, NOT_REGULAR)
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_KNOWN_HOSTS_BYTES + 1)
    if len(data) > MAX_KNOWN_HOSTS_BYTES:
        raise StateFileError(str(path), None, f"larger than {MAX_KNOWN_HOSTS_BYTES >> 20} "
                                              "MiB: not a known_hosts file")
    return KnownHostsFile(data.decode("utf-8", "surrogateescape"), info)


def write_known_hosts(path: Path, text: str, old: os.stat_result | None) -> None:
    """Replace known_hosts atomically: a temporary file in the same folder, fsynced,
    renamed over it. Mode 0600, or the old file's if stricter; the old file's owner."""
    mode = KNOWN_HOSTS_MODE if old is None else stat.S_IMODE(old.st_mode) & KNOWN_HOSTS_MODE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if old is not None:
                os.fchown(fd, old.st_uid, old.st_gid)
            os.fchmod(fd, mode)
            f.write(text.encode("utf-8", "surrogateescape"))
            f.flush()
            os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """The rename itself survives a crash once its folder is synced."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
