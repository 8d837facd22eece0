"""The real-instance checks of ``onestack verify`` against fakes of the cloud and of the
guests: order, bounded waits, nova's fault on ERROR, cleanup whatever happens, gating
by the site's compute driver and network."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from onestack.core.progress import SilentProgress
from onestack.drivers.guest_ssh import CommandResult, GuestKey
from onestack.drivers.openstack import CloudApiError
from onestack.drivers.openstack_instances import FloatingIp, ServerState
from onestack.health import instances as inst
from onestack.health.instances import Clock, InstanceChecks, InstanceSettings
from onestack.health.verify import instance_checks
from onestack.model.site import ComputeDriver, Host, NetworkBackend, Role, Site

TAG = "onestack-verify-1-2"
FIP = "198.19.0.50"
FIPS = {"id-1": FIP, "id-2": "198.19.0.51"}  # each server's floating IP
FIXED = {f"{TAG}-1": "10.0.0.11", f"{TAG}-2": "10.0.0.12"}
FINGERPRINT = "SHA256:abcDEF123+/x"


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.01)

    def clock(self) -> Clock:
        return Clock(self.now, self.sleep)


class FakeCloud:
    """A cloud with the Day-1 content; servers go ACTIVE after ``boot_polls`` polls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.content = {"onestack-guest": "img", "m1.nano": "flv", "private": "net",
                        "public": "pub"}
        self.servers: dict[str, str] = {}  # id -> name
        self.status: dict[str, str] = {}
        self.fault = ""
        self.boot_polls = 2
        self.polls = 0
        self.rules: list[tuple[str, int | None]] = []
        self.orphans: list[str] = []
        self.fail_delete: set[str] = set()
        self.on_create_server: Any = None
        self.runs_on: dict[str, str] = {}  # server id -> host (where nova put it)

    def _lookup(self, name: str) -> str | None:
        return self.content.get(name)

    image_id = flavor_id = network_id = _lookup

    def create_keypair(self, name: str, public_key: str) -> None:
        self.calls.append(("create_keypair", name, public_key))

    def delete_keypair(self, name: str) -> None:
        self.calls.append(("delete_keypair", name))

    def create_security_group(self, name: str) -> str:
        self.calls.append(("create_security_group", name))
        return "sg-1"

    def allow_ingress(self, group_id: str, protocol: str, port: int | None = None) -> None:
        self.rules.append((protocol, port))

    def delete_security_group(self, group_id: str) -> None:
        if "group" in self.fail_delete:
            raise CloudApiError("delete security group", "409 in use")
        self.calls.append(("delete_security_group", group_id))

    def create_server(self, name: str, **kwargs: Any) -> str:
        if self.on_create_server:
            self.on_create_server()
        sid = f"id-{name[-1]}"
        self.servers[sid] = name
        self.status[sid] = "BUILD"
        self.calls.append(("create_server", name, kwargs))
        if kwargs.get("host"):
            self.runs_on.setdefault(sid, kwargs["host"])
        return sid

    def server_state(self, server_id: str) -> ServerState:
        self.polls += 1
        if self.fault:
            return ServerState("ERROR", self.fault, ())
        if self.polls > self.boot_polls:
            self.status[server_id] = "ACTIVE"
        name = self.servers[server_id]
        ips = (FIXED[name],) if self.status[server_id] == "ACTIVE" else ()
        return ServerState(self.status[server_id], "", ips, self.runs_on.get(server_id, ""))

    def servers_named(self, prefix: str) -> list[str]:
        return list(self.servers) + self.orphans

    def delete_server(self, server_id: str) -> None:
        self.calls.append(("delete_server", server_id))
        self.servers.pop(server_id, None)
        if server_id in self.orphans:
            self.orphans.remove(server_id)

    def server_gone(self, server_id: str) -> bool:
        return server_id not in self.servers

    def console_output(self, server_id: str) -> str:
        return f"onestack-guest: host key {FINGERPRINT}\nonestack-guest: ssh ready\n"

    def add_floating_ip(self, public_network_id: str, server_id: str,
                        fixed_ip: str) -> FloatingIp:
        if "fip-create" in self.fail_delete:
            raise CloudApiError("floating IP", "no more addresses")
        self.calls.append(("add_floating_ip", public_network_id, server_id, fixed_ip))
        return FloatingIp(f"fip-{server_id[-1]}", FIPS[server_id])

    def delete_floating_ip(self, fip_id: str) -> None:
        if "fip" in self.fail_delete:
            raise CloudApiError("delete floating IP", "500")
        self.calls.append(("delete_floating_ip", fip_id))

    def made(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]


class FakeShell:
    """A login on one server (``server``: its id)."""

    def __init__(self, access: FakeAccess, server: str) -> None:
        self.access, self.server = access, server

    def run(self, command: str, timeout: float = 30.0) -> CommandResult:
        self.access.commands.append(f"{self.server}: {command}")
        if command.startswith("hostname"):
            name = self.access.hostname if self.server == "id-1" else f"{TAG}-2"
            return CommandResult(0, f"{name}\nLinux 6.1.0-cloud-amd64\n", "")
        if "169.254.169.254" in command:
            body = self.access.metadata or f'{{"uuid": "{self.server}", "hostname": "x"}}'
            return CommandResult(self.access.metadata_status, body, "")
        if "ping -c 3" in command:
            return CommandResult(self.access.ping_status,
                                 "3 packets transmitted, 3 packets received, 0% packet loss\n",
                                 "")
        if command.startswith("mkdir"):
            self.access.listening = True
            return CommandResult(0, f"{TAG}-1\n", "")
        return CommandResult(127, "", "unknown command")


class FakeAccess:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud
        self.ssh_after = 3  # polls before SSH answers
        self.ssh_polls = 0
        self.hostname = f"{TAG}-1"
        self.ping_status = 0
        self.metadata_status = 0
        self.metadata = ""  # what the metadata service answers ("": the server's own)
        self.listening = False
        self.open_without_rule = False
        self.commands: list[str] = []
        self.trusted: set[str] = set()
        self.key: GuestKey | None = None
        self.key_mode = 0
        self.closed = False

    def ssh_answers(self, address: str) -> bool:
        self.ssh_polls += 1
        return self.ssh_polls > self.ssh_after

    def tcp_connects(self, address: str, port: int, timeout: float) -> bool:
        allowed = ("tcp", port) in self.cloud.rules or self.open_without_rule
        return self.listening and allowed

    def http_text(self, address: str, port: int) -> str:
        return f"{TAG}-1\n"

    @contextmanager
    def shell(self, address: str, user: str, key: GuestKey,
              trusted: set[str]) -> Iterator[FakeShell]:
        assert address in FIPS.values() and user == "root"
        self.trusted, self.key = trusted, key
        self.key_mode = stat.S_IMODE(key.private_path.stat().st_mode)
        try:
            yield FakeShell(self, next(s for s, a in FIPS.items() if a == address))
        finally:
            self.closed = True


class Recorder(SilentProgress):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def _checks(cloud: FakeCloud, access: FakeAccess, progress: Recorder | None = None,
            clock: FakeClock | None = None, **settings: Any) -> InstanceChecks:
    return InstanceChecks(cloud, access, progress or Recorder(), InstanceSettings(**settings),
                          tag=TAG, clock=(clock or FakeClock()).clock())


def _rows(results: list[Any]) -> dict[str, Any]:
    return {r.name: r for r in results}


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud()


@pytest.fixture
def access(cloud: FakeCloud) -> FakeAccess:
    return FakeAccess(cloud)


def test_every_check_passes_in_order_and_everything_is_deleted(
        cloud: FakeCloud, access: FakeAccess) -> None:
    progress = Recorder()
    results = _checks(cloud, access, progress).run()
    assert [r.name for r in results] == [inst.PREPARE, inst.BOOT, inst.LOGIN, inst.METADATA,
                                         inst.PING, inst.PORTS, inst.CLEANUP]
    assert all(r.passed and not r.skipped for r in results), results
    assert all(r.seconds >= 0 for r in results)
    # Security group: ICMP and SSH first; the listener's port only after it was refused.
    assert cloud.rules == [("icmp", None), ("tcp", 22), ("tcp", inst.LISTEN_PORT)]
    created = cloud.made("create_server")
    assert [c[1] for c in created] == [f"{TAG}-1", f"{TAG}-2"]
    assert created[0][2] == {"image_id": "img", "flavor_id": "flv", "network_id": "net",
                             "key_name": TAG, "group": TAG, "config_drive": True,
                             "host": None}
    assert cloud.made("add_floating_ip") == [("add_floating_ip", "pub", "id-1", "10.0.0.11"),
                                             ("add_floating_ip", "pub", "id-2", "10.0.0.12")]
    # Each pings the other; each asks the metadata service from its own guest.
    assert any(c.startswith("id-1: ") and "ping -c 3 -W 2 10.0.0.12" in c
               for c in access.commands)
    assert any(c.startswith("id-2: ") and "ping -c 3 -W 2 10.0.0.11" in c
               for c in access.commands)
    assert [c.split(":")[0] for c in access.commands if "169.254.169.254" in c] == \
        ["id-1", "id-2"]
    # Cleanup: floating IPs, both servers, the group, the key pair (in that order).
    deletions = [c for c in cloud.calls if c[0].startswith("delete")]
    assert deletions == [("delete_floating_ip", "fip-1"), ("delete_floating_ip", "fip-2"),
                         ("delete_server", "id-1"),
                         ("delete_server", "id-2"), ("delete_security_group", "sg-1"),
                         ("delete_keypair", TAG)]
    assert "host key checked against its console" in _rows(results)[inst.LOGIN].detail
    assert access.trusted == {FINGERPRINT} and access.closed
    assert progress.lines[0] == f"verify: {inst.PREPARE} ..."


def test_the_private_key_is_0600_never_shown_and_removed(
        cloud: FakeCloud, access: FakeAccess) -> None:
    progress = Recorder()
    results = _checks(cloud, access, progress).run()
    assert access.key is not None and access.key_mode == 0o600
    public = cloud.made("create_keypair")[0][2]
    assert public.startswith("ssh-ed25519 ") and public.endswith(f" {TAG}")
    assert not access.key.private_path.exists()
    assert not access.key.private_path.parent.exists()
    shown = " ".join(r.detail for r in results) + " ".join(progress.lines)
    assert "PRIVATE KEY" not in shown and str(access.key.private_path) not in shown


def test_a_server_in_error_reports_novas_fault_not_a_timeout(
        cloud: FakeCloud, access: FakeAccess) -> None:
    cloud.fault = "No valid host was found. There are not enough hosts available. (code 500)"
    clock = FakeClock()
    results = _rows(_checks(cloud, access, clock=clock).run())
    boot = results[inst.BOOT]
    assert not boot.passed
    assert boot.detail == (f"ServerFaultError: server {TAG}-1 went to ERROR: No valid host "
                           "was found. There are not enough hosts available. (code 500)")
    assert clock.t < 10  # it stopped at the first poll, no wait to the limit
    for later in (inst.LOGIN, inst.PING, inst.PORTS):
        assert results[later].skipped and not results[later].passed
        assert results[later].detail == f"not run: needs '{inst.BOOT}'"
    assert results[inst.CLEANUP].passed
    assert [c[1] for c in cloud.made("delete_server")] == ["id-1", "id-2"]
    assert cloud.made("delete_security_group") and cloud.made("delete_keypair")


def test_missing_day1_content_is_named_and_nothing_is_created(
        cloud: FakeCloud, access: FakeAccess) -> None:
    del cloud.content["onestack-guest"]
    results = _rows(_checks(cloud, access).run())
    assert results[inst.PREPARE].detail == ("MissingContentError: image onestack-guest not "
                                            "found (Day-1 content of `onestack up`)")
    assert results[inst.CLEANUP].passed
    assert results[inst.CLEANUP].detail == "nothing to delete"
    assert cloud.calls == []


def test_ssh_waits_are_bounded_and_report_progress(cloud: FakeCloud, access: FakeAccess) -> None:
    access.ssh_after = 10**6
    progress, clock = Recorder(), FakeClock()
    results = _rows(_checks(cloud, access, progress, clock, ssh_timeout=60).run())
    login = results[inst.LOGIN]
    assert not login.passed
    assert login.detail.startswith(f"CheckFailedError: SSH on {FIP} ({TAG}-1): not within "
                                   "60s (last seen: no SSH answer)")
    # what the guest's boot got to, for the operator
    assert login.detail.endswith("its console's last lines: onestack-guest: host key "
                                 f"{FINGERPRINT} | onestack-guest: ssh ready")
    waits = [line for line in progress.lines if line.startswith(f"verify: SSH on {FIP}")]
    assert len(waits) == 3  # every 15 s of the 60 (the last poll ends it)
    assert "of 60s)" in waits[0]
    assert clock.t < 200
    assert cloud.made("delete_floating_ip") == [("delete_floating_ip", "fip-1")]
    assert results[inst.CLEANUP].passed


def test_servers_that_never_become_active_time_out(cloud: FakeCloud, access: FakeAccess) -> None:
    cloud.boot_polls = 10**6
    results = _rows(_checks(cloud, access, active_timeout=30).run())
    assert results[inst.BOOT].detail == (f"WaitTimeoutError: server {TAG}-1 ACTIVE: not "
                                         "within 30s (last seen: BUILD)")


def test_a_wrong_hostname_means_the_metadata_did_not_arrive(
        cloud: FakeCloud, access: FakeAccess) -> None:
    access.hostname = "onestack-guest"
    results = _rows(_checks(cloud, access).run())
    assert "metadata did not reach the guest" in results[inst.LOGIN].detail
    assert results[inst.PING].skipped


def test_instances_that_cannot_ping_each_other_fail(cloud: FakeCloud, access: FakeAccess) -> None:
    access.ping_status = 1
    results = _rows(_checks(cloud, access).run())
    assert results[inst.PING].detail.startswith(
        f"CheckFailedError: {TAG}-1 ping {TAG}-2 (10.0.0.12): exit 1:")
    assert results[inst.PORTS].skipped


def test_a_port_open_without_a_rule_fails_the_security_group_check(
        cloud: FakeCloud, access: FakeAccess) -> None:
    access.open_without_rule = True
    results = _rows(_checks(cloud, access).run())
    assert results[inst.PORTS].detail == (f"CheckFailedError: port 8080 on {FIP}: connected "
                                          "although the security group does not allow it")
    assert ("tcp", 8080) not in cloud.rules


def test_one_failed_deletion_does_not_stop_the_others(cloud: FakeCloud, access: FakeAccess) -> None:
    cloud.fail_delete = {"fip"}
    results = _rows(_checks(cloud, access).run())
    cleanup = results[inst.CLEANUP]
    assert not cleanup.passed
    assert cleanup.detail == (f"CheckFailedError: left behind (named {TAG}*): floating IP: "
                              "CloudApiError: delete floating IP: 500")
    assert len(cloud.made("delete_server")) == 2
    assert cloud.made("delete_security_group") and cloud.made("delete_keypair")


def test_a_group_still_in_use_is_retried_then_reported(
        cloud: FakeCloud, access: FakeAccess) -> None:
    cloud.fail_delete = {"group"}
    results = _rows(_checks(cloud, access).run())
    assert "security group: WaitTimeoutError" in results[inst.CLEANUP].detail
    assert "409 in use" in results[inst.CLEANUP].detail
    assert cloud.made("delete_keypair")


def test_a_server_created_without_an_answer_is_found_by_name(
        cloud: FakeCloud, access: FakeAccess) -> None:
    cloud.orphans = ["id-lost"]
    cloud.servers["id-lost"] = f"{TAG}-x"
    _checks(cloud, access).run()
    assert ("delete_server", "id-lost") in cloud.calls


def test_an_interrupted_run_still_cleans_up(cloud: FakeCloud, access: FakeAccess) -> None:
    def interrupt() -> None:
        if cloud.made("create_server"):
            raise KeyboardInterrupt
    cloud.on_create_server = interrupt
    checks = _checks(cloud, access)
    with pytest.raises(KeyboardInterrupt):
        checks.run()
    assert cloud.made("delete_server") == [("delete_server", "id-1")]
    assert cloud.made("delete_security_group") and cloud.made("delete_keypair")
    assert checks._key is not None and not checks._key.private_path.parent.exists()


def _site(driver: ComputeDriver, network: NetworkBackend,
          roles: tuple[Role, ...] = (Role.CONTROLLER, Role.COMPUTE, Role.NETWORK)) -> Site:
    host = Host(name="aio", address=IPv4Address("198.18.0.10"), roles=list(roles))
    return Site(name="lab", release="2026.1", hosts=[host], compute_driver=driver,
                network=network)


@pytest.mark.parametrize(("driver", "network", "reason"), [
    (ComputeDriver.FAKE, NetworkBackend.NONE, "compute_driver is fake"),
    (ComputeDriver.FAKE, NetworkBackend.OVN, "compute_driver is fake"),
])
def test_sites_without_real_guests_skip_the_checks(driver: ComputeDriver,
                                                   network: NetworkBackend,
                                                   reason: str) -> None:
    rows = instance_checks(None, _site(driver, network), InstanceSettings(), SilentProgress())
    assert len(rows) == 1
    assert (rows[0].name, rows[0].passed, rows[0].skipped) == (inst.SKIPPED, True, True)
    assert rows[0].detail.startswith(f"not run: {reason}")


def test_network_none_is_a_reason_of_its_own() -> None:
    site = _site(ComputeDriver.FAKE, NetworkBackend.NONE).model_copy(
        update={"compute_driver": ComputeDriver.LIBVIRT})
    assert inst.skip_reason(site) == "network is none (guests' traffic needs OVN)"


def test_a_controller_without_br_ex_cannot_reach_floating_ips() -> None:
    site = _site(ComputeDriver.LIBVIRT, NetworkBackend.OVN, (Role.CONTROLLER,))
    assert inst.skip_reason(site) == ("controller aio is no compute or network host (no "
                                      "br-ex here to reach floating IPs)")


def test_libvirt_and_ovn_sites_run_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[Any] = []

    class Checks:
        def __init__(self, cloud: Any, access: Any, progress: Any, settings: Any) -> None:
            ran.append(settings)

        def run(self) -> list[Any]:
            return ["rows"]

    monkeypatch.setattr("onestack.health.verify.InstanceChecks", Checks)
    settings = InstanceSettings(ssh_timeout=99)
    site = _site(ComputeDriver.LIBVIRT, NetworkBackend.OVN)
    assert instance_checks(object(), site, settings, SilentProgress()) == ["rows"]
    assert ran == [settings]


def test_key_file_helpers(tmp_path: Path) -> None:
    from onestack.drivers.guest_ssh import key_folder, make_key

    with key_folder() as folder:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        key = make_key(folder, "c")
        assert stat.S_IMODE(key.private_path.stat().st_mode) == 0o600
        assert key.private_path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert not folder.exists()


@pytest.mark.parametrize(("status", "body", "said"), [
    (1, "", "exit 1"), (0, '{"uuid": "id-2"}', "not the server's id-1"),
    (0, "<html>", "uuid None")])
def test_the_metadata_service_must_answer_with_the_servers_own_uuid(
        cloud: FakeCloud, access: FakeAccess, status: int, body: str, said: str) -> None:
    access.metadata_status, access.metadata = status, body
    rows = _rows(_checks(cloud, access).run())
    assert not rows[inst.METADATA].passed and said in rows[inst.METADATA].detail
    assert rows[inst.PING].skipped and rows[inst.CLEANUP].passed


def test_on_several_computes_each_server_is_placed_on_its_own_and_checked_there(
        cloud: FakeCloud, access: FakeAccess) -> None:
    # issue 19: two servers forced onto two computes, so east-west crosses a tunnel.
    rows = _rows(_checks(cloud, access, computes=("lab1", "lab2")).run())
    assert all(r.passed and not r.skipped for r in rows.values()), rows
    assert [c[2]["host"] for c in cloud.made("create_server")] == ["lab1", "lab2"]
    assert "10.0.0.11 on lab1" in rows[inst.BOOT].detail
    assert "10.0.0.12 on lab2" in rows[inst.BOOT].detail


def test_a_server_nova_put_elsewhere_fails_the_placement(
        cloud: FakeCloud, access: FakeAccess) -> None:
    cloud.runs_on["id-2"] = "lab1"
    rows = _rows(_checks(cloud, access, computes=("lab1", "lab2")).run())
    assert rows[inst.BOOT].detail == (f"CheckFailedError: server {TAG}-2: runs on lab1, not "
                                      "on lab2 where it was placed")
    assert rows[inst.CLEANUP].passed


def test_the_second_servers_metadata_is_checked_too(cloud: FakeCloud, access: FakeAccess) -> None:
    access.metadata = '{"uuid": "id-1"}'
    rows = _rows(_checks(cloud, access).run())
    assert rows[inst.METADATA].detail.endswith("uuid 'id-1', not the server's id-2")


def test_servers_are_placed_on_two_computes_only_where_there_are_several() -> None:
    aio = Site(name="s", release="2026.1", hosts=[Host(name="aio", address="127.0.0.1")])
    assert inst.placement(aio) == ()
    three = Site(name="s", release="2026.1", hosts=[
        Host(name="c1", address="198.18.0.1", roles=[Role.CONTROLLER, Role.NETWORK]),
        Host(name="lab1", address="198.18.0.2", roles=[Role.COMPUTE]),
        Host(name="lab2", address="198.18.0.3", roles=[Role.COMPUTE]),
        Host(name="lab3", address="198.18.0.4", roles=[Role.COMPUTE])])
    assert inst.placement(three) == ("lab1", "lab2")
