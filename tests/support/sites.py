"""Site descriptions shared by the plan tests."""

from __future__ import annotations

from ipaddress import IPv4Address

from onestack.model.site import ComputeDriver, Host, NetworkBackend, Role, Site


def fast(site: Site) -> Site:
    """The same site with the fake compute driver and no network back end (what the
    fast e2e sites use)."""
    return site.model_copy(update={"compute_driver": ComputeDriver.FAKE,
                                   "network": NetworkBackend.NONE})


def site_of(computes: int, *, real: bool = False) -> Site:
    """One controller (198.18.20.10) and ``computes`` compute hosts after it; with the
    fake driver and no network back end unless ``real``."""
    hosts = [Host(name="ctl1", address=IPv4Address("198.18.20.10"),
                  roles=[Role.CONTROLLER, Role.NETWORK])]
    hosts += [Host(name=f"cmp{i}", address=IPv4Address("198.18.20.10") + i,
                   roles=[Role.COMPUTE]) for i in range(1, computes + 1)]
    site = Site(name="multi", release="2026.1", hosts=hosts)
    return site if real else fast(site)
