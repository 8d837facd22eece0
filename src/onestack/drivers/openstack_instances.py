"""The cloud objects ``onestack verify`` creates to check real instances: a keypair, a
security group, servers and a floating IP, through openstacksdk.

Each method is one API call or a lookup, translated by ``openstack.translated`` into
:class:`~onestack.drivers.openstack.CloudApiError`; waiting and deciding is the
caller's (``health.instances``), so it can be tested without a cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onestack.drivers.openstack import translated

ANYWHERE = "0.0.0.0/0"
DEFAULT_ZONE = "nova"  # nova's availability zone of every compute host


@dataclass(frozen=True)
class ServerState:
    """What a poll of a server shows: status, nova's fault (on ERROR), fixed IPv4s and
    the compute host it runs on (shown to admins)."""

    status: str
    fault: str
    fixed_ips: tuple[str, ...]
    host: str = ""


@dataclass(frozen=True)
class FloatingIp:
    id: str
    address: str


def fault_message(fault: Any) -> str:
    """Nova's fault of a server (``{"message", "code", "details"}``) as one line; the last
    line of ``details`` (admins see a traceback there) says what raised."""
    if not fault:
        return "no fault recorded by nova"
    if not isinstance(fault, dict):
        return str(fault)
    message = str(fault.get("message") or "").strip() or "?"
    details = str(fault.get("details") or "").strip().splitlines()
    cause = details[-1].strip() if details else ""
    text = f"{message}: {cause}" if cause and cause not in message else message
    return text[:500]


def fixed_ips(addresses: Any) -> tuple[str, ...]:
    """The fixed IPv4 addresses of a server's ``addresses`` ({network: [address...]})."""
    found = []
    for entries in (addresses or {}).values():
        for entry in entries:
            if entry.get("version", 4) == 4 and entry.get("OS-EXT-IPS:type", "fixed") == "fixed":
                found.append(str(entry["addr"]))
    return tuple(found)


class InstanceCloud:
    """The calls the real-instance checks make, on an openstacksdk connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def image_id(self, name: str) -> str | None:
        with translated(f"find image {name}"):
            image = self.conn.image.find_image(name, ignore_missing=True)
            return str(image.id) if image is not None else None

    def flavor_id(self, name: str) -> str | None:
        with translated(f"find flavor {name}"):
            flavor = self.conn.compute.find_flavor(name, ignore_missing=True)
            return str(flavor.id) if flavor is not None else None

    def network_id(self, name: str) -> str | None:
        with translated(f"find network {name}"):
            network = self.conn.network.find_network(name, ignore_missing=True)
            return str(network.id) if network is not None else None

    def create_keypair(self, name: str, public_key: str) -> None:
        with translated(f"create keypair {name}"):
            self.conn.compute.create_keypair(name=name, public_key=public_key)

    def delete_keypair(self, name: str) -> None:
        with translated(f"delete keypair {name}"):
            self.conn.compute.delete_keypair(name, ignore_missing=True)

    def create_security_group(self, name: str) -> str:
        with translated(f"create security group {name}"):
            group = self.conn.network.create_security_group(
                name=name, description="onestack verify: throwaway, deleted at the end")
            return str(group.id)

    def allow_ingress(self, group_id: str, protocol: str, port: int | None = None) -> None:
        """Let IPv4 ``protocol`` (``icmp``, ``tcp``) in from anywhere, on ``port``."""
        ports = {"port_range_min": port, "port_range_max": port} if port else {}
        with translated(f"add {protocol} {port or ''} rule".replace("  ", " ")):
            self.conn.network.create_security_group_rule(
                security_group_id=group_id, direction="ingress", ethertype="IPv4",
                protocol=protocol, remote_ip_prefix=ANYWHERE, **ports)

    def delete_security_group(self, group_id: str) -> None:
        with translated(f"delete security group {group_id}"):
            self.conn.network.delete_security_group(group_id, ignore_missing=True)

    def create_server(self, name: str, *, image_id: str, flavor_id: str, network_id: str,
                      key_name: str, group: str, config_drive: bool,
                      host: str | None = None) -> str:
        """A server; with ``host``, on that compute host (an admin's ``nova:<host>``)."""
        placed = {"availability_zone": f"{DEFAULT_ZONE}:{host}"} if host else {}
        with translated(f"create server {name}"):
            server = self.conn.compute.create_server(
                name=name, image_id=image_id, flavor_id=flavor_id,
                networks=[{"uuid": network_id}], key_name=key_name,
                security_groups=[{"name": group}], config_drive=config_drive, **placed)
            return str(server.id)

    def server_state(self, server_id: str) -> ServerState:
        with translated(f"show server {server_id}"):
            server = self.conn.compute.get_server(server_id)
            return ServerState(str(server.status), fault_message(getattr(server, "fault", None)),
                               fixed_ips(server.addresses),
                               str(getattr(server, "compute_host", None) or ""))

    def servers_named(self, prefix: str) -> list[str]:
        """Ids of the servers whose name starts with ``prefix`` (left behind by a failed
        create whose answer never came)."""
        with translated(f"list servers {prefix}*"):
            return [str(s.id) for s in self.conn.compute.servers(name=f"^{prefix}")
                    if str(s.name).startswith(prefix)]

    def delete_server(self, server_id: str) -> None:
        with translated(f"delete server {server_id}"):
            self.conn.compute.delete_server(server_id, ignore_missing=True)

    def server_gone(self, server_id: str) -> bool:
        with translated(f"show server {server_id}"):
            return self.conn.compute.find_server(server_id, ignore_missing=True) is None

    def console_output(self, server_id: str) -> str:
        with translated(f"console log of server {server_id}"):
            return str(self.conn.compute.get_server_console_output(server_id).get("output")
                       or "")

    def add_floating_ip(self, public_network_id: str, server_id: str,
                        fixed_ip: str) -> FloatingIp:
        """A floating IP of the public network, on the server's port of ``fixed_ip``."""
        with translated(f"floating IP for server {server_id}"):
            port = next(p for p in self.conn.network.ports(device_id=server_id)
                        if any(ip["ip_address"] == fixed_ip for ip in p.fixed_ips))
            fip = self.conn.network.create_ip(floating_network_id=public_network_id,
                                              port_id=port.id, fixed_ip_address=fixed_ip)
            return FloatingIp(str(fip.id), str(fip.floating_ip_address))

    def delete_floating_ip(self, fip_id: str) -> None:
        with translated(f"delete floating IP {fip_id}"):
            self.conn.network.delete_ip(fip_id, ignore_missing=True)
