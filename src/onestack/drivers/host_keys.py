"""Host keys of a site's SSH hosts: read off the hosts with ``ssh-keyscan`` (OpenSSH's
own tool), shown as fingerprints, recorded in the site's known_hosts.

Only the parsing and the fingerprints are ours (pure); reaching the host is
``ssh-keyscan``'s, checking keys at connection time pyinfra's (ADR 0009).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from onestack.drivers.host import LocalHost

SCAN_TIMEOUT = 5  # seconds ssh-keyscan waits for a host
KEY_TYPES = "ed25519,ecdsa,rsa"


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
    text = path.read_text() if path.is_file() else ""
    return [k for k in parse(text) if k.pattern == pattern]


def record(path: Path, keys: list[HostKey], replace: bool = False) -> None:
    """Add these keys to known_hosts (0644), first dropping the host's old ones if
    ``replace``."""
    patterns = {k.pattern for k in keys}
    lines = path.read_text().splitlines() if path.is_file() else []
    if replace:
        lines = [line for line in lines
                 if not (line.split() and set(line.split()[0].split(",")) & patterns)]
    lines += [k.line for k in keys]
    LocalHost().write_file(path, "".join(f"{line}\n" for line in lines), mode=0o644)
