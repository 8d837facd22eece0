"""The lab's listening ports. APIs listen on their upstream ports at HAProxy;
the service instances behind it listen on loopback ports of their own.

Every port, shifted by the largest allowed ``port_offset``, stays below Linux's
ephemeral range (32768-60999 by default): an outgoing connection takes its local
port from that range, and one that happens to hold a backend port makes the
instance's ``bind()`` fail. A green instance starts long after the host has made
thousands of connections, so this is not a theoretical collision (ADR 0006)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# name -> (frontend port at HAProxy, backend port of the blue instance, green instance)
API_PORTS: dict[str, tuple[int, int, int]] = {
    "keystone": (5000, 25000, 15000),
    "glance": (9292, 29292, 19292),
    "placement": (8778, 28778, 18778),
    "nova": (8774, 28774, 18774),
    "neutron": (9696, 29696, 19696),
}

# Linux's default first ephemeral port; no port of any site may reach it.
EPHEMERAL_START = 32768
MAX_PORT_OFFSET = 3000

# The path each API answers without a token: HAProxy's check, onestack's probes.
API_HEALTH_PATHS: dict[str, str] = {"keystone": "/v3", "glance": "/versions", "placement": "/",
                                    "nova": "/", "neutron": "/"}

INFRA_PORTS: dict[str, int] = {
    "mariadb": 13306,
    "rabbitmq": 5682,
    "rabbitmq-dist": 25682,
    "rabbitmq-epmd": 14369,
    "haproxy-stats": 11936,
    # OVN's northbound and southbound databases (upstream 6641/6642), reached over TCP
    # at the controller's address by neutron and by every chassis's ovn-controller.
    "ovn-nb": 16641,
    "ovn-sb": 16642,
    # nova's metadata API (upstream 8775) on the controller's loopback, which neutron's
    # OVN agents reach with the shared secret: the controller's own there, other
    # hosts' through HAProxy's frontend on the controller's address, over mutual TLS.
    "nova-metadata": 18775,
    "nova-metadata-tls": 18776,
}


@dataclass(frozen=True)
class Ports:
    """Every port of a site, shifted by the site's ``port_offset``."""

    offset: int = 0

    def frontend(self, service: str) -> int:
        return API_PORTS[service][0] + self.offset

    def backend(self, service: str, color: str = "blue") -> int:
        return API_PORTS[service][1 if color == "blue" else 2] + self.offset

    def infra(self, name: str) -> int:
        return INFRA_PORTS[name] + self.offset

    def backends(self, colors: Mapping[str, str]) -> dict[str, int]:
        """The ports the API instances of these colours listen on, by program."""
        return {f"{n} API ({c})": self.backend(n, c) for n, c in colors.items()}

    def all_listening(self) -> dict[str, int]:
        """Ports that must be free before a first deploy (blue backends and frontends)."""
        ports = {f"{n} (api)": self.frontend(n) for n in API_PORTS}
        ports.update({f"{n} (backend)": self.backend(n) for n in API_PORTS})
        ports.update({n: p + self.offset for n, p in INFRA_PORTS.items()})
        return ports
