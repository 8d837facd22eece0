"""Resources made before an upgrade, checked through the code the site runs after it,
the way upstream's Grenade does: a project and its user, an image, a key pair, a
security group, two networks behind a router (one with a server, one without), the
server with a config drive and a floating IP.

``check`` looks at each one through the release that runs now: the user logs in, the
image downloads with the same bytes, the server answers SSH on its floating IP and
the metadata service gives it its own uuid, and new servers on both networks (no
config drive: their metadata comes from the metadata service) boot, get their name
and keys from it and answer the old server's ping. A loop in the old server asks the
metadata service every second all along: ``check`` reports the longest time without
an answer since the last check. ``delete`` removes everything, through the new code.
"""

from __future__ import annotations

import base64
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from onestack.drivers.guest_ssh import (
    GuestKey,
    console_fingerprints,
    guest_shell,
    make_key,
    ssh_answers,
)

T = TypeVar("T")
NAME = "grenade"
IMAGE_SIZE = 512 * 1024
CIDRS = {"a": "10.20.0.0/24", "b": "10.21.0.0/24"}
METADATA_URL = "http://169.254.169.254/openstack/latest/meta_data.json"
# In the old server, from its creation on: one metadata request a second, each line
# "<epoch seconds> ok|fail" (ok: the answer names the server, {uuid}; busybox's wget
# bounded by timeout).
POLL_SCRIPT = ("cat > /tmp/mdpoll.sh <<'END'\n"
               "while :; do\n"
               f"  if timeout 3 wget -q -O /tmp/mdp.json {METADATA_URL} && "
               "grep -q {uuid} /tmp/mdp.json\n"
               "  then r=ok; else r=fail; fi\n"
               '  echo "$(date +%s) $r" >> /tmp/md.log\n'
               "  sleep 1\n"
               "done\n"
               "END\n"
               "setsid sh /tmp/mdpoll.sh </dev/null >/dev/null 2>&1 &\n"
               "echo started")
# User data of the servers made after the upgrade: nova attaches a config drive to
# every server, so the metadata service is asked by this script, which says on the
# console what it answered.
ASK_METADATA = ("#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8 9 10; do\n"
                f"  if timeout 5 wget -q -O /tmp/m {METADATA_URL}; then\n"
                "    echo \"grenade: metadata service: $(grep -o '\"uuid\": *\"[^\"]*\"' /tmp/m)\""
                " > /dev/console; exit 0\n  fi\n  sleep 2\ndone\n"
                "echo 'grenade: metadata service did not answer' > /dev/console\n")
FETCH = (f"i=0; until timeout 10 wget -q -O /tmp/meta.json {METADATA_URL}; do i=$((i+1)); "
         "[ $i -ge 6 ] && exit 1; sleep 2; done; cat /tmp/meta.json")


def say(text: str) -> None:
    sys.stdout.write(f"[resources before] {text}\n")
    sys.stdout.flush()


def wait(what: str, poll: Callable[[], T | None], limit: float, every: float = 2) -> T:
    deadline = time.monotonic() + limit
    while True:
        value = poll()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {limit:.0f}s")
        time.sleep(every)


def gaps(log: str) -> list[tuple[int, int]]:
    """Each time without an answer in the poll's log, as (epoch second of the last
    answer before it, seconds until the next), longest first; from the first line
    when nothing answered before, to the last line when nothing answered after."""
    times = [(int(t), r) for t, r in (line.split() for line in log.splitlines()
                                      if len(line.split()) == 2 and line[0].isdigit())]
    if not times:
        return [(0, 1 << 30)]
    found, last = [], times[0][0]
    for moment, result in times:
        if result == "ok":
            found.append((last, moment - last))
            last = moment
    found.append((last, times[-1][0] - last))
    return sorted(found, key=lambda gap: -gap[1])


def longest_gap(log: str) -> float:
    """The longest time between two answers (or from the first line to an answer)
    in the poll's log."""
    return float(gaps(log)[0][1])


@dataclass
class ResourcesBefore:
    """The resource set of one site (``clouds_yaml``: its admin's), keys in ``work``."""

    clouds_yaml: Path
    work: Path
    ids: dict[str, str] = field(default_factory=dict)
    password: str = field(default_factory=lambda: os.urandom(12).hex(), repr=False)
    image_bytes: bytes = field(default_factory=lambda: os.urandom(IMAGE_SIZE), repr=False)
    fip: str = ""
    key: GuestKey | None = None
    trusted: set[str] = field(default_factory=set)

    # --- connections ---------------------------------------------------------------

    def admin(self) -> Any:
        import openstack
        from openstack.config import OpenStackConfig

        config = OpenStackConfig(config_files=[str(self.clouds_yaml)])
        return openstack.connection.Connection(config=config.get_one(cloud="onestack"))

    def user(self) -> Any:
        import openstack

        auth = self.admin().config.config["auth"]
        conn = openstack.connect(auth_url=auth["auth_url"], username=f"{NAME}-user",
                                 password=self.password, project_name=NAME,
                                 user_domain_name="Default", project_domain_name="Default",
                                 region_name=self.admin().config.region_name,
                                 identity_api_version="3",
                                 cacert=self.admin().config.config.get("cacert"))
        conn.authorize()
        return conn

    # --- before the upgrade --------------------------------------------------------

    def create(self) -> None:
        admin = self.admin()
        project = admin.identity.create_project(name=NAME, domain_id="default")
        user = admin.identity.create_user(name=f"{NAME}-user", password=self.password,
                                          domain_id="default", default_project_id=project.id)
        admin.identity.assign_project_role_to_user(project, user,
                                                   admin.identity.find_role("member"))
        self.ids.update(project=project.id, user=user.id)
        conn = self.user()
        image = conn.image.create_image(name=f"{NAME}-image", data=self.image_bytes,
                                        disk_format="raw", container_format="bare",
                                        allow_duplicates=True)
        conn.image.wait_for_status(image, status="active", wait=120)
        self.ids["image"] = image.id
        self.key = make_key(self.work, NAME)
        conn.compute.create_keypair(name=f"{NAME}-key", public_key=self.key.public_line)
        self._network(conn)
        self._server(conn)
        say(f"made on the old release: {sorted(self.ids)}; server at {self.fip}")

    def _network(self, conn: Any) -> None:
        group = conn.network.create_security_group(name=f"{NAME}-sg")
        for protocol, port in (("icmp", None), ("tcp", 22)):
            conn.network.create_security_group_rule(
                security_group_id=group.id, direction="ingress", ethertype="IPv4",
                protocol=protocol, port_range_min=port, port_range_max=port)
        public = conn.network.find_network("public")
        router = conn.network.create_router(name=f"{NAME}-router",
                                            external_gateway_info={"network_id": public.id})
        self.ids.update(group=group.id, router=router.id, public=public.id)
        for side, cidr in CIDRS.items():
            net = conn.network.create_network(name=f"{NAME}-net-{side}")
            subnet = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr=cidr,
                                                name=f"{NAME}-subnet-{side}")
            conn.network.add_interface_to_router(router, subnet_id=subnet.id)
            self.ids.update({f"net-{side}": net.id, f"subnet-{side}": subnet.id})

    def _server(self, conn: Any) -> None:
        server = self._active(conn, self._boot(conn, f"{NAME}-server", "a"))
        port = next(iter(conn.network.ports(device_id=server.id)))
        fip = conn.network.create_ip(floating_network_id=self.ids["public"], port_id=port.id)
        self.ids.update(server=server.id, fip=fip.id)
        self.fip = fip.floating_ip_address
        self.trusted = console_fingerprints(self._console(conn, server.id, "ssh ready"))
        self._shell_run(POLL_SCRIPT.replace("{uuid}", server.id))

    def _boot(self, conn: Any, name: str, side: str, user_data: str = "") -> Any:
        """A server on network ``side``, not waited for."""
        image = conn.image.find_image("onestack-guest")
        flavor = conn.compute.find_flavor("m1.nano")
        extra = {"user_data": base64.b64encode(user_data.encode()).decode()} if user_data else {}
        return conn.compute.create_server(
            name=name, image_id=image.id, flavor_id=flavor.id, key_name=f"{NAME}-key",
            networks=[{"uuid": self.ids[f"net-{side}"]}],
            security_groups=[{"name": f"{NAME}-sg"}], config_drive=True, **extra)

    @staticmethod
    def _active(conn: Any, server: Any) -> Any:
        return conn.compute.wait_for_server(server, status="ACTIVE", wait=240)

    def _console(self, conn: Any, server: str, line: str, limit: float = 240) -> str:
        def poll() -> str | None:
            text = str(conn.compute.get_server_console_output(server).get("output", ""))
            return text if line in text else None
        return wait(f"'{line}' on the console of {server}", poll, limit, 3)

    def in_server(self, command: str, limit: float = 60) -> str:
        """A shell command in the old server, through SSH to its floating IP: its output
        (it must exit 0)."""
        return str(self._shell_run(command, limit))

    def _shell_run(self, command: str, limit: float = 60) -> str:
        assert self.key is not None
        wait(f"SSH on {self.fip}", lambda: True if ssh_answers(self.fip) else None, 180)
        with guest_shell(self.fip, "root", self.key, self.trusted) as shell:
            result = shell.run(command, timeout=limit)
        assert result.exit_status == 0, (command[:80], result.stdout, result.stderr)
        return str(result.stdout)

    # --- after the upgrade (or the rollback) ---------------------------------------

    def check(self, stage: str) -> float:
        """Every resource through the code that runs now; the longest metadata gap (s)
        the old server saw since the last check."""
        conn = self.user()
        got = conn.image.download_image(conn.image.get_image(self.ids["image"])).content
        assert got == self.image_bytes, f"{stage}: the image's bytes changed"
        meta = self._shell_run(FETCH)
        assert self.ids["server"] in meta, f"{stage}: old server's metadata: {meta[:200]}"
        found = gaps(self._shell_run("cat /tmp/md.log; : > /tmp/md.log"))
        gap = float(found[0][1])
        say(f"{stage}: metadata gaps longer than 3s (UTC, seconds): " + ", ".join(
            f"{time.strftime('%H:%M:%S', time.gmtime(t))} {d}s" for t, d in found if d > 3))
        new = {side: self._boot(conn, f"{NAME}-{stage}-{side}", side, ASK_METADATA)
               for side in CIDRS}
        try:
            for side, server in new.items():
                new[side] = server = self._active(conn, server)
                console = self._console(conn, server.id, "grenade: metadata service")
                assert f'grenade: metadata service: "uuid": "{server.id}"' in console, \
                    f"{stage}: {server.name} got no metadata: {console[-600:]}"
                address = next(iter(server.addresses.values()))[0]["addr"]
                self._shell_run(f"i=0; until ping -c 1 -W 1 {address} >/dev/null; do "
                                f"i=$((i+1)); [ $i -ge 30 ] && exit 1; done; "
                                f"ping -c 3 -W 2 {address}", limit=90)
        finally:
            for server in new.values():
                conn.compute.delete_server(server)
            for server in new.values():
                conn.compute.wait_for_delete(server, wait=120)
        say(f"{stage}: user, image, old server (SSH, metadata), new servers on both "
            f"networks (metadata service, ping) all work; longest metadata gap {gap:.0f}s")
        return gap

    def delete(self) -> None:
        """Everything, through the code that runs now: each deletion must succeed."""
        conn = self.user()
        conn.network.delete_ip(self.ids["fip"])
        conn.compute.delete_server(self.ids["server"])
        conn.compute.wait_for_delete(conn.compute.get_server(self.ids["server"]), wait=120)
        router = conn.network.get_router(self.ids["router"])
        for side in CIDRS:
            conn.network.remove_interface_from_router(router,
                                                      subnet_id=self.ids[f"subnet-{side}"])
        conn.network.delete_router(router)
        for side in CIDRS:
            conn.network.delete_network(self.ids[f"net-{side}"])
        conn.network.delete_security_group(self.ids["group"])
        conn.compute.delete_keypair(f"{NAME}-key")
        conn.image.delete_image(self.ids["image"])
        admin = self.admin()
        admin.identity.delete_user(self.ids["user"])
        admin.identity.delete_project(self.ids["project"])
        assert admin.identity.find_project(NAME) is None
        say("deleted through the new release")

