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
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.resources_before import FETCH, ResourcesBefore  # noqa: E402

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
    status = _status()
    # The APIs' certificate (issue 21: TLS at HAProxy): the site CA's, a year ahead.
    (cert,) = status["certificates"]
    assert cert["healthy"] and "127.0.0.1, aio: expires " in cert["detail"], cert
    components = _component_names(status)
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


# --- what a local user and a guest get (issue 21) -----------------------------------

LOCAL_USER = REPO / "tests" / "support" / "local_user.py"
NOBODY = ("/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
OFFSET = 600


def _attempt(attempts: list[list[Any]], as_nobody: bool = True) -> dict[str, str]:
    """tests/support/local_user.py's verdicts, run with the system's Python."""
    argv = [*(NOBODY if as_nobody else ()), "/usr/bin/python3", str(LOCAL_USER)]
    proc = subprocess.run(argv, input=json.dumps(attempts), capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads(proc.stdout)
    if as_nobody:
        assert answer["uid"] != 0 and answer["groups"] == [], answer["groups"]
    return answer["results"]  # type: ignore[no-any-return]


def _site_tree() -> tuple[list[str], list[str]]:
    """Every regular file and every socket of the site (its folder, its sockets' folder)."""
    files, sockets = [], []
    for top in (HOME / "sites" / SITE, HOME / "sockets" / SITE):
        for folder, _, names in os.walk(top):
            for name in names:
                path = os.path.join(folder, name)
                mode = os.lstat(path).st_mode
                if stat.S_ISREG(mode):
                    files.append(path)
                elif stat.S_ISSOCK(mode):
                    sockets.append(path)
    return files, sockets


def _tries(site: Path) -> list[list[Any]]:
    """Every way in that needs no credential: caches, databases, the broker, OVN and
    the switch, libvirt, the metadata socket, the namespaces' folder."""
    run = site / "run"
    db = ["mysql", "--connect-timeout=5", "-h", "127.0.0.1", "-P", str(13306 + OFFSET), "-e",
          "select 1"]
    return [
        ["tcp", "127.0.0.1", 11212 + OFFSET],  # memcached's old TCP port
        ["tcp", "127.0.0.1", 16641 + OFFSET], ["tcp", "127.0.0.1", 16642 + OFFSET],
        ["amqp", "127.0.0.1", 5682 + OFFSET, "guest", "guest"],
        ["run", *db, "-u", "root"], ["run", *db, "-u", "nova"],
        ["run", "ovn-nbctl", "--timeout=5", f"--db=unix:{run}/ovn/ovnnb_db.sock", "show"],
        ["run", "ovn-sbctl", "--timeout=5", f"--db=unix:{run}/ovn/ovnsb_db.sock", "show"],
        ["run", "ovs-vsctl", "--timeout=5", f"--db=unix:{run}/openvswitch/db.sock", "show"],
        ["run", "virsh", "-c", f"qemu+unix:///system?socket={run}/libvirt/libvirt-sock", "list"],
        ["run", "virsh", "-c", f"qemu+unix:///system?socket={run}/libvirt/libvirt-sock-ro",
         "list"],
        ["mkdir", "/run/netns/ovnmeta-planted-by-nobody"],
    ]


def test_a_local_user_gets_nothing(before: ResourcesBefore) -> None:
    """As nobody: no file of the site (secrets, configuration, database, guests' disks)
    read or opened for writing, no socket of it connected to, no cache entry, database
    row, queue message, OVN or switch row, libvirt guest; nothing planted in
    /run/netns. (A server runs: its disks are among the files.)"""
    site = HOME / "sites" / SITE
    files, sockets = _site_tree()
    assert any("/nova/instances/" in f for f in files), "no guest disk found"
    assert any(s.endswith("memcached.sock") for s in sockets)
    assert any(s.endswith("metadata_proxy") for s in sockets)
    definitions = [str(p) for p in Path("/etc/libvirt/qemu").glob("*.xml")]
    attempts = ([["read", f] for f in files + definitions] + [["write", f] for f in files]
                + [["unix", s] for s in sockets] + _tries(site))
    results = _attempt(attempts)
    got = {k: v for k, v in results.items() if not v.startswith("refused")}
    sys.stdout.write(f"as nobody: {len(results)} attempts ({len(files)} files, "
                     f"{len(sockets)} sockets), {len(got)} not refused\n")
    assert got == {}
    assert stat.S_IMODE(os.stat("/run/netns").st_mode) == 0o755
    # The same tools with what root has do get in: none of the refusals above is a
    # broken tool (the broker's site user and password, read from the secrets).
    password = yaml.safe_load((site / "secrets").read_text())["rabbitmq.openstack"]
    control = _attempt([["read", str(site / "secrets")],
                        ["unix", str(site / "run" / "memcached" / "memcached.sock")],
                        ["amqp", "127.0.0.1", 5682 + OFFSET, "openstack", password],
                        *_tries(site)[6:8]], as_nobody=False)
    assert all(v.startswith("GOT") for v in control.values()), list(control.values())


def _processes() -> list[tuple[str, str, list[str], str]]:
    """(user, group, supplementary groups, command line) of every process."""
    out = subprocess.run(["ps", "-ww", "-eo", "user:32=,group:32=,supgrp:200=,args="],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        user, group, groups, args = line.split(None, 3)
        rows.append((user, group, groups.split(","), args))
    return rows


WRAPPERS = ("/usr/bin/unshare ", "/usr/bin/tini ", "/usr/bin/setpriv ")


def test_no_openstack_process_runs_as_root_and_qemu_is_not_nova(
        before: ResourcesBefore) -> None:
    rows = _processes()
    releases = str(HOME / "releases")
    openstack = [r for r in rows if releases in r[3] and not r[3].startswith(WRAPPERS)]
    assert openstack, "no OpenStack process found"
    as_root = [r[3][:160] for r in openstack if r[0] == "root" and "privsep-helper" not in r[3]]
    assert as_root == []
    qemu = [r for r in rows if "qemu-system" in r[3] and "guest=" in r[3]]
    assert qemu, "no guest's QEMU runs"
    for user, group, groups, _ in qemu:
        assert (user, group) == ("libvirt-qemu", "kvm")
        assert "nova" not in groups and "neutron" not in groups, groups


# A port the test listens on, on every address of the host, as anything listening on
# a wildcard address would.
WILDCARD_PORT = 18990 + OFFSET


def test_a_guest_reaches_no_port_of_the_host(before: ResourcesBefore) -> None:
    """From inside the old server: the host's address on br-ex (its gateway, through the
    server's router) refuses or drops a port that listens on every address; the
    metadata service still answers; the host's filter counted the drops."""
    with socket.create_server(("0.0.0.0", WILDCARD_PORT)) as listener:
        listener.settimeout(1)
        with socket.create_connection(("198.19.0.1", WILDCARD_PORT), timeout=3):
            pass  # the host itself reaches it there: only the guest's side is filtered
        before_drops = _filter_drops()
        out = before.in_server(
            f"for a in 198.19.0.1 10.20.0.1; do if echo x | nc -w 3 $a {WILDCARD_PORT} "
            ">/dev/null 2>&1; then echo \"open $a\"; else echo \"closed $a\"; fi; done",
            limit=30)
    assert "open" not in out and out.count("closed") == 2, out
    assert _filter_drops() > before_drops
    assert before.ids["server"] in before.in_server(FETCH), "metadata stopped answering"


def _filter_drops() -> int:
    out = subprocess.run(["nft", "list", "table", "inet", f"onestack_{SITE}"],
                         capture_output=True, text=True, check=True).stdout
    found = re.search(r"counter packets (\d+) bytes \d+ drop", out)
    assert found, out
    return int(found.group(1))


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
    try:
        openstack_cli("server", "create", "--flavor", "m1.nano", "--image", "onestack-guest",
                      "--network", "private", "--wait", NAME)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_why_server_failed(NAME)}") from None
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
    assert not Path(f"/etc/sudoers.d/onestack-{SITE}-neutron").exists()
    assert not (HOME / "sockets" / SITE).exists()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"onestack_{SITE}" not in tables
    assert shutil.which("virsh")  # libvirt's client stays: the host's package


def _why_server_failed(name: str) -> str:
    """The server's fault and the errors nova logged, for a failure's message."""
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(HOME / "sites" / SITE / "clouds.yaml")}
    show = subprocess.run([str(REPO / ".venv" / "bin" / "openstack"), "--os-cloud", "onestack",
                           "server", "show", name, "-f", "json", "-c", "status", "-c", "fault"],
                          capture_output=True, text=True, env=env, timeout=120).stdout
    logs = HOME / "sites" / SITE / "log"
    errors = [line for program in ("nova-compute", "nova-conductor", "nova-scheduler")
              for line in (logs / f"{program}.log").read_text(errors="replace").splitlines()
              if " ERROR " in line][-20:] if logs.is_dir() else []
    return f"server: {show}\nnova's last errors:\n" + "\n".join(errors)


def _pgrep(pattern: str) -> str:
    return subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
