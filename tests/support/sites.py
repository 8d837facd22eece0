"""Site descriptions shared by the plan tests."""

from __future__ import annotations

from ipaddress import IPv4Address

from onestack.model.site import Host, Role, Site


def site_of(computes: int) -> Site:
    """One controller (198.18.20.10) and ``computes`` compute hosts after it."""
    hosts = [Host(name="ctl1", address=IPv4Address("198.18.20.10"),
                  roles=[Role.CONTROLLER, Role.NETWORK])]
    hosts += [Host(name=f"cmp{i}", address=IPv4Address("198.18.20.10") + i,
                   roles=[Role.COMPUTE]) for i in range(1, computes + 1)]
    return Site(name="multi", release="2026.1", hosts=hosts)
