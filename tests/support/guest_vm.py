"""Boot onestack's test image under QEMU (TCG, no KVM) for tests and benchmarks.

Networking stays on this machine: user-mode networking (slirp, restricted: no NAT
to the outside) with the guest's port 22 forwarded to 127.0.0.1, and optionally a
second NIC on a QEMU socket network between two guests (TCP on 127.0.0.1). The
serial console is a file, as nova's console log is.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from onestack.drivers import apt
from onestack.drivers.host import LocalHost

# Debian packages the tests need to boot and reach a guest (the image build installs
# its own tools).
VM_PACKAGES = {"qemu-system-x86_64": "qemu-system-x86", "genisoimage": "genisoimage",
               "ssh": "openssh-client", "qemu-img": "qemu-utils"}


def ensure_vm_tools() -> None:
    """Install QEMU, genisoimage and the SSH client if a command is missing."""
    missing = sorted({package for command, package in VM_PACKAGES.items()
                      if shutil.which(command) is None})
    if missing:
        apt.install(LocalHost(), missing)


def make_key(path: Path) -> Path:
    """A new ed25519 key pair without passphrase; returns the private key's path."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name,
                    "-f", str(path)], check=True)
    return path


def config_drive(path: Path, *, uuid: str, hostname: str, public_key: str,
                 user_data: str | None = None) -> Path:
    """An ISO 9660 config drive (label config-2), laid out as nova writes it."""
    tree = path.with_suffix(".d")
    latest = tree / "openstack" / "latest"
    latest.mkdir(parents=True)
    meta = {"uuid": uuid, "hostname": hostname, "name": hostname.split(".")[0],
            "public_keys": {"test": public_key}, "launch_index": 0,
            "keys": [{"name": "test", "type": "ssh", "data": public_key}]}
    (latest / "meta_data.json").write_text(json.dumps(meta))
    if user_data is not None:
        (latest / "user_data").write_text(user_data)
    subprocess.run(["genisoimage", "-quiet", "-o", str(path), "-V", "config-2", "-r", "-J",
                    str(tree)], check=True)
    return path


@dataclass
class Peer:
    """A second NIC on a point-to-point QEMU socket network (TCP on 127.0.0.1)."""

    port: int
    listen: bool
    mac: str

    def argv(self) -> list[str]:
        mode = "listen" if self.listen else "connect"
        return ["-netdev", f"socket,id=peer,{mode}=127.0.0.1:{self.port}",
                "-device", f"virtio-net-pci,netdev=peer,mac={self.mac},romfile="]


@dataclass
class GuestVm:
    """One running guest: its console file and forwarded SSH port."""

    name: str
    workdir: Path
    ssh_port: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)

    @property
    def console(self) -> Path:
        return self.workdir / "console.log"

    def console_text(self) -> str:
        try:
            return self.console.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def console_tail(self, lines: int = 30) -> str:
        return "\n".join(self.console_text().splitlines()[-lines:])

    def wait_for(self, marker: str, timeout: float) -> float:
        """Seconds from start until the console shows ``marker``; AssertionError with the
        console's tail after ``timeout`` or if QEMU exits."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if marker in self.console_text():
                return time.monotonic() - self.started
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        state = (f"QEMU exited {self.process.returncode}: {self.qemu_log()}"
                 if self.process.poll() is not None else f"not within {timeout:.0f}s")
        raise AssertionError(f"{self.name}: no {marker!r} on the console ({state}); console "
                             f"tail:\n{self.console_tail()}")

    def qemu_log(self) -> str:
        """What QEMU itself said (a port already in use, a missing firmware...)."""
        try:
            return (self.workdir / "qemu.log").read_text(errors="replace").strip()
        except FileNotFoundError:
            return ""

    def host_key_fingerprints(self) -> set[str]:
        """The host key fingerprints the guest printed on its console."""
        return set(re.findall(r"onestack-guest: host key (SHA256:\S+)", self.console_text()))

    def ssh(self, key: Path, command: str, known_hosts: Path | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command in the guest as root over SSH with this key."""
        checking = (["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
                    if known_hosts else
                    ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"])
        argv = ["ssh", "-i", str(key), "-p", str(self.ssh_port), "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
                *checking, "root@127.0.0.1", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


METADATA_INETD = Path(__file__).with_name("metadata_inetd.py")


def metadata_tree(root: Path, *, uuid: str, hostname: str, public_key: str,
                  ec2_key: str | None = None) -> Path:
    """Files a metadata service serves: meta_data.json and the EC2-style key."""
    latest = root / "openstack" / "latest"
    latest.mkdir(parents=True)
    meta = {"uuid": uuid, "hostname": hostname, "name": hostname,
            "public_keys": {"test": public_key}}
    (latest / "meta_data.json").write_text(json.dumps(meta))
    if ec2_key is not None:
        ec2 = root / "latest" / "meta-data" / "public-keys" / "0"
        ec2.mkdir(parents=True)
        (ec2 / "openssh-key").write_text(ec2_key)
    return root


def _user_netdev(ssh_port: int, metadata: Path | None) -> str:
    # restrict=on: the guest reaches nothing beyond slirp's own DHCP, the forwarded port
    # and the metadata service (no NAT to the host's networks).
    netdev = f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
    if metadata is None:
        return netdev
    # slirp forwards only addresses of its own network to a command: a link-local
    # network, so that 169.254.169.254 is one (each connection runs the command).
    command = f"{sys.executable} {METADATA_INETD} {metadata}"
    return (f"{netdev},net=169.254.0.0/16,"
            f"guestfwd=tcp:169.254.169.254:80-cmd:{command}")


@contextmanager
def booted(image: Path, workdir: Path, *, name: str, ssh_port: int,
           drive: Path | None = None, peer: Peer | None = None,
           metadata: Path | None = None, memory_mb: int = 256) -> Iterator[GuestVm]:
    """Boot the image (on a copy-on-write overlay) and stop the guest on exit.

    ``drive`` is a config drive; ``metadata`` a folder served as the metadata service
    at 169.254.169.254; ``peer`` a second NIC towards another guest."""
    workdir.mkdir(parents=True, exist_ok=True)
    overlay = workdir / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image),
                    str(overlay)], check=True)
    argv = ["nice", "-n", "10", "qemu-system-x86_64", "-accel", "tcg", "-m", str(memory_mb),
            "-nographic", "-monitor", "none", "-serial", f"file:{workdir / 'console.log'}",
            "-drive", f"file={overlay},if=virtio",
            "-netdev", _user_netdev(ssh_port, metadata),
            "-device", "virtio-net-pci,netdev=net0,romfile="]
    if drive is not None:
        argv += ["-drive", f"file={drive},media=cdrom,readonly=on"]
    if peer is not None:
        argv += peer.argv()
    log = (workdir / "qemu.log").open("wb")
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    vm = GuestVm(name, workdir, ssh_port, process)
    try:
        yield vm
    finally:
        vm.stop()
        log.close()


def wait_listening(port: int, timeout: float = 10) -> None:
    """Wait until something listens on 127.0.0.1:port (a guest's socket network)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def known_hosts_of(vm: GuestVm, path: Path) -> Path:
    """The guest's host keys as ssh-keyscan sees them, in a known_hosts file."""
    out = subprocess.run(["ssh-keyscan", "-p", str(vm.ssh_port), "-t", "ed25519,ecdsa",
                          "127.0.0.1"], capture_output=True, text=True, timeout=30).stdout
    path.write_text(out)
    return path


def fingerprints(known_hosts: Path) -> set[str]:
    """SHA256 fingerprints of the keys in a known_hosts file."""
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(known_hosts)], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[1] for line in out.splitlines() if line.strip()}
