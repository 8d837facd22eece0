"""Real instances for ``onestack verify``: on a site whose computes run libvirt and whose
network is OVN, boot two servers of the test image and check the data path end to end.

The checks use the Day-1 content by name (image ``onestack-guest``, flavor ``m1.nano``,
networks ``private`` and ``public``) and create their own throwaway objects, all named
after one tag and all deleted at the end, whatever happened:

1. a key pair made here (the private key only in a 0600 file of a temporary folder)
   and a security group letting ICMP and TCP 22 in;
2. two servers on ``private`` with a config drive, waited ACTIVE (on ERROR, nova's
   fault message is the result); on a site of several computes each is forced onto
   another compute (so their traffic crosses the tunnels between chassis);
3. a floating IP of ``public`` on each server, SSH on it (bounded wait), a login with
   the key: the hostname must be the server's (its metadata reached the guest);
   the metadata service (169.254.169.254) answers each guest with its own uuid;
4. each server pings the other's fixed address (east-west);
5. busybox httpd on port 8080 in server 1: no connection through the floating IP while
   the group does not allow it, an answer once a rule does;
6. cleanup: floating IP, servers, security group, key pair.

Every wait is bounded and reports progress. Talking to the cloud and to guests is
the drivers' (``drivers.openstack_instances``, ``drivers.guest_ssh``); what is here is
the order, the waits and the decisions, tested with fakes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from onestack.catalog.guest_image import IMAGE_NAME
from onestack.core.progress import Progress
from onestack.drivers.guest_image import SSH_USER
from onestack.drivers.guest_ssh import (
    CommandResult,
    GuestKey,
    console_fingerprints,
    key_folder,
    make_key,
)
from onestack.drivers.openstack_instances import FloatingIp, ServerState
from onestack.errors import CheckFailedError, MissingContentError, ServerFaultError
from onestack.errors import WaitTimeoutError as WaitTimeout
from onestack.health.results import CheckResult, not_run, timed
from onestack.model.site import ComputeDriver, NetworkBackend, Role, Site
from onestack.plans.content import PRIVATE_NETWORK, PUBLIC_NETWORK

T = TypeVar("T")

PREPARE = "instance keypair/secgroup"
BOOT = "instances ACTIVE (2 servers)"
PAIR = 2  # servers: one per compute where there are several
LOGIN = "instance floating IP + SSH"
METADATA = "instance metadata service"
PING = "instance to instance ping"
PORTS = "security group enforced"
CLEANUP = "instance cleanup"
SKIPPED = "real instances"

REPORT_EVERY = 15.0  # seconds between progress lines of one wait
LISTEN_PORT = 8080
BLOCKED_PROBE = 5.0  # seconds a connection to the blocked port is given
RULE_TIMEOUT = 60.0  # seconds for a new security group rule to let traffic in
DELETE_TIMEOUT = 60.0  # seconds for servers and the group to go
METADATA_URL = "http://169.254.169.254/openstack/latest/meta_data.json"
# Six tries 2 s apart (the guest's proxy answers once neutron's agent has wired its
# network, seconds after the port went up); busybox's wget bounded by timeout.
FETCH_METADATA = (f"i=0; until timeout 10 wget -q -O /tmp/meta_data.json {METADATA_URL}; do "
                  "i=$((i+1)); [ $i -ge 6 ] && exit 1; sleep 2; done; cat /tmp/meta_data.json")
WWW = "/tmp/www"
START_LISTENER = (f"mkdir -p {WWW} && hostname > {WWW}/index.html && "
                  f"httpd -p {LISTEN_PORT} -h {WWW} </dev/null >/dev/null 2>&1 && "
                  # busybox's static wget crashes with -T and -O -: bounded by timeout
                  f"timeout 5 wget -q -O /tmp/self-check http://127.0.0.1:{LISTEN_PORT}/ && "
                  "cat /tmp/self-check")


@dataclass(frozen=True)
class InstanceSettings:
    """What the checks use by name, and how long they wait."""

    image: str = IMAGE_NAME
    flavor: str = "m1.nano"
    network: str = PRIVATE_NETWORK  # the Day-1 content's (plans.content)
    public_network: str = PUBLIC_NETWORK
    ssh_user: str = SSH_USER
    active_timeout: float = 120.0
    ssh_timeout: float = 180.0  # a TCG guest on a busy 2-core machine boots in ~1 min
    config_drive: bool = True
    # The compute host of each server (``placement``); empty: the scheduler's choice.
    computes: tuple[str, ...] = ()


class Cloud(Protocol):
    """The cloud calls the checks make (``drivers.openstack_instances.InstanceCloud``)."""

    def image_id(self, name: str) -> str | None: ...
    def flavor_id(self, name: str) -> str | None: ...
    def network_id(self, name: str) -> str | None: ...
    def create_keypair(self, name: str, public_key: str) -> None: ...
    def delete_keypair(self, name: str) -> None: ...
    def create_security_group(self, name: str) -> str: ...
    def allow_ingress(self, group_id: str, protocol: str, port: int | None = None) -> None: ...
    def delete_security_group(self, group_id: str) -> None: ...
    def create_server(self, name: str, *, image_id: str, flavor_id: str, network_id: str,
                      key_name: str, group: str, config_drive: bool,
                      host: str | None = None) -> str: ...
    def server_state(self, server_id: str) -> ServerState: ...
    def servers_named(self, prefix: str) -> list[str]: ...
    def delete_server(self, server_id: str) -> None: ...
    def server_gone(self, server_id: str) -> bool: ...
    def console_output(self, server_id: str) -> str: ...
    def add_floating_ip(self, public_network_id: str, server_id: str,
                        fixed_ip: str) -> FloatingIp: ...
    def delete_floating_ip(self, fip_id: str) -> None: ...


class Shell(Protocol):
    def run(self, command: str, timeout: float = 30.0) -> CommandResult: ...


class Access(Protocol):
    """Reaching guests from here (``drivers.guest_ssh.GuestAccess``)."""

    def ssh_answers(self, address: str) -> bool: ...
    def tcp_connects(self, address: str, port: int, timeout: float) -> bool: ...
    def http_text(self, address: str, port: int) -> str: ...
    def shell(self, address: str, user: str, key: GuestKey,
              trusted: set[str]) -> AbstractContextManager[Shell]: ...


@dataclass
class Clock:
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass
class Created:
    """What the checks created, recorded the moment it exists: cleanup deletes it."""

    keypair: str | None = None
    group: str | None = None
    servers: list[str] = field(default_factory=list)
    floating_ips: list[FloatingIp] = field(default_factory=list)


def skip_reason(site: Site) -> str | None:
    """Why the site has no real instances to check, or None when it has."""
    if site.compute_driver != ComputeDriver.LIBVIRT:
        return f"compute_driver is {site.compute_driver.value} (real guests need libvirt)"
    if site.network != NetworkBackend.OVN:
        return f"network is {site.network.value} (guests' traffic needs OVN)"
    roles = set(site.controller.roles)
    if not roles & {Role.COMPUTE, Role.NETWORK}:
        # Floating IPs are reached through the controller's br-ex (no uplink): only a
        # chassis has one, and verify runs on the controller.
        return (f"controller {site.controller.name} is no compute or network host "
                "(no br-ex here to reach floating IPs)")
    return None


def placement(site: Site) -> tuple[str, ...]:
    """The compute host of each server: two different ones where the site has several
    (east-west traffic then crosses a tunnel), else none forced."""
    computes = [h.name for h in site.computes]
    return tuple(computes[:PAIR]) if len(computes) >= PAIR else ()


def skipped_row(reason: str) -> CheckResult:
    return not_run(SKIPPED, reason, passed=True)


def new_tag() -> str:
    """The name every object of one run carries (and cleanup finds them by)."""
    return f"onestack-verify-{os.getpid()}-{int(time.time())}"


class InstanceChecks:
    """One run of the real-instance checks: :meth:`run` gives their rows."""

    def __init__(self, cloud: Cloud, access: Access, progress: Progress,
                 settings: InstanceSettings | None = None, tag: str | None = None,
                 clock: Clock | None = None) -> None:
        self.cloud, self.access, self.progress = cloud, access, progress
        self.settings = settings or InstanceSettings()
        self.tag = tag or new_tag()
        self.clock = clock or Clock()
        self.made = Created()
        self.ids: dict[str, str] = {}
        self.fixed: list[str] = []
        self.names = [f"{self.tag}-{i}" for i in range(1, PAIR + 1)]
        self._stack = ExitStack()
        self._key: GuestKey | None = None
        self._shells: list[Shell] = []

    def run(self) -> list[CheckResult]:
        """Every check in order (one failing marks those after it not run), then the
        cleanup, which runs even when a check failed or the run is interrupted."""
        results: list[CheckResult] = []
        try:
            with self._stack:  # the key's folder, the SSH session
                results += self._checks()
        finally:
            results.append(timed(CLEANUP, self._cleanup))
        return results

    def _checks(self) -> list[CheckResult]:
        stages = [(PREPARE, self._prepare), (BOOT, self._boot), (LOGIN, self._login),
                  (METADATA, self._metadata), (PING, self._ping), (PORTS, self._ports)]
        results: list[CheckResult] = []
        failed: str | None = None
        for name, stage in stages:
            if failed:
                results.append(not_run(name, f"needs '{failed}'"))
                continue
            self.progress.message(f"verify: {name} ...")
            results.append(timed(name, stage))
            failed = None if results[-1].passed else name
        return results

    # --- the checks ---------------------------------------------------------------

    def _prepare(self) -> str:
        s = self.settings
        for kind, name, lookup in (("image", s.image, self.cloud.image_id),
                                   ("flavor", s.flavor, self.cloud.flavor_id),
                                   ("network", s.network, self.cloud.network_id),
                                   ("network", s.public_network, self.cloud.network_id)):
            found = lookup(name)
            if found is None:
                raise MissingContentError(kind, name)
            self.ids[name] = found
        self._key = make_key(self._stack.enter_context(key_folder()), self.tag)
        self.cloud.create_keypair(self.tag, self._key.public_line)
        self.made.keypair = self.tag
        self.made.group = self.cloud.create_security_group(self.tag)
        self.cloud.allow_ingress(self.made.group, "icmp")
        self.cloud.allow_ingress(self.made.group, "tcp", 22)
        return (f"key pair {self.tag} (ed25519, made here), security group {self.tag}: "
                "ICMP and TCP 22 in")

    def _boot(self) -> str:
        s = self.settings
        hosts: list[str | None] = list(s.computes[:PAIR]) or [None] * PAIR
        for name, host in zip(self.names, hosts, strict=True):
            self.made.servers.append(self.cloud.create_server(
                name, image_id=self.ids[s.image], flavor_id=self.ids[s.flavor],
                network_id=self.ids[s.network], key_name=self.tag, group=self.tag,
                config_drive=s.config_drive, host=host))
        t0 = self.clock.now()
        states = [self._wait_active(sid, name) for sid, name in zip(self.made.servers,
                                                                    self.names, strict=True)]
        for name, state, host in zip(self.names, states, hosts, strict=True):
            if not state.fixed_ips:
                raise CheckFailedError(f"server {name}", "ACTIVE without a fixed IPv4 address")
            if host and state.host != host:
                raise CheckFailedError(f"server {name}", f"runs on {state.host or '?'}, "
                                       f"not on {host} where it was placed")
        self.fixed = [state.fixed_ips[0] for state in states]
        drive = "config drive" if s.config_drive else "metadata service"
        where = [f"{n} at {ip}" + (f" on {st.host}" if st.host else "")
                 for n, ip, st in zip(self.names, self.fixed, states, strict=True)]
        return (f"{', '.join(where)}: ACTIVE after {self.clock.now() - t0:.0f}s "
                f"({s.flavor}, {drive})")

    def _wait_active(self, server_id: str, name: str) -> ServerState:
        def poll() -> tuple[ServerState | None, str]:
            state = self.cloud.server_state(server_id)
            if state.status == "ERROR":
                raise ServerFaultError(name, state.fault)
            return (state if state.status == "ACTIVE" else None), state.status
        return self._wait(f"server {name} ACTIVE", poll, self.settings.active_timeout, 2.0)

    def _login(self) -> str:
        return "; ".join(self._login_to(i) for i in range(PAIR))

    def _login_to(self, i: int) -> str:
        """A floating IP on server ``i``, SSH on it, a shell with the test key."""
        server, name = self.made.servers[i], self.names[i]
        fip = self.cloud.add_floating_ip(self.ids[self.settings.public_network], server,
                                         self.fixed[i])
        self.made.floating_ips.append(fip)
        t0 = self.clock.now()
        try:
            self._wait(f"SSH on {fip.address} ({name})",
                       lambda: (True if self.access.ssh_answers(fip.address) else None,
                                "no SSH answer"), self.settings.ssh_timeout, 3.0)
        except WaitTimeout as exc:
            raise CheckFailedError(str(exc), f"its console's last lines: "
                                   f"{_console_tail(self.cloud, server)}") from None
        waited = self.clock.now() - t0
        trusted = console_fingerprints(self.cloud.console_output(server))
        assert self._key is not None
        shell = self._stack.enter_context(
            self.access.shell(fip.address, self.settings.ssh_user, self._key, trusted))
        self._shells.append(shell)
        kernel, hostname = self._hostname_and_kernel(shell, name)
        checked = "checked against its console" if trusted else \
            "NOT checked (no fingerprint on the console)"
        return (f"SSH on {fip.address} after {waited:.0f}s, host key {checked}; "
                f"{self.settings.ssh_user}@{hostname}: {kernel}")

    def _hostname_and_kernel(self, shell: Shell, name: str) -> tuple[str, str]:
        result = shell.run("hostname; uname -sr")
        lines = result.stdout.splitlines()
        if result.exit_status != 0 or len(lines) < 2:
            raise CheckFailedError("hostname; uname -sr", _said(result))
        hostname, kernel = lines[0].strip(), lines[1].strip()
        # nova's metadata gives "<name>.<dhcp_domain>" (novalocal unless set).
        if hostname.split(".")[0] != name:
            raise CheckFailedError(f"hostname of {name}", f"{hostname!r}: the "
                                   "server's metadata did not reach the guest")
        return kernel, hostname

    def _metadata(self) -> str:
        return "; ".join(self._metadata_of(i) for i in range(PAIR))

    def _metadata_of(self, i: int) -> str:
        server, name = self.made.servers[i], self.names[i]
        result = self._guest(i).run(FETCH_METADATA, timeout=120)
        if result.exit_status != 0:
            raise CheckFailedError(f"GET {METADATA_URL} in {name}", _said(result))
        try:
            uuid = json.loads(result.stdout).get("uuid")
        except (ValueError, AttributeError):
            uuid = None
        if uuid != server:
            raise CheckFailedError(f"GET {METADATA_URL} in {name}",
                                   f"uuid {uuid!r}, not the server's {server}")
        return f"{name}: {METADATA_URL} gave its own uuid {server}"

    def _ping(self) -> str:
        return "; ".join(self._ping_from(i, (i + 1) % PAIR) for i in range(PAIR))

    def _ping_from(self, i: int, j: int) -> str:
        target = self.fixed[j]
        # The other guest may still be booting (ACTIVE is the hypervisor's view):
        # wait for its first reply (30 tries), then three of three must come back.
        wait_first = (f"i=0; until ping -c 1 -W 1 {target} >/dev/null 2>&1; do "
                      f"i=$((i+1)); [ $i -ge 30 ] && exit 1; done; ")
        result = self._guest(i).run(wait_first + f"ping -c 3 -W 2 {target}", timeout=90)
        if result.exit_status != 0:
            raise CheckFailedError(f"{self.names[i]} ping {self.names[j]} ({target})",
                                   _said(result))
        summary = [line for line in result.stdout.splitlines() if "packets" in line]
        return f"{self.names[i]} -> {target}: {(summary or ['replies'])[0].strip()}"

    def _ports(self) -> str:
        assert self.made.floating_ips and self.made.group is not None
        address = self.made.floating_ips[0].address
        started = self._guest().run(START_LISTENER)
        if started.exit_status != 0 or self.names[0] not in started.stdout:
            raise CheckFailedError(f"httpd on port {LISTEN_PORT} in {self.names[0]}",
                                   _said(started))
        if self.access.tcp_connects(address, LISTEN_PORT, BLOCKED_PROBE):
            raise CheckFailedError(f"port {LISTEN_PORT} on {address}", "connected although "
                                   "the security group does not allow it")
        self.cloud.allow_ingress(self.made.group, "tcp", LISTEN_PORT)
        t0 = self.clock.now()
        self._wait(f"port {LISTEN_PORT} on {address} after its rule",
                   lambda: (True if self.access.tcp_connects(address, LISTEN_PORT, 3.0)
                            else None, "no connection"), RULE_TIMEOUT, 2.0)
        opened = self.clock.now() - t0
        body = self.access.http_text(address, LISTEN_PORT).strip()
        if body.split(".")[0] != self.names[0]:
            raise CheckFailedError(f"GET / on {address}:{LISTEN_PORT}", f"{body[:80]!r}")
        return (f"port {LISTEN_PORT} on {address}: no connection without a rule, "
                f"httpd answered {opened:.0f}s after the rule was added")

    def _guest(self, i: int = 0) -> Shell:
        return self._shells[i]

    # --- cleanup --------------------------------------------------------------------

    def _cleanup(self) -> str:
        problems: list[str] = []
        done: list[str] = []
        for what, delete in (("floating IP", self._delete_floating_ip),
                             ("servers", self._delete_servers),
                             ("security group", self._delete_group),
                             ("key pair", self._delete_keypair)):
            try:
                if delete():
                    done.append(what)
            except Exception as exc:  # one failed deletion must not keep the others
                problems.append(f"{what}: {type(exc).__name__}: {exc}")
        if problems:
            raise CheckFailedError(f"left behind (named {self.tag}*)", "; ".join(problems))
        return f"deleted {', '.join(done)}" if done else "nothing to delete"

    def _delete_floating_ip(self) -> bool:
        for fip in self.made.floating_ips:
            self.cloud.delete_floating_ip(fip.id)
        return bool(self.made.floating_ips)

    def _delete_servers(self) -> bool:
        # A create whose answer was lost leaves a server only its name finds.
        try:
            named = self.cloud.servers_named(self.tag)
        except Exception:  # noqa: BLE001 (the servers known by id are deleted anyway)
            named = []
        servers = list(dict.fromkeys(self.made.servers + named))
        if not servers:
            return False
        for server in servers:
            self.cloud.delete_server(server)
        for server in servers:
            self._wait_gone(server)
        return True

    def _wait_gone(self, server: str) -> None:
        self._wait(f"server {server} deleted",
                   lambda: (True if self.cloud.server_gone(server) else None, "still there"),
                   DELETE_TIMEOUT, 2.0)

    def _delete_group(self) -> bool:
        group = self.made.group
        if group is None:
            return False

        def attempt() -> tuple[bool | None, str]:
            # Neutron refuses while a deleted server's port is still being removed.
            try:
                self.cloud.delete_security_group(group)
                return True, "deleted"
            except Exception as exc:  # kept as "last seen" if it never succeeds
                return None, str(exc)
        self._wait(f"security group {self.tag} deleted", attempt, DELETE_TIMEOUT, 2.0)
        return True

    def _delete_keypair(self) -> bool:
        if self.made.keypair is None:
            return False
        self.cloud.delete_keypair(self.made.keypair)
        return True

    # --- waiting ----------------------------------------------------------------------

    def _wait(self, what: str, poll: Callable[[], tuple[T | None, str]], limit: float,
              interval: float) -> T:
        """Poll until ``poll`` gives a value (it may raise to stop early); at most
        ``limit`` seconds, a progress line every REPORT_EVERY seconds."""
        start = self.clock.now()
        report = start + REPORT_EVERY
        while True:
            value, seen = poll()
            if value is not None:
                return value
            now = self.clock.now()
            if now - start >= limit:
                raise WaitTimeout(what, limit, seen)
            if now >= report:
                self.progress.message(f"verify: {what}: {seen} ({now - start:.0f}s of "
                                      f"{limit:.0f}s)")
                report += REPORT_EVERY
            self.clock.sleep(min(interval, max(0.0, start + limit - now)))


def _console_tail(cloud: Cloud, server: str, lines: int = 6) -> str:
    """The end of a server's console (what its boot got to), on one line."""
    try:
        text = cloud.console_output(server)
    except Exception as exc:  # noqa: BLE001 (a diagnosis must not hide the failure)
        return f"unavailable ({type(exc).__name__}: {exc})"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-600:] or "empty"


def _said(result: CommandResult) -> str:
    """A command's exit status and the end of what it printed, on one line."""
    text = " ".join((result.stderr.strip() or result.stdout.strip()).split())
    return f"exit {result.exit_status}: {text[-200:] or 'no output'}"
