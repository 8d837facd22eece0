"""The shape of a lab of namespace hosts, as data: names, addresses, paths, configs.

Pure functions only; :mod:`onestack.drivers.labhosts` acts on what they describe.
A lab is a Linux bridge without an uplink and hosts ``lab1``, ``lab2``... each in
its own network, mount, PID and UTS namespace, with its own sshd.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BRIDGE = "onestack-lab0"
DEFAULT_NETWORK = "198.18.0.0/24"
# RFC 2544's benchmarking range: never routed on the internet, so a lab address
# can never be confused with a real machine's.
RESERVED_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
HOST_PREFIX = "lab"
FIRST_HOST_OCTET = 11  # lab1 is .11, lab2 .12, ...
IFNAMSIZ = 15
SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class LabSpecError(ValueError):
    """A bridge name or network that a lab cannot use."""


@dataclass(frozen=True)
class LabSpec:
    """Where a lab lives and which bridge and network it uses."""

    home: Path
    bridge: str = DEFAULT_BRIDGE
    network: str = DEFAULT_NETWORK

    def __post_init__(self) -> None:
        if len(self.bridge) > IFNAMSIZ or not _NAME.match(self.bridge):
            raise LabSpecError(f"bridge name {self.bridge!r}: at most {IFNAMSIZ} characters "
                               "of letters, digits, '-', '_' and '.'")
        net = ipaddress.IPv4Network(self.network, strict=True)
        if not net.subnet_of(RESERVED_RANGE):
            raise LabSpecError(f"network {self.network} is outside {RESERVED_RANGE}, the range "
                               "reserved for such tests (RFC 2544)")
        if self.max_hosts < 1:
            raise LabSpecError(f"network {self.network} is too small for a lab host")

    @property
    def net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.network)

    @property
    def bridge_address(self) -> str:
        return str(self.net[1])

    @property
    def prefixlen(self) -> int:
        return self.net.prefixlen

    @property
    def max_hosts(self) -> int:
        """How many hosts fit: from .11 up to the last address before broadcast."""
        return max(0, self.net.num_addresses - 1 - FIRST_HOST_OCTET)

    def host(self, index: int) -> LabHostSpec:
        """The index-th host (from 1) of this lab."""
        if not 1 <= index <= self.max_hosts:
            raise LabSpecError(f"host number {index}: network {self.network} holds lab1 to "
                               f"{HOST_PREFIX}{self.max_hosts}")
        return LabHostSpec(self, index)

    def host_named(self, name: str) -> LabHostSpec:
        """The host called ``labN``; LabSpecError for any other name."""
        match = re.fullmatch(rf"{HOST_PREFIX}([1-9][0-9]*)", name)
        if not match:
            raise LabSpecError(f"{name!r} is not a lab host name ({HOST_PREFIX}1, "
                               f"{HOST_PREFIX}2, ...)")
        return self.host(int(match.group(1)))

    @property
    def key_file(self) -> Path:
        """onestack's private key for the lab hosts (0600, never printed)."""
        return self.home / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.home / "known_hosts"

    @property
    def state_file(self) -> Path:
        return self.home / "lab.json"

    @property
    def hosts_dir(self) -> Path:
        return self.home / "hosts"

    @property
    def tunnel_cable(self) -> str:
        """This machine's end of its tunnel cable, for its switch (ADR 0023): a site
        whose controller is this machine and a chassis gives it as tunnel.interface."""
        return f"ol{self.tag}tun"

    @property
    def tunnel_cable_port(self) -> str:
        """The bridge's end of this machine's tunnel cable."""
        return f"ol{self.tag}t0"

    @property
    def tag(self) -> str:
        """A short digest of the bridge name, so veth names of two labs never collide."""
        return hashlib.sha256(self.bridge.encode()).hexdigest()[:6]


@dataclass(frozen=True)
class LabHostSpec:
    """One lab host: its name, address, namespace, veth and directories."""

    lab: LabSpec
    index: int

    @property
    def name(self) -> str:
        return f"{HOST_PREFIX}{self.index}"

    @property
    def address(self) -> str:
        return str(self.lab.net[FIRST_HOST_OCTET - 1 + self.index])

    @property
    def netns(self) -> str:
        return f"{self.lab.bridge}-{self.name}"

    @property
    def veth(self) -> str:
        """The root-namespace end of the host's cable (its own end is ``eth0``)."""
        return f"ol{self.lab.tag}h{self.index}"

    @property
    def tunnel_veth(self) -> str:
        """The root-namespace end of the host's second cable (its own end is
        ``eth1``, without an address: for a site's tunnel endpoint, ADR 0023)."""
        return f"ol{self.lab.tag}t{self.index}"

    @property
    def mac(self) -> str:
        """The host's own MAC address, the same at every boot (locally administered),
        so the other hosts' ARP caches stay right across a power cycle."""
        return self._own_mac(0x02)

    @property
    def tunnel_mac(self) -> str:
        """The MAC address of the host's second cable (``eth1``), the same at every
        boot for the same reason."""
        return self._own_mac(0x06)

    def _own_mac(self, first: int) -> str:
        tag = self.lab.tag
        return (f"{first:02x}:{tag[0:2]}:{tag[2:4]}:{tag[4:6]}:"
                f"{self.index >> 8 & 0xff:02x}:{self.index & 0xff:02x}")

    @property
    def dir(self) -> Path:
        """The host's "disk": everything it keeps across power cycles."""
        return self.lab.hosts_dir / self.name

    @property
    def etc_ssh(self) -> Path:
        return self.dir / "etc" / "ssh"

    @property
    def hostname_file(self) -> Path:
        return self.dir / "etc" / "hostname"

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    @property
    def tmp_dir(self) -> Path:
        return self.dir / "tmp"

    @property
    def pid_file(self) -> Path:
        """pid (in this namespace) of the process holding the host's namespaces."""
        return self.dir / "power.pid"

    @property
    def console(self) -> Path:
        return self.dir / "console.log"

    def mounts(self) -> list[tuple[Path, Path]]:
        """(source, target) bind mounts that give the host its own filesystem view.

        onestack keeps a site under the same home on every host; a lab under another
        home than /var/lib/onestack (a test's) gives each host its own of that too."""
        own = self._own_dirs()
        home = self.lab.home.parent
        if any(_within(home, target) for _, target in own):
            return own  # already the host's own (/var/lib/onestack, /tmp...)
        return [(self.dir / "onestack-home", home), *own]

    def _own_dirs(self) -> list[tuple[Path, Path]]:
        return [
            (self.etc_ssh, Path("/etc/ssh")),
            (self.hostname_file, Path("/etc/hostname")),
            (self.dir / "var" / "lib" / "onestack", Path("/var/lib/onestack")),
            (self.dir / "var" / "log", Path("/var/log")),
            (self.run_dir, Path("/run")),
            # libvirt's definitions and guests' state: each host's libvirtd its own.
            (self.dir / "etc" / "libvirt", Path("/etc/libvirt")),
            # sudo's drop-ins: a host's services' rules are its own (a host that
            # leaves a site removes its files, which must not be the others').
            (self.dir / "etc" / "sudoers.d", Path("/etc/sudoers.d")),
            (self.dir / "var" / "lib" / "libvirt", Path("/var/lib/libvirt")),
            # Its own home and /tmp too: root's shell start-up files of this machine
            # are not the host's, and two hosts never share a temporary file.
            (self.dir / "root", Path("/root")),
            (self.tmp_dir, Path("/tmp")),
        ]


def mount_order(mounts: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """Order bind mounts so none hides the source of a later one.

    With the lab under /var/lib/onestack (the default home), mounting the host's
    own /var/lib/onestack first would hide every other source directory."""
    pending, ordered = list(mounts), []
    while pending:
        free = [m for m in pending
                if not any(_within(src, m[1]) for src, _ in pending if (src, _) != m)]
        if not free:
            raise LabSpecError("bind mounts hide each other's sources: "
                               + ", ".join(str(t) for _, t in pending))
        ordered.append(free[0])
        pending.remove(free[0])
    return ordered


def _within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def render_sshd_config(address: str) -> str:
    """sshd configuration of a lab host: key login for root only, SFTP for pyinfra."""
    return "\n".join([
        "# written by onestack lab: this host's own sshd",
        f"ListenAddress {address}",
        "Port 22",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "AuthorizedKeysFile /etc/ssh/authorized_keys",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        # Debian's sshd refuses root's key login without PAM (root's password is '*').
        "UsePAM yes",
        # The keys live under the lab's directory, whose parents may be group-writable.
        "StrictModes no",
        "PidFile /run/sshd.pid",
        "PrintMotd no",
        "UseDNS no",
        "X11Forwarding no",
        f"Subsystem sftp {SFTP_SERVER}",
        "",
    ])


def render_init_script(host: LabHostSpec) -> str:
    """What runs as the host's first process: its hostname, mounts, /proc, then sshd.

    sshd replaces the script (``exec``), so it is PID 1 of the host's PID namespace:
    killing it ends every process of the host at once, like a power-off."""
    lines = ["set -eu", f"hostname {shlex.quote(host.name)}"]
    for source, target in mount_order(host.mounts()):
        lines.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(target))}")
    lines += [
        "mkdir -p /run/sshd",
        "chmod 0755 /run/sshd",
        "mount -t proc proc /proc",
        f"exec {SSHD} -D -f /etc/ssh/sshd_config -E /var/log/sshd.log",
    ]
    return "\n".join(lines) + "\n"


def render_known_hosts(entries: list[tuple[str, str]]) -> str:
    """known_hosts lines from (address, "key-type base64") pairs, sorted by address."""
    ordered = sorted(entries, key=lambda e: ipaddress.IPv4Address(e[0]))
    return "".join(f"{address} {key}\n" for address, key in ordered)


def foreign_addresses(ip_addr_output: str, lab: LabSpec) -> list[str]:
    """Devices other than the lab's bridge holding an address in the lab's network.

    Reads ``ip -o -4 addr show`` output; each finding reads "ADDRESS on DEVICE"."""
    found = []
    for line in ip_addr_output.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[2] != "inet":
            continue
        device, iface = parts[1], ipaddress.IPv4Interface(parts[3])
        if device != lab.bridge and iface.network.overlaps(lab.net):
            found.append(f"{iface.ip} on {device}")
    return found
