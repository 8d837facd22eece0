"""End to end: the all-in-one site as `onestack up` deploys it by default, with real
instances: nova-compute with the libvirt driver (QEMU), OVN with Open vSwitch's
userspace datapath, the Day-1 content (test image, flavors, public network with
floating IPs on br-ex, private network, router).

Deployed once for the module; in order: status shows libvirt, the switch and OVN;
verify boots two servers and reaches them (SSH through a floating IP, east-west ping,
a security group enforced); a server's floating IP answers SSH while ovs-vswitchd is
killed (the gap measured) and across an upgrade that fails and rolls back, then one
that commits (failed probes counted: target 0); `down --purge` leaves no guest,
bridge or sudoers file behind. Ports shifted by 600, its own home.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(os.geteuid() != 0, reason="a real cloud needs root"),
              pytest.mark.usefixtures("network_tools")]

REPO = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("ONESTACK_E2E_VM_HOME", "/var/tmp/onestack-e2e-vm"))
SITE = "vm"
SITE_FILE = HOME / "vm-site.yaml"
SITE_YAML = f"""name: {SITE}
release: "2026.1"
port_offset: 600
hosts:
  - name: aio
    address: 127.0.0.1
"""
TO = "2026.2"
NAME = "e2e-vm"  # the server, key pair and security group this module makes


def onestack(*args: str, check: bool = True, fault: str | None = None,
             timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    cmd = [str(REPO / "onestack"), "--home", str(HOME), "--site", SITE, *args]
    env = {k: v for k, v in os.environ.items() if k != "ONESTACK_FAULT"}
    if fault:
        env["ONESTACK_FAULT"] = fault
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    sys.stdout.write(f"$ {' '.join(cmd)} (fault={fault})\n{proc.stdout}"
                     f"{proc.stderr[-4000:]}\n")
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}\n{proc.stderr[-4000:]}")
    return proc


def openstack_cli(*args: str) -> str:
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(HOME / "sites" / SITE / "clouds.yaml")}
    cmd = [str(REPO / ".venv" / "bin" / "openstack"), "--os-cloud", "onestack", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


@pytest.fixture(scope="module", autouse=True)
def site() -> Iterator[None]:
    if (HOME / "sites" / SITE).exists():
        onestack("down", "--purge", "--yes", check=False)
    HOME.mkdir(parents=True, exist_ok=True)
    SITE_FILE.write_text(SITE_YAML)
    started = time.monotonic()
    onestack("up", "--site-file", str(SITE_FILE))
    sys.stdout.write(f"up of the libvirt + OVN all-in-one: {time.monotonic() - started:.1f}s\n")
    yield
    if os.environ.get("ONESTACK_E2E_KEEP") != "1":
        onestack("down", "--purge", "--yes", check=False)


@dataclass
class DataPath:
    """TCP connections to a floating IP's SSH port, every 0.25 s, in a thread: how
    many failed, and the longest time without a successful one. A completed handshake
    is the data path working both ways (the guest's kernel answers); the banner, which
    an emulated guest on a busy host may send late, is not waited for."""

    address: str
    ok: int = 0
    failed: int = 0
    longest_gap: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _probe(self) -> bool:
        try:
            with socket.create_connection((self.address, 22), timeout=5):
                return True
        except OSError:
            return False

    def answers_ssh(self) -> bool:
        try:
            with socket.create_connection((self.address, 22), timeout=5) as conn:
                conn.settimeout(5)
                return conn.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    def _run(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            if self._probe():
                self.ok += 1
                self.longest_gap = max(self.longest_gap, started - last_ok)
                last_ok = started
            else:
                self.failed += 1
            self._stop.wait(max(0.0, 0.25 - (time.monotonic() - started)))

    def __enter__(self) -> DataPath:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)
        sys.stdout.write(f"data path to {self.address}: {self.ok} ok, {self.failed} failed, "
                         f"longest gap {self.longest_gap:.2f}s\n")


def _status() -> dict[str, Any]:
    proc = onestack("status", "--json", check=False)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _component_names(status: dict[str, Any]) -> dict[str, bool]:
    return {c["process"]: c["healthy"] for c in status["components"]}


def test_status_shows_libvirt_the_switch_and_ovn_healthy() -> None:
    components = _component_names(_status())
    for name in ("libvirtd", "virtlogd", "ovsdb-server", "ovs-vswitchd", "ovn-nb-db",
                 "ovn-sb-db", "ovn-northd", "ovn-controller", "nova-compute",
                 "neutron-ovn-agent", "nova-metadata-api"):
        assert components.get(name) is True, (name, components)


def test_verify_boots_instances_and_reaches_them() -> None:
    proc = onestack("verify", "--json")
    results = {r["name"]: r for r in json.loads(proc.stdout)["checks"]}
    for name in ("instances ACTIVE (2 servers)", "instance floating IP + SSH",
                 "instance metadata service", "instance to instance ping",
                 "security group enforced", "instance cleanup"):
        assert results[name]["passed"] and not results[name].get("skipped"), results[name]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server on the private network with a floating IP whose SSH port answers."""
    keys = tmp_path_factory.mktemp("keys")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "k")],
                   check=True)
    openstack_cli("keypair", "create", "--public-key", str(keys / "k.pub"), NAME)
    openstack_cli("security group", "create", NAME)
    openstack_cli("security group rule", "create", "--protocol", "tcp", "--dst-port", "22",
                  NAME)
    openstack_cli("server", "create", "--flavor", "m1.nano", "--image", "onestack-guest",
                  "--network", "private", "--key-name", NAME, "--security-group", NAME,
                  "--wait", NAME)
    address = openstack_cli("floating ip", "create", "public", "-f", "value",
                            "-c", "floating_ip_address")
    openstack_cli("server", "add", "floating ip", NAME, address)
    path = DataPath(address)
    deadline = time.monotonic() + 180
    while not path.answers_ssh():
        assert time.monotonic() < deadline, f"SSH on {address} never answered"
        time.sleep(1)
    yield address


def _kill_main_process(program: str) -> None:
    pids = [c["pid"] for c in _status()["components"] if c["process"] == program]
    assert pids and pids[0], program
    os.kill(int(pids[0]), 9)


def test_switch_restart_loses_the_data_path_only_while_it_restarts(server: str) -> None:
    with DataPath(server) as path:
        time.sleep(2)
        _kill_main_process("ovs-vswitchd")
        deadline = time.monotonic() + 60
        before = path.ok
        while path.ok < before + 8 and time.monotonic() < deadline:
            time.sleep(0.5)
    assert path.ok >= before + 8, "the floating IP did not answer again within 60 s"
    assert path.longest_gap < 30, path.longest_gap
    assert _component_names(_status())["ovs-vswitchd"] is True


def test_upgrade_rolled_back_then_applied_keeps_the_data_path(server: str) -> None:
    with DataPath(server) as path:
        proc = onestack("upgrade", "apply", "--to", TO, check=False,
                        fault=f"fail:upgrade-{TO}/verify/site/smoke-tests")
        assert proc.returncode != 0 and "rolled back" in proc.stderr
        onestack("upgrade", "apply", "--to", TO)
    assert path.ok > 0
    assert path.failed == 0, f"{path.failed} probes failed, longest gap {path.longest_gap:.1f}s"
    status = _status()
    assert all(c["healthy"] for c in status["components"]), status


def test_purge_leaves_no_guest_bridge_or_sudoers_file(server: str) -> None:
    """``down`` first (libvirtd stops, the guest's QEMU runs on), then the purge: the
    guest that libvirt could no longer be asked about is still killed and undefined."""
    instances = HOME / "sites" / SITE / "data" / "nova" / "instances"
    proxies = str(HOME / "sites" / SITE / "data" / "neutron-ovn-agent")
    assert proxies in _pgrep("haproxy")  # the server's network has its metadata proxy
    onestack("down")
    assert str(instances) in _pgrep("qemu-system")  # the server's guest outlived libvirtd
    assert proxies not in _pgrep("haproxy")  # down stopped what the agent left running
    onestack("down", "--purge", "--yes")
    assert str(instances) not in _pgrep("qemu-system")
    assert not [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout.split() if n.startswith("ovnmeta-")]
    left = [p.name for p in Path("/etc/libvirt/qemu").glob("*.xml")
            if "openstack.org/xmlns/libvirt/nova" in p.read_text()]
    assert left == [], left
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert "br-ex" not in links and "br-int" not in links
    assert not Path(f"/etc/sudoers.d/onestack-{SITE}-nova").exists()
    assert shutil.which("virsh")  # libvirt's client stays: the host's package


def _pgrep(pattern: str) -> str:
    return subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
