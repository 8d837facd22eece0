"""End to end: the all-in-one site as `onestack up` deploys it by default, with real
instances: nova-compute with the libvirt driver (QEMU), OVN with Open vSwitch's
userspace datapath, the Day-1 content (test image, flavors, public network with
floating IPs on br-ex, private network, router).

Deployed once for the module; in order: status shows libvirt, the switch and OVN;
resources are made on the first release the way upstream's Grenade does
(tests/support/resources_before.py: a project and user, an image, a key pair, a
security group, two networks behind a router, a server with a config drive and a
floating IP); the server's floating IP answers SSH while ovs-vswitchd is killed (the
gap measured) and across an upgrade that fails and rolls back, then one that commits
(failed probes counted: target 0); after each, every resource is checked through the
release that runs (the server's SSH and metadata, the longest metadata gap it saw,
new servers on both networks get metadata and answer its ping, the user logs in, the
image has its bytes); `verify` after the upgrade boots its own servers and reaches
them; the resources are deleted through the new release; `down --purge` leaves no
guest, bridge or sudoers file behind. Ports shifted by 600, its own home.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.resources_before import ResourcesBefore  # noqa: E402

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
NAME = "e2e-vm"  # the server the purge test makes
# An old server may go without an answer from the metadata service across an upgrade
# or a rollback no longer than neutron's OVN agent takes to restart (measured in its
# log), plus the poll's own granularity (1 s between requests, 3 s timeout each).
POLL_SLACK = 8.0


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


@pytest.fixture(scope="module")
def before(tmp_path_factory: pytest.TempPathFactory) -> ResourcesBefore:
    """The Grenade-style resource set, made on the release the site starts on; its
    server's floating IP answers SSH."""
    resources = ResourcesBefore(HOME / "sites" / SITE / "clouds.yaml",
                                tmp_path_factory.mktemp("before"))
    started = time.monotonic()
    resources.create()
    sys.stdout.write(f"resources made before the upgrade in {time.monotonic() - started:.0f}s\n")
    return resources


def _kill_main_process(program: str) -> None:
    pids = [c["pid"] for c in _status()["components"] if c["process"] == program]
    assert pids and pids[0], program
    os.kill(int(pids[0]), 9)


def test_switch_restart_loses_the_data_path_only_while_it_restarts(
        before: ResourcesBefore) -> None:
    with DataPath(before.fip) as path:
        time.sleep(2)
        _kill_main_process("ovs-vswitchd")
        deadline = time.monotonic() + 60
        ok = path.ok
        while path.ok < ok + 8 and time.monotonic() < deadline:
            time.sleep(0.5)
    assert path.ok >= ok + 8, "the floating IP did not answer again within 60 s"
    assert path.longest_gap < 30, path.longest_gap
    assert _component_names(_status())["ovs-vswitchd"] is True


def test_an_upgrade_rolled_back_keeps_what_was_made_before(before: ResourcesBefore) -> None:
    with DataPath(before.fip) as path:
        proc = onestack("upgrade", "apply", "--to", TO, check=False,
                        fault=f"fail:upgrade-{TO}/verify/site/smoke-tests")
    assert proc.returncode != 0 and "rolled back" in proc.stderr
    assert path.ok > 0
    assert path.failed == 0, f"{path.failed} probes failed, longest gap {path.longest_gap:.1f}s"
    _assert_metadata_gap(before.check("rollback"))


def test_an_upgrade_applied_keeps_what_was_made_before(before: ResourcesBefore) -> None:
    with DataPath(before.fip) as path:
        onestack("upgrade", "apply", "--to", TO)
    assert path.ok > 0
    assert path.failed == 0, f"{path.failed} probes failed, longest gap {path.longest_gap:.1f}s"
    _assert_metadata_gap(before.check("upgrade"))
    status = _status()  # neutron's API healthy includes its OVN hash ring: live workers only
    assert all(c["healthy"] for c in status["components"]), status


def _agent_restarts() -> list[float]:
    """How long each restart of neutron's OVN agent kept it from serving, from its log:
    the old process's SIGTERM to the new one's 'OVN Neutron Agent started'."""
    log = (HOME / "sites" / SITE / "log" / "neutron-ovn-agent.log").read_text(errors="replace")
    restarts, stopped = [], None
    for line in log.splitlines():
        stamp = line[:23]
        if "Caught SIGTERM signal, graceful exiting of master process" in line:
            stopped = time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S"))
        elif "OVN Neutron Agent started" in line and stopped is not None:
            started = time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S"))
            restarts.append(started - stopped)
            stopped = None
    return restarts


def _assert_metadata_gap(gap: float) -> None:
    restarts = _agent_restarts()
    sys.stdout.write(f"longest metadata gap {gap:.0f}s; the agent's restarts: {restarts}\n")
    assert restarts, "no restart of the agent in its log"
    assert gap <= max(restarts) + POLL_SLACK, \
        f"the old server went {gap:.0f}s without metadata; the agent restarted in " \
        f"{max(restarts):.0f}s"


def test_verify_after_the_upgrade_boots_instances_and_reaches_them() -> None:
    proc = onestack("verify", "--json")
    results = {r["name"]: r for r in json.loads(proc.stdout)["checks"]}
    for name in ("instances ACTIVE (2 servers)", "instance floating IP + SSH",
                 "instance metadata service", "instance to instance ping",
                 "security group enforced", "instance cleanup"):
        assert results[name]["passed"] and not results[name].get("skipped"), results[name]


def test_what_was_made_before_is_deleted_through_the_new_release(
        before: ResourcesBefore) -> None:
    before.delete()


def test_purge_leaves_no_guest_bridge_or_sudoers_file() -> None:
    """``down`` first (libvirtd stops, the guest's QEMU runs on), then the purge: the
    guest that libvirt could no longer be asked about is still killed and undefined."""
    instances = HOME / "sites" / SITE / "data" / "nova" / "instances"
    proxies = str(HOME / "sites" / SITE / "data" / "neutron-ovn-agent")
    openstack_cli("server", "create", "--flavor", "m1.nano", "--image", "onestack-guest",
                  "--network", "private", "--wait", NAME)
    deadline = time.monotonic() + 60
    while proxies not in _pgrep("haproxy"):  # the server's network gets its metadata proxy
        assert time.monotonic() < deadline, "no metadata proxy for the server's network"
        time.sleep(2)
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
