"""Lab hosts on this machine: namespaces, a bridge without uplink, one sshd per host.

Each host gets its own network namespace (an address on the lab's bridge, no
default route), mount namespace (its own /etc/ssh, /etc/hostname,
/var/lib/onestack, /var/log and /run, bind-mounted from its directory under the
lab), UTS namespace (hostname) and PID namespace whose PID 1 is its sshd: killing
that process powers the host off. Nothing here forwards, NATs or routes traffic
off the machine. The layout (names, addresses, configs) is data in
:mod:`onestack.drivers.lab_layout`; this module only acts on it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from onestack.drivers import apt
from onestack.drivers.host import LocalHost
from onestack.drivers.host_keys import write_known_hosts
from onestack.drivers.lab_layout import (
    LabHostSpec,
    LabSpec,
    LabSpecError,
    foreign_addresses,
    render_init_script,
    render_known_hosts,
    render_sshd_config,
)
from onestack.drivers.processes import running_here
from onestack.drivers.supervisor import SUPERVISOR_PACKAGE, WRAPPER_PACKAGES
from onestack.errors import CommandError, LabHostError, PrerequisiteError

HOST_PACKAGES = ("openssh-server", SUPERVISOR_PACKAGE, *WRAPPER_PACKAGES, "python3")
# Each command the lab runs, and the Debian package that has it.
REQUIRED_COMMANDS = {"ip": "iproute2", "unshare": "util-linux", "setsid": "util-linux",
                     "ssh-keygen": "openssh-client", "ssh-keyscan": "openssh-client",
                     "mount": "mount"}
BOOT_TIMEOUT = 10.0
TUNNEL_NIC = "eth1"  # each lab host's second cable, for a site's tunnel endpoint
LAB = "lab"  # the name errors use for the lab as a whole (bridge, keys)

Say = Callable[[str], None]


@dataclass(frozen=True)
class LabHostState:
    """What ``lab hosts list`` shows of one host."""

    name: str
    address: str
    power: str  # "on" or "off"
    pid: int | None
    netns: str
    veth: str
    dir: str
    tunnel_interface: str = TUNNEL_NIC  # its second cable (no address), for tunnel:

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LabChange:
    """What a lab command did to one host: created, powered-on, unchanged..."""

    host: str
    change: str


class Lab:
    """The lab hosts of one onestack home, acted on through the local machine."""

    def __init__(self, spec: LabSpec, say: Say | None = None,
                 packages: Sequence[str] = ()) -> None:
        """``packages``: the Debian packages a site's roles install on its hosts
        (``services.registry.lab_host_packages``): lab hosts share this machine's
        /usr and have no uplink, so this machine installs them for them."""
        self.spec = spec
        self.local = LocalHost("lab")
        self.say = say or (lambda _msg: None)
        self.packages = tuple(dict.fromkeys((*HOST_PACKAGES, *packages)))

    @classmethod
    def open(cls, home: Path, bridge: str | None = None, network: str | None = None,
             say: Say | None = None, packages: Sequence[str] = ()) -> Lab:
        """The lab recorded under home, or a new one with the given bridge and network.

        A lab keeps the bridge and network it was created with; asking for others
        while it exists is refused rather than silently ignored."""
        recorded = _read_state(home)
        if recorded is None:
            return cls(_spec(home, bridge, network), say, packages)
        spec = _spec(home, recorded["bridge"], recorded["network"])
        for asked, have, what in ((bridge, spec.bridge, "bridge"),
                                  (network, spec.network, "network")):
            if asked is not None and asked != have:
                raise LabHostError(LAB, f"this lab uses {what} {have}, not {asked} "
                                        "(delete it first to change)")
        return cls(spec, say, packages)

    # --- queries -------------------------------------------------------------

    def hosts(self) -> list[LabHostSpec]:
        """The hosts this lab has (their directories exist), in order."""
        if not self.spec.hosts_dir.is_dir():
            return []
        found = []
        for path in self.spec.hosts_dir.iterdir():
            try:
                found.append(self.spec.host_named(path.name))
            except LabSpecError:
                continue
        return sorted(found, key=lambda h: h.index)

    def host(self, name: str) -> LabHostSpec:
        """A host of this lab by name; LabHostError naming it if there is none."""
        try:
            host = self.spec.host_named(name)
        except LabSpecError as exc:
            raise LabHostError(name, str(exc)) from None
        if not host.dir.is_dir():
            raise LabHostError(name, f"no such lab host under {self.spec.home}")
        return host

    def state(self, host: LabHostSpec) -> LabHostState:
        pid = self._running_pid(host)
        return LabHostState(host.name, host.address, "on" if pid else "off", pid,
                            host.netns, host.veth, str(host.dir))

    def states(self) -> list[LabHostState]:
        return [self.state(h) for h in self.hosts()]

    # --- commands ------------------------------------------------------------

    def create(self, count: int) -> list[LabChange]:
        """Ensure lab1..lab<count> exist; new hosts are powered on. Idempotent:
        existing hosts keep their disk and power state."""
        self.check_prerequisites()
        self._ensure_bridge(LAB)  # before anything is written: refused if not ours
        self._write_state()
        self._ensure_client_key()
        changes = []
        for index in range(1, count + 1):
            host = self.spec.host(index)
            if host.dir.is_dir():
                changes.append(LabChange(host.name, "unchanged"))
                continue
            self._make_disk(host)
            self.power_on(host)
            changes.append(LabChange(host.name, "created"))
        self._write_known_hosts()
        return changes

    def power_on(self, host: LabHostSpec) -> bool:
        """Boot the host: namespaces, cable, sshd. False if it was already on."""
        if self._running_pid(host):
            return False
        self.check_prerequisites()
        self._ensure_bridge(host.name)
        self._ensure_netns(host)
        self._boot(host)
        return True

    def power_off(self, host: LabHostSpec) -> bool:
        """Kill every process of the host at once and unplug it; keep its disk.
        False if it was already off."""
        pid = self._running_pid(host)
        if pid:
            _kill_namespace_holder(pid)
        host.pid_file.unlink(missing_ok=True)
        for cable in (host.veth, host.tunnel_veth):  # unplugged now (a netns dies later)
            self._delete_link(cable, host.name)
        if self._netns_exists(host):
            # Anything still in the host's network namespace is the host's (a holder
            # whose pid file was lost, say): it goes down with the host.
            for stray in self._run(["ip", "netns", "pids", host.netns], host=host.name).split():
                _kill_namespace_holder(int(stray))
            self._ip("netns", "del", host.netns, host=host.name)
        return pid is not None

    def delete(self) -> list[LabChange]:
        """Power off and remove every host, the bridge and the lab's directory."""
        changes = []
        for host in self.hosts():
            self.power_off(host)
            changes.append(LabChange(host.name, "deleted"))
        if self._link_exists(self.spec.bridge):
            self._refuse_foreign_bridge(LAB)
            if self._link_exists(self.spec.tunnel_cable):
                self._ip("link", "del", self.spec.tunnel_cable, host=LAB)
            self._ip("link", "del", self.spec.bridge, host=LAB)
        if self.spec.home.exists():
            shutil.rmtree(self.spec.home, onerror=_gone_already)
        return changes

    # --- prerequisites -------------------------------------------------------

    def check_prerequisites(self) -> None:
        """Root, the namespace tools and sshd (installed with apt-get if missing)."""
        if os.geteuid() != 0:
            raise PrerequisiteError("lab hosts need root (namespaces, bridges, mounts)",
                                    "run onestack lab ... as root")
        # The lab's own tools, and (lab hosts share this machine's /usr and have no
        # uplink) what a onestack host needs from Debian (sshd, supervisor, the program
        # wrappers, Python), as a real host's OS image would have them, and what a
        # site's roles install on them (a lab host's apt-get has no mirror to reach).
        tools = {REQUIRED_COMMANDS[c] for c in REQUIRED_COMMANDS if self.local.which(c) is None}
        wanted = apt.missing(self.local, self.packages) | tools
        if wanted:
            apt.install(self.local, sorted(wanted), say=self.say)
        missing = [c for c in REQUIRED_COMMANDS if self.local.which(c) is None]
        if missing:
            raise PrerequisiteError(f"lab hosts need {', '.join(missing)}",
                                    "apt-get install iproute2 util-linux mount openssh-client")

    # --- disk ----------------------------------------------------------------

    def _make_disk(self, host: LabHostSpec) -> None:
        self.say(f"{host.name}: creating its disk under {host.dir}")
        _ensure_mount_points(host)
        host.hostname_file.write_text(f"{host.name}\n")
        os.chmod(host.tmp_dir, 0o1777)
        os.chmod(host.dir / "root", 0o700)
        os.chmod(host.etc_ssh, 0o755)
        self._keygen(host.etc_ssh / "ssh_host_ed25519_key", host.name, host.name)
        (host.etc_ssh / "sshd_config").write_text(render_sshd_config(host.address))
        authorized = host.etc_ssh / "authorized_keys"
        authorized.write_text(self.spec.key_file.with_suffix(".pub").read_text())
        os.chmod(authorized, 0o600)

    def _ensure_client_key(self) -> None:
        if not self.spec.key_file.exists():
            self.spec.home.mkdir(parents=True, exist_ok=True)
            self._keygen(self.spec.key_file, "onestack-lab", LAB)
        os.chmod(self.spec.key_file, 0o600)

    def _keygen(self, path: Path, comment: str, owner: str) -> None:
        if path.exists():
            return
        self._run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                   "-f", str(path)], host=owner)

    def _write_known_hosts(self) -> None:
        """The hosts' keys, replaced whole and atomically, 0600 like every known_hosts
        onestack writes (an older lab's 0644 one is closed too)."""
        entries = []
        for host in self.hosts():
            pub = (host.etc_ssh / "ssh_host_ed25519_key.pub").read_text().split()
            entries.append((host.address, f"{pub[0]} {pub[1]}"))
        write_known_hosts(self.spec.known_hosts, render_known_hosts(entries), None)

    def _write_state(self) -> None:
        self.spec.home.mkdir(parents=True, exist_ok=True)
        data = {"bridge": self.spec.bridge, "network": self.spec.network}
        self.spec.state_file.write_text(json.dumps(data, indent=2) + "\n")

    # --- network -------------------------------------------------------------

    def _ensure_bridge(self, name: str) -> None:
        bridge = self.spec.bridge
        if not self._link_exists(bridge):
            self._refuse_taken_addresses(name)
            self.say(f"creating bridge {bridge} ({self.spec.bridge_address}/"
                     f"{self.spec.prefixlen}, no uplink)")
            self._ip("link", "add", bridge, "type", "bridge", host=name)
            # The bridge's alias names its lab, so another lab never takes it over.
            self._ip("link", "set", bridge, "alias", self._owner_tag, host=name)
        self._refuse_foreign_bridge(name)
        addresses = self._run(["ip", "-o", "-4", "addr", "show", "dev", bridge], host=name)
        if f" {self.spec.bridge_address}/" not in addresses:
            self._refuse_taken_addresses(name)
            self._ip("addr", "add", f"{self.spec.bridge_address}/{self.spec.prefixlen}",
                     "dev", bridge, host=name)
        self._ip("link", "set", bridge, "up", host=name)
        _no_forwarding(bridge)
        self._ensure_tunnel_cable(name)

    def _ensure_tunnel_cable(self, name: str) -> None:
        """This machine's tunnel cable into the bridge (no address: a site whose
        controller is this machine gives it to its switch, ADR 0023)."""
        cable, port = self.spec.tunnel_cable, self.spec.tunnel_cable_port
        if not self._link_exists(cable):
            if self._link_exists(port):
                self._ip("link", "del", port, host=name)
            self._ip("link", "add", cable, "type", "veth", "peer", "name", port, host=name)
        self._answer_arp_for_own_addresses_only(cable, name)
        self._ip("link", "set", port, "master", self.spec.bridge, "up", host=name)
        self._ip("link", "set", cable, "up", host=name)

    @property
    def _owner_tag(self) -> str:
        return f"onestack-lab {self.spec.home.resolve()}"

    def _refuse_foreign_bridge(self, name: str) -> None:
        try:
            alias = Path("/sys/class/net", self.spec.bridge, "ifalias").read_text().strip()
        except OSError:
            alias = ""
        if alias != self._owner_tag:
            raise LabHostError(name, f"bridge {self.spec.bridge} exists and is not this lab's "
                                     f"({alias or 'no onestack alias'}); use another --bridge")

    def _refuse_taken_addresses(self, name: str) -> None:
        out = self._run(["ip", "-o", "-4", "addr", "show"], host=name)
        taken = foreign_addresses(out, self.spec)
        if taken:
            raise LabHostError(name, f"network {self.spec.network} is already in use here: "
                                     f"{', '.join(taken)}; pick another (--network)")

    def _ensure_netns(self, host: LabHostSpec) -> None:
        if self._netns_exists(host):
            self._ip("netns", "del", host.netns, host=host.name)  # a stale one
        for cable in (host.veth, host.tunnel_veth):
            self._delete_link(cable, host.name)
        self._ip("netns", "add", host.netns, host=host.name)
        self._ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0",
                 "address", host.mac, "netns", host.netns, host=host.name)
        # What this machine remembers of the host's link from before is void now.
        self._ip("neigh", "flush", "to", host.address, "dev", self.spec.bridge, host=host.name)
        self._ip("link", "set", host.veth, "master", self.spec.bridge, "up", host=host.name)
        inside = ("-n", host.netns)
        self._ip(*inside, "addr", "add", f"{host.address}/{self.spec.prefixlen}", "dev", "eth0",
                 host=host.name)
        self._ip(*inside, "link", "set", "lo", "up", host=host.name)
        self._ip(*inside, "link", "set", "eth0", "up", host=host.name)
        # The second cable: no address, for a site's tunnel endpoint (ADR 0023).
        # Fixed MAC, and it answers ARP only for its own addresses: the kernel's
        # default answers for eth0's address on eth1 too (both on one bridge), and
        # the other hosts then learn a MAC that changes at the next power-on.
        self._ip("link", "add", host.tunnel_veth, "type", "veth", "peer", "name",
                 TUNNEL_NIC, "address", host.tunnel_mac, "netns", host.netns, host=host.name)
        self._ip("link", "set", host.tunnel_veth, "master", self.spec.bridge, "up",
                 host=host.name)
        self._answer_arp_for_own_addresses_only(TUNNEL_NIC, host.name, netns=host.netns)
        self._ip(*inside, "link", "set", TUNNEL_NIC, "up", host=host.name)

    def _answer_arp_for_own_addresses_only(self, nic: str, host: str,
                                           netns: str | None = None) -> None:
        """arp_ignore=1 on one interface: a second cable into the same bridge must
        not answer ARP for the addresses of the first (ARP flux)."""
        inside = ["ip", "netns", "exec", netns] if netns else []
        self._run([*inside, "sh", "-c", 'echo 1 > "$0"',
                   f"/proc/sys/net/ipv4/conf/{nic}/arp_ignore"], host=host)

    def _delete_link(self, name: str, host: str) -> None:
        """Remove a cable's end if it is there. A cable whose other end was in a
        namespace that is going away disappears by itself, at any moment: gone between
        the check and the deletion is as good as deleted."""
        if not self._link_exists(name):
            return
        try:
            self.local.run(["ip", "link", "del", name], timeout=60)
        except CommandError as exc:
            if self._link_exists(name):
                raise LabHostError(host, f"{exc.command} failed: {exc.output.strip()}") from None

    def _netns_exists(self, host: LabHostSpec) -> bool:
        return Path("/run/netns", host.netns).exists()

    def _link_exists(self, name: str) -> bool:
        return Path("/sys/class/net", name).exists()

    # --- power ---------------------------------------------------------------

    def _boot(self, host: LabHostSpec) -> None:
        self.say(f"{host.name}: powering on ({host.address})")
        if host.run_dir.exists():  # /run starts empty at boot, as on a real host
            shutil.rmtree(host.run_dir)
        host.run_dir.mkdir()
        _ensure_mount_points(host)
        host.pid_file.unlink(missing_ok=True)
        argv = ["setsid", "-f", "sh", "-c", 'echo $$ > "$0"; exec "$@"', str(host.pid_file),
                "ip", "netns", "exec", host.netns,
                "unshare", "--mount", "--pid", "--uts", "--ipc", "--fork",
                "--propagation", "private", "--kill-child",
                "sh", "-c", render_init_script(host)]
        with open(host.console, "ab") as console:
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                           check=True)
        self._wait_for_sshd(host)

    def _wait_for_sshd(self, host: LabHostSpec) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self._running_pid(host) and _port_open(host.address, 22):
                return
            time.sleep(0.05)
        tail = _tail(host.console) + _tail(host.dir / "var" / "log" / "sshd.log")
        self.power_off(host)
        raise LabHostError(host.name, f"sshd did not come up on {host.address}:22 within "
                                      f"{BOOT_TIMEOUT:.0f}s; last output:\n{tail}")

    def _running_pid(self, host: LabHostSpec) -> int | None:
        """The pid holding the host's namespaces, if alive and really ours."""
        try:
            pid = int(host.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_namespace_holder(pid, host.netns) else None

    # --- commands on this machine ----------------------------------------------

    def _ip(self, *args: str, host: str) -> None:
        self._run(["ip", *args], host=host)

    def _run(self, argv: Sequence[str], host: str) -> str:
        try:
            return self.local.run(argv, timeout=60)
        except CommandError as exc:
            raise LabHostError(host, f"{exc.command} failed: {exc.output.strip()}") from None


def _ensure_mount_points(host: LabHostSpec) -> None:
    """Every bind mount's source (the host's disk) and target (this machine's folder it
    covers) exist: at creation, and at each boot (a disk made by an older onestack)."""
    for source, target in host.mounts():
        if source == host.hostname_file:
            source.parent.mkdir(parents=True, exist_ok=True)
            target.touch()  # a bind mount needs a file to cover
            continue
        target.mkdir(parents=True, exist_ok=True)  # e.g. no /var/lib/onestack here yet
        source.mkdir(parents=True, exist_ok=True)


def _gone_already(function: Callable[..., object], path: str, info: object) -> None:
    """rmtree's error handler: an entry that vanished meanwhile is what we wanted."""
    exc = info[1] if isinstance(info, tuple) else None
    if not isinstance(exc, FileNotFoundError):
        raise exc if isinstance(exc, BaseException) else OSError(f"cannot remove {path}")


def _spec(home: Path, bridge: str | None, network: str | None) -> LabSpec:
    try:
        return LabSpec(home, **{k: v for k, v in (("bridge", bridge), ("network", network))
                                if v is not None})
    except (LabSpecError, ValueError) as exc:
        raise LabHostError(LAB, str(exc)) from None


def _read_state(home: Path) -> dict[str, str] | None:
    try:
        data = json.loads((home / "lab.json").read_text())
    except FileNotFoundError:
        return None
    return {"bridge": str(data["bridge"]), "network": str(data["network"])}


def _is_namespace_holder(pid: int, netns: str) -> bool:
    """Whether pid is alive (not a zombie) and is the process we started for netns.

    Checked by its program and its network namespace, so a recycled pid is never
    taken for the host."""
    try:
        program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        same_netns = (os.stat(f"/proc/{pid}/ns/net").st_ino
                      == os.stat(f"/run/netns/{netns}").st_ino)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return running_here(pid) and program.endswith(b"unshare") and same_netns


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def _kill_namespace_holder(pid: int) -> None:
    """SIGKILL the host's PID 1 (every process of its namespace dies with it), then
    the unshare that holds it, and wait until both are gone."""
    victims = [*_children(pid), pid]
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(running_here(v) for v in victims):
        time.sleep(0.02)


def _no_forwarding(bridge: str) -> None:
    """Belt and braces: never route what arrives on the lab's bridge elsewhere."""
    try:
        Path(f"/proc/sys/net/ipv4/conf/{bridge}/forwarding").write_text("0\n")
    except OSError:
        pass  # read-only /proc/sys: hosts have no default route anyway


def _port_open(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((address, port)) == 0


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
    except FileNotFoundError:
        return ""
