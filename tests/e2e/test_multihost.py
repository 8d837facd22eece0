"""A multi-host site over SSH with the default drivers (libvirt/QEMU and OVN), run
from this machine as its deploy host (issue 22): every host is a lab host built with
``onestack lab hosts create`` (namespaces, own sshd) and reached over SSH, the
controller too (lab1: the network host, gateway of routers and floating IPs, which
this machine reaches through lab1's SSH connection); each chassis tunnels through its
own cable (ADR 0023).

Deployed once for the module; the tests run in order: every host in status, verify
with real instances on two computes (floating IPs, SSH, metadata, ping across the
tunnel), servers on both computes, a compute's configuration naming the controller,
a third compute added with no process restarted anywhere else (PIDs compared), a
fourth powered off in the middle of its ``up`` and finished after power-on.
Ports shifted by 400, its own bridge and networks (ostk-mh0, 198.18.50.0/24, tunnels
198.18.51.0/24), its own home: nothing shared with another e2e site or an operator's
lab.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root"),
    pytest.mark.usefixtures("network_tools"),
]

REPO = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("ONESTACK_E2E_MH_HOME", "/var/tmp/onestack-e2e-mh"))
SITE = "mh"
BRIDGE = os.environ.get("ONESTACK_TEST_MH_BRIDGE", "ostk-mh0")
NETWORK = os.environ.get("ONESTACK_TEST_MH_NETWORK", "198.18.50.0/24")
_NET = NETWORK.rsplit(".", 1)[0]
CONTROLLER = f"{_NET}.11"  # lab1: the controller, reached over SSH from this machine
TUNNELS = os.environ.get("ONESTACK_TEST_MH_TUNNEL_NETWORK", "198.18.51.0/24")
_TUN = TUNNELS.rsplit(".", 1)[0]
SITE_FILE = HOME / "mh-site.yaml"
LAB = HOME / "lab"


def _site_yaml(computes: list[int]) -> str:
    """The site: controller lab1 (also the network host), computes lab<N> for N listed."""
    lines = [f"name: {SITE}", 'release: "2026.1"', "port_offset: 400", "hosts:"]
    for i, roles in [(1, "[controller, network]"), *((i, "[compute]") for i in computes)]:
        lines += [f"  - name: lab{i}", f"    address: {_NET}.{10 + i}", f"    roles: {roles}",
                  "    connection: ssh", f"    ssh_key: {LAB / 'id_ed25519'}",
                  f"    failure_domain: rack{i}",
                  f"    tunnel: {{interface: eth1, address: {_TUN}.{10 + i}/24}}"]
    return "\n".join(lines) + "\n"


def onestack(*args: str, check: bool = True,
             timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    cmd = [str(REPO / "onestack"), "--home", str(HOME), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    sys.stdout.write(f"$ {' '.join(cmd)}\n{proc.stdout[-6000:]}{proc.stderr[-4000:]}\n")
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}"
                    f"{proc.stderr[-3000:]}")
    return proc


def site_cmd(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A site command with the site file: ``site_cmd("host", "trust", ...)`` puts the
    option after the subcommand's name for groups."""
    split = 2 if args[0] in ("host", "upgrade") else 1
    return onestack(*args[:split], "--site-file", str(SITE_FILE), *args[split:], check=check)


def lab(*args: str) -> None:
    onestack("lab", *args, "--bridge", BRIDGE, "--network", NETWORK) if args[0] == "hosts" \
        and args[1] == "create" else onestack("lab", *args)


def trust(*names: str) -> dict[str, str]:
    """Record the hosts' keys in the site's own known_hosts; {host: change}."""
    out = site_cmd("host", "trust", *names, "--yes", "--json").stdout
    return {h["host"]: h["change"] for h in json.loads(out)["hosts"]}


def status() -> dict[str, Any]:
    proc = site_cmd("status", "--json", check=False)
    return dict(json.loads(proc.stdout))


def rows(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["host"], c["process"]): c for c in data["components"]}


def cloud() -> Any:
    import openstack

    os.environ["OS_CLIENT_CONFIG_FILE"] = str(HOME / "sites" / SITE / "clouds.yaml")
    return openstack.connect(cloud="onestack")


def _cleanup() -> None:
    if (HOME / "sites" / SITE).exists() and SITE_FILE.exists():
        onestack("down", "--purge", "--yes", "--site-file", str(SITE_FILE), check=False)
    if (LAB / "lab.json").exists():
        onestack("lab", "hosts", "delete", "--yes", check=False)
    shutil.rmtree(HOME, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def deployed() -> Iterator[None]:
    _cleanup()
    HOME.mkdir(parents=True)
    try:
        lab("hosts", "create", "3")
        SITE_FILE.write_text(_site_yaml([2, 3]))
        refused = site_cmd("plan", check=False)  # no host key recorded yet
        assert refused.returncode != 0 and "lab1" in refused.stderr, refused.stderr
        assert trust() == {"lab1": "recorded", "lab2": "recorded", "lab3": "recorded"}
        assert trust("lab2") == {"lab2": "already trusted"}
        site_cmd("up")
        yield
    finally:
        _cleanup()


def test_every_host_is_deployed_and_in_status() -> None:
    data = status()
    assert data["healthy"], data
    assert set(data["hosts"]) == {"lab1", "lab2", "lab3"}
    by = rows(data)
    on_computes = {"nova-compute", "libvirtd", "virtlogd", "ovsdb-server", "ovs-vswitchd",
                   "ovn-controller", "neutron-ovn-agent"}
    for host in ("lab2", "lab3"):
        for process in on_computes:
            row = by[(host, process)]
            assert row["state"] == "RUNNING" and row["healthy"], row
    assert {c["process"] for c in data["components"] if c["host"] != "lab1"} == on_computes


def test_verify_runs_real_instances_across_two_computes() -> None:
    """Two servers forced onto lab2 and lab3: each reached over SSH through its floating
    IP (the controller's gateway chassis), each given its metadata by its own chassis's
    agent, each pinging the other across the Geneve tunnel. Nothing skipped."""
    proc = site_cmd("verify", "--instances", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert not [c for c in checks.values() if c["skipped"] or not c["passed"]], checks
    assert " on lab2" in checks["instances ACTIVE (2 servers)"]["detail"]
    assert " on lab3" in checks["instances ACTIVE (2 servers)"]["detail"]
    assert checks["instance metadata service"]["detail"].count("gave its own uuid") == 2
    assert checks["instance to instance ping"]["detail"].count("0% packet loss") == 2


def test_servers_land_on_both_computes() -> None:
    conn = cloud()
    flavor = conn.compute.find_flavor("mh.tiny") or conn.compute.create_flavor(
        name="mh.tiny", ram=64, vcpus=1, disk=0)
    image = conn.image.create_image(name="mh-boot", data=b"\0" * 65536, disk_format="raw",
                                    container_format="bare")
    servers, hosts = [], []
    try:  # one after the other, as a user would: each claim is seen by the next
        for i in range(4):
            servers.append(conn.compute.create_server(name=f"mh-{i}", flavor_id=flavor.id,
                                                      image_id=image.id, networks="none"))
            done = conn.compute.wait_for_server(servers[-1], status="ACTIVE", wait=120)
            hosts.append(done.compute_host)
        assert set(hosts) == {"lab2", "lab3"}, hosts
    finally:
        for server in servers:
            conn.compute.delete_server(server, ignore_missing=True)
        for server in servers:
            conn.compute.wait_for_delete(server, wait=120)
        conn.image.delete_image(image, ignore_missing=True)


def test_a_computes_configuration_names_the_controller_not_loopback() -> None:
    from onestack.drivers.ssh_host import SshHost, SshTarget

    host = SshHost(SshTarget("lab2", f"{_NET}.12", LAB / "id_ed25519",
                             HOME / "sites" / SITE / "known_hosts"))
    try:
        conf = host.read_file(HOME / "sites" / SITE / "etc" / "2026.1" / "nova" / "nova.conf")
    finally:
        host.close()
    assert conf is not None and f"@{CONTROLLER}:" in conf  # the broker
    assert "127.0.0.1" not in conf and "localhost" not in conf
    assert "[database]" not in conf  # computes reach the database through conductor
    # issue 21 (ADR 0025): the broker over TLS only, its certificate the internal CA's
    assert "ssl = true" in conf and "internal-ca.pem" in conf


AMQP_PROBE = """import socket, ssl, sys
address, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
plain = socket.create_connection((address, port), 5)
plain.sendall(b"AMQP\\x00\\x00\\x09\\x01")
try:
    print("plain:", plain.recv(7).hex() or "closed")
except OSError as exc:
    print("plain:", type(exc).__name__)
context = ssl.create_default_context(cafile=ca)
with context.wrap_socket(socket.create_connection((address, port), 5),
                         server_hostname=address) as tls:
    tls.sendall(b"AMQP\\x00\\x00\\x09\\x01")
    print("tls:", tls.recv(7).hex())
"""


def test_a_compute_reaches_the_broker_over_tls_only() -> None:
    from onestack.drivers.ssh_host import SshHost, SshTarget

    host = SshHost(SshTarget("lab2", f"{_NET}.12", LAB / "id_ed25519",
                             HOME / "sites" / SITE / "known_hosts"))
    try:
        out = host.run(["python3", "-c", AMQP_PROBE, CONTROLLER, str(5682 + 400),
                        str(HOME / "sites" / SITE / "tls" / "internal-ca.pem")])
    finally:
        host.close()
    said = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert not said["plain"].startswith("01"), out  # no AMQP frame without TLS
    assert said["tls"].startswith("010000"), out  # connection.start, through TLS


def test_a_chassis_reaches_the_southbound_only_over_tls_and_changes_only_its_own_rows(
        ) -> None:
    """issue 21 (ADR 0025): from lab2, plain TCP to either OVN database gets nothing;
    TLS with lab2's certificate may change lab2's chassis, never lab3's nor the
    database's global settings (RBAC role ovn-controller)."""
    from onestack.drivers.ssh_host import SshHost, SshTarget
    from onestack.errors import CommandError

    host = SshHost(SshTarget("lab2", f"{_NET}.12", LAB / "id_ed25519",
                             HOME / "sites" / SITE / "known_hosts"))
    tls = HOME / "sites" / SITE / "etc" / "infra" / "ovn" / "tls"
    ssl = [f"--db=ssl:{CONTROLLER}:{16642 + 400}", f"--private-key={tls}/key.pem",
           f"--certificate={tls}/cert.pem", f"--ca-cert={tls}/ca.pem", "--timeout=20"]
    try:
        for tool, port in (("ovn-sbctl", 16642), ("ovn-nbctl", 16641)):
            with pytest.raises(CommandError):
                host.run([tool, f"--db=tcp:{CONTROLLER}:{port + 400}", "--timeout=5",
                          "--no-leader-only", "list", "Connection"], timeout=60)
        host.run(["ovn-sbctl", *ssl, "set", "Chassis", "lab2", "external_ids:rbac-check=1"])
        host.run(["ovn-sbctl", *ssl, "remove", "Chassis", "lab2", "external_ids", "rbac-check"])
        for target in (["Chassis", "lab3"], ["SB_Global", "."]):
            with pytest.raises(CommandError) as refused:
                host.run(["ovn-sbctl", *ssl, "set", *target, "external_ids:rbac-check=1"])
            assert "RBAC" in refused.value.output, refused.value.output
        chassis = host.run(["ovn-sbctl", *ssl, "--bare", "--columns=name", "list", "Chassis"])
        assert set(chassis.split()) == {"lab1", "lab2", "lab3"}  # reading is allowed
    finally:
        host.close()


METADATA_PROBE = """import socket, ssl, sys
address, port, etc = sys.argv[1], int(sys.argv[2]), sys.argv[3]
request = b"GET / HTTP/1.0\\r\\nHost: metadata\\r\\n\\r\\n"
def answer(sock):
    try:
        sock.sendall(request)
        text = sock.recv(4096).decode(errors="replace")
        return " ".join(text.split()) or "closed"
    except (OSError, ssl.SSLError) as exc:
        return type(exc).__name__
print("plain:", answer(socket.create_connection((address, port), 5)))
context = ssl.create_default_context(cafile=etc + "/internal-ca.pem")
try:
    with context.wrap_socket(socket.create_connection((address, port), 5),
                             server_hostname=address) as anonymous:
        print("no certificate:", answer(anonymous))
except (OSError, ssl.SSLError) as exc:
    print("no certificate:", type(exc).__name__)
context.load_cert_chain(etc + "/host-cert.pem", etc + "/host-key.pem")
with context.wrap_socket(socket.create_connection((address, port), 5),
                         server_hostname=address) as tls:
    print("certificate:", answer(tls))
"""


def test_a_chassis_reaches_the_metadata_api_only_over_tls_with_its_certificate() -> None:
    """issue 21 (ADR 0025): nova's metadata API is on the controller's loopback; other
    hosts' agents reach it through HAProxy, which wants a certificate of the internal
    CA. Plain HTTP and TLS without a client certificate get no answer from nova."""
    from onestack.drivers.ssh_host import SshHost, SshTarget

    host = SshHost(SshTarget("lab2", f"{_NET}.12", LAB / "id_ed25519",
                             HOME / "sites" / SITE / "known_hosts"))
    etc = HOME / "sites" / SITE / "etc" / "2026.1" / "neutron"
    try:
        out = host.run(["python3", "-c", METADATA_PROBE, CONTROLLER, str(18776 + 400),
                        str(etc)])
    finally:
        host.close()
    said = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert "latest" not in said["plain"] and "latest" not in said["no certificate"], out
    assert said["certificate"].startswith("HTTP/1.") and "latest" in said["certificate"], out


def _pids(data: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int]]:
    return {key: (c["pid"], c["supervised_pid"]) for key, c in rows(data).items()}


def test_a_third_compute_is_added_without_restarting_anything_else() -> None:
    before = _pids(status())
    lab("hosts", "create", "4")
    SITE_FILE.write_text(_site_yaml([2, 3, 4]))
    trust("lab4")
    planned = json.loads(site_cmd("plan", "--json").stdout)
    needed = [s for s in planned["steps"] if s["needed"]]
    assert needed and {s["host"] for s in needed} == {"lab4", "lab1"}, needed
    assert [s["id"] for s in needed if s["host"] == "lab1"] == ["nova/lab4/discover-hosts"]
    started = time.monotonic()
    site_cmd("up")
    sys.stdout.write(f"third compute added in {time.monotonic() - started:.1f}s\n")
    data = status()
    assert data["healthy"], data
    after = _pids(data)
    assert {k: after[k] for k in before} == before  # nothing restarted anywhere else
    assert rows(data)[("lab4", "nova-compute")]["state"] == "RUNNING"
    assert {h.name for h in cloud().compute.hypervisors()} == {"lab2", "lab3", "lab4"}


def test_a_compute_powered_off_mid_up_is_shown_and_finished_after_power_on() -> None:
    lab("hosts", "create", "5")
    SITE_FILE.write_text(_site_yaml([2, 3, 4, 5]))
    trust("lab5")
    cmd = [str(REPO / "onestack"), "--home", str(HOME), "up", "--site-file", str(SITE_FILE)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # power lab5 off once it is being given its release
        seen.append(line)
        if "lab5 host" in line and "install release" in line:
            time.sleep(2)
            lab("host", "poweroff", "lab5")
            break
    output = "".join(seen) + proc.stdout.read()
    assert proc.wait(timeout=600) != 0, output
    sys.stdout.write(output[-4000:])
    assert "lab5" in output.splitlines()[-1] or "lab5" in output[-2000:], output[-2000:]
    data = status()
    assert not data["healthy"]
    assert data["hosts"]["lab5"].startswith("unreachable"), data["hosts"]
    assert rows(data)[("lab5", "nova-compute")]["state"] == "UNREACHABLE"
    assert rows(data)[("lab2", "nova-compute")]["healthy"]  # the others are untouched
    lab("host", "poweron", "lab5")
    site_cmd("up")
    data = status()
    assert data["healthy"], data
    assert rows(data)[("lab5", "nova-compute")]["state"] == "RUNNING"
    assert len(list(cloud().compute.hypervisors())) == 4


def test_a_compute_with_a_server_is_refused_removal_then_leaves_cleanly() -> None:
    conn = cloud()
    flavor = conn.compute.find_flavor("m1.nano")  # Day-1 content
    image = conn.image.create_image(name="mh-lab4", data=b"\2" * 65536, disk_format="raw",
                                    container_format="bare")
    server = conn.compute.create_server(name="mh-on-lab4", flavor_id=flavor.id,
                                        image_id=image.id, networks="none",
                                        availability_zone="nova:lab4")
    conn.compute.wait_for_server(server, status="ACTIVE", wait=120)
    refused = onestack("--site", SITE, "host", "remove", "lab4", check=False)
    assert refused.returncode == 1 and "mh-on-lab4" in refused.stderr, refused.stderr
    service = next(conn.compute.services(binary="nova-compute", host="lab4"))
    assert service.status == "disabled"  # nothing new lands there meanwhile
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=120)
    conn.image.delete_image(image)
    onestack("--site", SITE, "host", "remove", "lab4")
    assert not list(conn.compute.services(binary="nova-compute", host="lab4"))
    assert {h.name for h in conn.compute.hypervisors()} == {"lab2", "lab3", "lab5"}
    assert "lab4" not in {p.name for p in conn.placement.resource_providers()}
    SITE_FILE.write_text(_site_yaml([2, 3, 5]))  # the operator's file follows
    data = status()
    assert data["healthy"] and "lab4" not in data["hosts"], data
    planned = json.loads(site_cmd("plan", "--json").stdout)
    assert planned["changes"] == 0, [(s["host"], s["id"]) for s in planned["steps"]
                                     if s["needed"]]


def _versions_by_host() -> dict[tuple[str, str], str]:
    return {key: c["version"] for key, c in rows(status()).items()
            if c["service"] == "nova"}


def _under_load(*args: str, fault: str | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                               dict[str, Any]]:
    """Run a site command while every API is asked continuously; (result, failures)."""
    sys.path.insert(0, str(REPO))
    from tests.support.selfheal import ApiLoad

    load = ApiLoad(HOME / "sites" / SITE / "clouds.yaml")
    load.start()
    env = {**os.environ, **({"ONESTACK_FAULT": fault} if fault else {})}
    cmd = [str(REPO / "onestack"), "--home", str(HOME), args[0], *args[1:],
           "--site-file", str(SITE_FILE)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400, env=env)
    finally:
        load.finish()
    sys.stdout.write(f"$ {' '.join(cmd)} (fault={fault})\n{proc.stdout[-3000:]}"
                     f"{proc.stderr[-6000:]}\nrequests: {load.sent}\n")
    return proc, {api: f for api, f in load.failures.items() if f}


def _ssh_banner(address: str, wait: float = 120) -> str:
    """The first bytes a guest's SSH server sends on its floating IP (bounded wait),
    asked from the controller (its bridge holds the provider network's gateway)."""
    from onestack.drivers.ssh_host import SshHost, SshTarget

    controller = SshHost(SshTarget("lab1", CONTROLLER, LAB / "id_ed25519",
                                   HOME / "sites" / SITE / "known_hosts"))
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                channel = controller.open_tunnel(address, 22, 5)
                try:
                    return bytes(channel.recv(64)).decode(errors="replace")
                finally:
                    channel.close()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(3)
    finally:
        controller.close()


def _reachable_server(conn: Any) -> tuple[Any, str]:
    """A server of the test image on lab3, with a floating IP and SSH allowed."""
    group = conn.network.create_security_group(name="mh-kept")
    conn.network.create_security_group_rule(security_group_id=group.id, direction="ingress",
                                            protocol="tcp", port_range_min=22,
                                            port_range_max=22, ether_type="IPv4")
    server = conn.compute.create_server(
        name="mh-reached", flavor_id=conn.compute.find_flavor("m1.nano").id,
        image_id=conn.image.find_image("onestack-guest").id,
        networks=[{"uuid": conn.network.find_network("private").id}],
        security_groups=[{"name": "mh-kept"}], availability_zone="nova:lab3")
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=180)
    port = next(conn.network.ports(device_id=server.id))
    fip = conn.network.create_ip(floating_network_id=conn.network.find_network("public").id,
                                 port_id=port.id)
    return server, str(fip.floating_ip_address)


@pytest.mark.long  # about 15 min: make test-long (docs/benchmarks.md)
def test_upgrade_rolled_back_then_applied_across_hosts_under_load() -> None:
    conn = cloud()
    flavor = conn.compute.find_flavor("m1.nano")  # Day-1 content
    image = conn.image.create_image(name="mh-kept", data=b"\1" * 65536, disk_format="raw",
                                    container_format="bare")
    kept = conn.compute.create_server(name="mh-kept", flavor_id=flavor.id, image_id=image.id,
                                      networks="none")
    kept = conn.compute.wait_for_server(kept, status="ACTIVE", wait=120)
    # A real guest on a lab-host compute, reached through the gateway: it stays so.
    reached, address = _reachable_server(conn)
    assert _ssh_banner(address).startswith("SSH-2.0-")
    # A failure after every compute moved: the upgrade rolls back by itself.
    proc, failures = _under_load("upgrade", "apply", "--to", "2026.2",
                                 fault="fail:upgrade-2026.2/verify/site/smoke-tests")
    assert proc.returncode != 0 and "rolled back" in proc.stderr, proc.stderr[-3000:]
    moved = re.findall(r"(lab\d) nova +restart nova-compute on 2026\.(\d)", proc.stderr)
    assert {("lab2", "2"), ("lab3", "2"), ("lab2", "1"), ("lab3", "1")} <= set(moved), moved
    assert failures == {}
    assert set(_versions_by_host().values()) == {"33.0.2"}  # nova 2026.1 everywhere
    data = status()
    assert data["healthy"], data
    assert _ssh_banner(address).startswith("SSH-2.0-")
    # Now for real: every host on 2026.2, nothing lost, and a new server still lands.
    proc, failures = _under_load("upgrade", "apply", "--to", "2026.2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert failures == {}
    data = status()
    assert data["healthy"] and data["release"] == "2026.2", data
    assert set(_versions_by_host().values()) == {"34.0.0"}
    conn = cloud()
    assert conn.compute.get_server(kept.id).status == "ACTIVE"
    assert conn.compute.get_server(reached.id).status == "ACTIVE"
    assert _ssh_banner(address).startswith("SSH-2.0-")  # reached, on every agent's 2026.2
    assert conn.image.get_image(image.id).status == "active"
    after = conn.compute.create_server(name="mh-after", flavor_id=flavor.id,
                                       image_id=image.id, networks="none")
    assert conn.compute.wait_for_server(after, status="ACTIVE", wait=180).compute_host
    assert json.loads(site_cmd("plan", "--json").stdout)["changes"] == 0
    site_cmd("verify")  # real instances across the computes, on 2026.2
