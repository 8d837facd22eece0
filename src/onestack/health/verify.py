"""``onestack verify``: smoke tests through openstacksdk against the running cloud."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict
from typing import Any

from onestack.core.progress import Progress, SilentProgress
from onestack.drivers import openstack as os_driver
from onestack.drivers.guest_ssh import GuestAccess
from onestack.drivers.openstack_instances import InstanceCloud
from onestack.health.instances import (
    InstanceChecks,
    InstanceSettings,
    placement,
    skip_reason,
    skipped_row,
)
from onestack.health.results import CheckResult, timed
from onestack.model.site import Site
from onestack.services import oslo
from onestack.state.site import SiteHandle, service_context

PREFIX = "onestack-verify"


class SmokeTests:
    """The smoke tests, each a method returning a short description of what it saw."""

    def __init__(self, conn: Any, timeout: float = 120) -> None:
        self.conn = conn
        self.timeout = timeout
        self.tag = f"{PREFIX}-{os.getpid()}-{int(time.time())}"

    def token(self) -> str:
        token = self.conn.session.get_token()
        return f"token issued ({len(token)} chars)"

    def image(self) -> str:
        payload = os.urandom(256 * 1024)
        image = self.conn.image.create_image(name=self.tag, data=payload, disk_format="raw",
                                             container_format="bare", allow_duplicates=True)
        try:
            self.conn.image.wait_for_status(image, status="active", wait=self.timeout)
            got = self.conn.image.download_image(image).content
            if hashlib.sha256(got).digest() != hashlib.sha256(payload).digest():
                raise AssertionError("downloaded bytes differ from uploaded bytes")
            return f"uploaded and downloaded {len(payload)} bytes, identical"
        finally:
            self.conn.image.delete_image(image, ignore_missing=True)

    def server(self) -> str:
        flavor = self._flavor()
        image = self.conn.image.create_image(name=f"{self.tag}-boot", data=b"\0" * 65536,
                                             disk_format="raw", container_format="bare",
                                             allow_duplicates=True)
        try:
            return self._boot(flavor, image)
        finally:
            self.conn.image.delete_image(image, ignore_missing=True)

    def _boot(self, flavor: Any, image: Any) -> str:
        server = self.conn.compute.create_server(name=self.tag, flavor_id=flavor.id,
                                                 image_id=image.id, networks="none")
        try:
            server = self.conn.compute.wait_for_server(server, status="ACTIVE",
                                                       wait=self.timeout, interval=1)
            host = getattr(server, "hypervisor_hostname", None) or "?"
        finally:
            self.conn.compute.delete_server(server, ignore_missing=True)
        self.conn.compute.wait_for_delete(server, wait=self.timeout, interval=1)
        return f"server ACTIVE on {host}, deleted"

    def every_compute(self, hosts: list[str]) -> str:
        """One server placed on each compute host of the site (admins may name the
        host), all at once: every host's nova-compute is up, known to the scheduler,
        in placement and able to run a server."""
        services = {s.host: s for s in self.conn.compute.services(binary="nova-compute")}
        down = [h for h in hosts if h not in services or services[h].state != "up"
                or services[h].status != "enabled"]
        if down:
            raise AssertionError(f"nova-compute not up and enabled on {', '.join(down)}")
        flavor = self._flavor()
        image = self.conn.image.create_image(name=f"{self.tag}-hosts", data=b"\0" * 65536,
                                             disk_format="raw", container_format="bare",
                                             allow_duplicates=True)
        servers = []
        try:
            for host in hosts:
                servers.append(self.conn.compute.create_server(
                    name=f"{self.tag}-{host}", flavor_id=flavor.id, image_id=image.id,
                    networks="none", availability_zone=f"nova:{host}"))
            landed = sorted(self.conn.compute.wait_for_server(
                s, status="ACTIVE", wait=self.timeout, interval=1).compute_host
                for s in servers)
        finally:
            for server in servers:
                self.conn.compute.delete_server(server, ignore_missing=True)
            for server in servers:
                self.conn.compute.wait_for_delete(server, wait=self.timeout, interval=1)
            self.conn.image.delete_image(image, ignore_missing=True)
        if landed != sorted(hosts):
            raise AssertionError(f"servers landed on {', '.join(landed)}")
        return f"a server ACTIVE on each of {', '.join(landed)}, deleted"

    def _flavor(self) -> Any:
        name = f"{PREFIX}-tiny"
        flavor = self.conn.compute.find_flavor(name)
        return flavor or self.conn.compute.create_flavor(name=name, ram=64, vcpus=1, disk=0)

    def network(self) -> str:
        net = self.conn.network.create_network(name=self.tag)
        try:
            subnet = self.conn.network.create_subnet(network_id=net.id, ip_version=4,
                                                     cidr="192.0.2.0/24", name=self.tag)
            port = self.conn.network.create_port(network_id=net.id, name=self.tag)
            ips = [ip["ip_address"] for ip in port.fixed_ips]
            self.conn.network.delete_port(port)
            self.conn.network.delete_subnet(subnet)
        finally:
            self.conn.network.delete_network(net, ignore_missing=True)
        return f"network, subnet and port (ip {', '.join(ips)}) created and deleted"


def run(handle: SiteHandle, timeout: float = 120, *, instances: bool = False,
        ssh_timeout: float = 180.0, progress: Progress | None = None) -> dict[str, Any]:
    """Run every smoke test; a failure in one does not stop the others. With
    ``instances``, the real-instance checks follow (``health.instances``) on a site
    that can run them, else one skipped row says why not."""
    ctx = service_context(handle, generate=False)
    connect = timed("connect", lambda: _connect_detail(ctx))
    results = [connect]
    if connect.passed:
        conn = os_driver.connect(oslo.keystone_url(ctx) + "/v3", ctx.secret("keystone.admin"),
                                 ctx.site.region, cacert=ctx.cafile)
        tests = SmokeTests(conn, timeout)
        results += [timed("token issue", tests.token),
                    timed("image upload/download", tests.image),
                    timed("server create/ACTIVE/delete", tests.server),
                    timed("every compute host", lambda: tests.every_compute(
                        [h.name for h in ctx.site.computes])),
                    timed("network/subnet/port", tests.network)]
        if instances:
            settings = InstanceSettings(active_timeout=timeout, ssh_timeout=ssh_timeout,
                                        computes=placement(ctx.site))
            results += instance_checks(conn, ctx.site, settings, progress or SilentProgress(),
                                       _guest_access(handle))
    return {"site": handle.site.name, "passed": all(r.passed for r in results),
            "checks": [asdict(r) for r in results]}


def instance_checks(conn: Any, site: Site, settings: InstanceSettings,
                    progress: Progress, access: GuestAccess | None = None) -> list[CheckResult]:
    """The real-instance rows: run when the site runs real guests on OVN, else one
    skipped row naming what the site lacks."""
    reason = skip_reason(site)
    if reason:
        return [skipped_row(reason)]
    cloud = InstanceCloud(conn)
    return InstanceChecks(cloud, access or GuestAccess(), progress, settings).run()


def _guest_access(handle: SiteHandle) -> GuestAccess:
    """Guests' floating IPs are reached from the controller (its bridge holds the
    provider network's gateway address): directly when it is this machine, else
    through its SSH connection."""
    controller = handle.controller()
    tunnel = getattr(controller, "open_tunnel", None)
    return GuestAccess(tunnel) if tunnel is not None else GuestAccess()


def _connect_detail(ctx: Any) -> str:
    os_driver.connect(oslo.keystone_url(ctx) + "/v3", ctx.secret("keystone.admin"),
                      ctx.site.region, cacert=ctx.cafile)
    return f"authenticated as admin at {oslo.keystone_url(ctx)}"
