"""Lab hosts on this machine, driven like remote hosts: over SSH through pyinfra.

Two hosts on a test bridge (ostk-t10, 198.18.10.0/24 unless ONESTACK_TEST_LAB_BRIDGE and
_NETWORK say otherwise; never an operator's): each has
its own hostname, address, filesystem view and processes; the connection's every
operation works on both; a changed host key is refused; power-off kills all of a
host's processes and power-on brings back its disk; delete leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from onestack.cli.main import cli
from onestack.core.digest import digest
from onestack.drivers import apt
from onestack.drivers.host import LocalHost
from onestack.drivers.lab_layout import LabSpec
from onestack.drivers.labhosts import Lab
from onestack.drivers.processes import running_here
from onestack.drivers.ssh_host import SshHost, SshTarget
from onestack.drivers.supervisor import (
    HOST_SUPERVISORD,
    SUPERVISOR_PACKAGE,
    HostSupervisor,
    Program,
    render_program,
    render_supervisord_conf,
)
from onestack.errors import (
    HostKeyChangedError,
    HostUnreachableError,
    LabHostError,
    ServiceStartError,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root"),
    pytest.mark.usefixtures("network_tools"),
]
# Overridable so that two engineers' runs on one machine never share a bridge.
BRIDGE = os.environ.get("ONESTACK_TEST_LAB_BRIDGE", "ostk-t10")
NETWORK = os.environ.get("ONESTACK_TEST_LAB_NETWORK", "198.18.10.0/24")
HOME_PREFIX = os.environ.get("ONESTACK_TEST_LAB_HOME_PREFIX", "lab10-")
_NET = NETWORK.rsplit(".", 1)[0]
ADDRESSES = {"lab1": f"{_NET}.11", "lab2": f"{_NET}.12"}
MARK = Path("/var/lib/onestack/lab-e2e-mark")
REACH = "import socket, sys; socket.create_connection((sys.argv[1], 22), 3).close()"


def _onestack(home: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix=HOME_PREFIX, dir="/tmp"))
    try:
        yield home
    finally:  # whatever happened: no namespace, bridge, veth or process stays
        if (home / "lab" / "lab.json").exists():
            Lab.open(home / "lab").delete()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(home: Path) -> LabSpec:
    out = _onestack(home, "lab", "hosts", "create", "2", "--bridge", BRIDGE,
                    "--network", NETWORK, "--json").output
    created = json.loads(out[out.index("{"):])
    assert [h["change"] for h in created["hosts"]] == ["created", "created"]
    return Lab.open(home / "lab").spec


def _connect(lab: LabSpec, name: str, known_hosts: Path | None = None) -> SshHost:
    return SshHost(SshTarget(name, ADDRESSES[name], lab.key_file,
                             known_hosts or lab.known_hosts, connect_timeout=5))


def test_create_is_idempotent_and_the_key_is_private(home: Path, lab: LabSpec) -> None:
    again = _onestack(home, "lab", "hosts", "create", "2").output
    assert "lab1: unchanged" in again and "lab2: unchanged" in again
    listed = json.loads(_onestack(home, "lab", "hosts", "list", "--json").output)
    assert [(h["name"], h["address"], h["power"]) for h in listed["hosts"]] == [
        ("lab1", ADDRESSES["lab1"], "on"), ("lab2", ADDRESSES["lab2"], "on")]
    assert lab.key_file.stat().st_mode & 0o777 == 0o600
    assert lab.key_file.read_text() not in again
    assert len(lab.known_hosts.read_text().splitlines()) == 2
    other = home / "other-home"
    with pytest.raises(LabHostError, match=f"bridge {BRIDGE} exists and is not this lab's"):
        CliRunner().invoke(cli, ["--home", str(other), "lab", "hosts", "create", "1",
                                 "--bridge", BRIDGE, "--network", NETWORK],
                           catch_exceptions=False)
    assert not (other / "lab" / "hosts").exists()


def test_each_host_is_a_separate_machine(lab: LabSpec) -> None:
    for name, address in ADDRESSES.items():
        host = _connect(lab, name)
        assert host.run(["hostname"]).strip() == name
        assert host.run(["cat", "/etc/hostname"]).strip() == name
        assert f"inet {address}/24" in host.run(["ip", "-4", "-o", "addr", "show", "eth0"])
        assert "default" not in host.run(["ip", "route"])  # nothing leaves the machine
        assert host.write_file(MARK, f"{name}\n")
        processes = host.run(["ps", "-e", "-o", "pid=,comm="]).split("\n")
        rows = [line.split() for line in processes if line.strip()]
        assert ["1", "sshd"] in rows and len(rows) <= 8, rows
        host.close()
    for name in ADDRESSES:  # each sees only its own /var/lib/onestack
        assert _connect(lab, name).run(["cat", str(MARK)]) == f"{name}\n"
    assert not MARK.exists()


def test_the_connection_works_on_both_hosts(lab: LabSpec) -> None:
    for name in ADDRESSES:
        host = _connect(lab, name)
        path = Path("/var/lib/onestack/etc/test.conf")
        assert host.write_file(path, "password = sekrit\n", mode=0o640)
        assert not host.write_file(path, "password = sekrit\n", mode=0o640)
        assert host.run(["stat", "-c", "%a", str(path)]).strip() == "640"
        assert host.file_digest(path) == digest("password = sekrit\n")
        out = host.run(["sh", "-c", 'echo "$TOKEN"'], env={"TOKEN": "a 'b' $c"})
        assert out == "a 'b' $c\n"
        # A secret for a command's stdin travels after the environment, never in argv.
        out = host.run(["sh", "-c", 'read -r pw; echo "$TOKEN:$pw"'], env={"TOKEN": "t"},
                       input="s3cret\n")
        assert out == "t:s3cret\n"
        assert host.run(["cat"], input="only stdin").strip() == "only stdin"
        assert host.port_holder(22) is not None and "sshd" in str(host.port_holder(22))
        assert host.port_holder(2222) is None
        assert host.list_dir(path.parent, "*.conf") == ["test.conf"]
        assert host.remove(path.parent) and not host.remove(path.parent)
        assert host.file_digest(path) is None
        assert host.which("python3") and host.which("no-such-program") is None
        host.close()


def test_file_facts_are_the_hosts_own(lab: LabSpec) -> None:
    host, other = _connect(lab, "lab1"), _connect(lab, "lab2")
    path = Path("/var/lib/onestack/facts/exact.txt")
    text = "no newline at the end\n\n  password = s3cret"
    assert host.write_file(path, text, mode=0o640)
    assert host.file_mode(path) == 0o640 and host.read_file(path) == text
    assert host.is_dir(path.parent) and not host.is_dir(path)
    assert other.file_mode(path) is None and other.read_file(path) is None
    assert not other.is_dir(path.parent)
    assert host.read_file(path.parent) is None
    assert host.remove(path.parent)
    host.close()
    other.close()


@pytest.fixture(scope="module")
def debian_supervisor() -> None:
    """Debian's supervisord, as a remote host's packages step installs it; lab hosts
    share this machine's /usr, so it is installed here, if missing, without starting
    Debian's own supervisor service (policy-rc.d must refuse service starts)."""
    if not Path(HOST_SUPERVISORD).exists():
        policy = Path("/usr/sbin/policy-rc.d")
        refuses = policy.exists() and subprocess.run(
            [str(policy), "supervisor", "start"], check=False).returncode == 101
        saved = policy.read_bytes() if policy.exists() else None
        if not refuses:  # Debian's own way to install a package without starting it
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        try:
            apt.install(LocalHost(), [SUPERVISOR_PACKAGE])
        finally:
            if not refuses and saved is None:
                policy.unlink()
            elif not refuses and saved is not None:
                policy.write_bytes(saved)
    assert not _debian_supervisord_running()


def test_host_supervisor_runs_the_sites_supervisord_on_the_host(
        lab: LabSpec, wrapper_packages: None, debian_supervisor: None) -> None:
    host, other = _connect(lab, "lab1"), _connect(lab, "lab2")
    site = Path("/var/lib/onestack/sites/h")
    run, log, progs = site / "run", site / "log", site / "supervisor"
    for d in (run, log, progs):
        host.ensure_dir(d)
    host.write_file(run / "supervisord.conf", render_supervisord_conf(run, log, progs))
    host.write_file(progs / "sleeper.conf", render_program(
        Program("sleeper", ["sleep", "1000"], startsecs=0, stopwaitsecs=2), log))
    sup = HostSupervisor(host, run / "supervisord.conf", run / "supervisor.sock")
    assert not sup.is_running()
    try:
        sup.start_daemon()
        assert sup.is_running() and sup.update() == []  # read at its start
        host.write_file(progs / "sleeper.conf", render_program(
            Program("sleeper", ["sleep", "2000"], startsecs=0, stopwaitsecs=2), log))
        assert sup.update() == ["sleeper"]
        assert str(sup.loaded_command("sleeper")).endswith("sleep 2000")
        sup.start("sleeper")
        assert sup.state("sleeper") == "RUNNING"
        with pytest.raises(ServiceStartError, match="BAD_NAME"):
            sup.start("no-such-program")
        daemon = (host.read_file(run / "supervisord.pid") or "").strip()
        assert host.run(["ps", "-o", "comm=", "-p", daemon]).strip() == "supervisord"
        assert "sleep" in host.run(["ps", "-e", "-o", "comm="])
        # Each host has its own: nothing on the other, nothing on this machine.
        assert not HostSupervisor(other, sup.conf, sup.socket_path).is_running()
        assert not Path(sup.socket_path).exists()
        assert not _debian_supervisord_running()
    finally:
        sup.shutdown()
        host.remove(site)
    assert not sup.is_running()
    left = host.run(["ps", "-e", "-o", "comm="]).split()
    assert "supervisord" not in left and "sleep" not in left
    host.close()
    other.close()


def _debian_supervisord_running() -> bool:
    """Whether any process on this machine runs with Debian's supervisord config."""
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and b"/etc/supervisor/supervisord.conf" in Path(
                    f"/proc/{entry}/cmdline").read_bytes():
                return True
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return False


def test_a_changed_host_key_is_refused_naming_the_host(lab: LabSpec, home: Path) -> None:
    lines = lab.known_hosts.read_text().splitlines()
    tampered = home / "known_hosts.tampered"
    tampered.write_text(f"{ADDRESSES['lab1']} {lines[1].split(' ', 1)[1]}\n{lines[1]}\n")
    with pytest.raises(HostKeyChangedError, match="host key of lab1") as caught:
        _connect(lab, "lab1", tampered).run(["true"])
    assert caught.value.host == "lab1"


def test_power_off_kills_every_process_and_power_on_keeps_the_disk(
        home: Path, lab: LabSpec) -> None:
    host, peer = _connect(lab, "lab2"), _connect(lab, "lab1")
    peer.run(["python3", "-c", REACH, ADDRESSES["lab2"]])  # host to host, on the bridge
    host.write_file(MARK, "kept across power cycles\n")
    host.run(["sh", "-c", "setsid sleep 600 >/dev/null 2>&1 < /dev/null &"])
    pids = _netns_pids(lab, "lab2")
    assert len(pids) >= 3  # unshare, sshd, the session, sleep
    _onestack(home, "lab", "host", "poweroff", "lab2")
    assert not [p for p in pids if running_here(p)]
    with pytest.raises(HostUnreachableError, match="lab2"):
        host.run(["true"])
    with pytest.raises(HostUnreachableError, match="lab2"):
        _connect(lab, "lab2").run(["true"])
    assert _connect(lab, "lab1").run(["hostname"]).strip() == "lab1"  # the other runs on
    _onestack(home, "lab", "host", "poweron", "lab2")
    again = _connect(lab, "lab2")
    assert again.run(["cat", str(MARK)]) == "kept across power cycles\n"
    assert "sleep" not in again.run(["ps", "-e", "-o", "comm="])
    peer.run(["python3", "-c", REACH, ADDRESSES["lab2"]])  # same MAC: no stale ARP entry
    # ... and the MAC is eth0's: the second cable (eth1, same bridge) never answers
    # ARP for eth0's address (it did, and its MAC was new at each boot).
    learned = peer.run(["ip", "neigh", "show", ADDRESSES["lab2"], "dev", "eth0"])
    assert lab.host_named("lab2").mac in learned, learned


def test_delete_leaves_nothing_behind(home: Path, lab: LabSpec) -> None:
    pids = _netns_pids(lab, "lab1") + _netns_pids(lab, "lab2")
    _onestack(home, "lab", "hosts", "delete", "--yes")
    assert not [p for p in pids if running_here(p)]
    assert not Path("/sys/class/net", BRIDGE).exists()
    assert not [n for n in os.listdir("/sys/class/net") if n.startswith(f"ol{lab.tag}")]
    netns = os.listdir("/run/netns") if Path("/run/netns").is_dir() else []
    assert not [n for n in netns if n.startswith(f"{BRIDGE}-")]
    assert not lab.home.exists()


def _netns_pids(lab: LabSpec, name: str) -> list[int]:
    netns = Path("/run/netns", lab.host_named(name).netns)
    inode = netns.stat().st_ino
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                    found.append(int(entry))
            except (FileNotFoundError, PermissionError):
                continue
    return found
