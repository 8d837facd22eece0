"""Shared fixtures for deploy-side unit tests: a pure service context with fake secrets."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from onestack.model.paths import SitePaths
from onestack.model.ports import Ports
from onestack.model.site import Site, default_lab_site
from onestack.plans.deploy import required_secrets
from onestack.services.base import ServiceContext

ContextFactory = Callable[..., ServiceContext]


@pytest.fixture
def make_service_context(tmp_path: Path) -> ContextFactory:
    """Build a ServiceContext under tmp_path; every secret is a recognisable random value."""

    def build(site: Site | None = None, series: str = "2026.1") -> ServiceContext:
        site = site or default_lab_site()
        paths = SitePaths(tmp_path / "home", site.name)
        values = {n: f"sekrit{secrets.token_hex(8)}" for n in required_secrets()}
        return ServiceContext(site=site, series=series, paths=paths, secrets=values,
                              venv=paths.venv(series), ports=Ports(site.port_offset))

    return build


@pytest.fixture(scope="session")
def wrapper_packages() -> None:
    """The Debian packages every supervised program runs under (tini, util-linux): tests
    that start a real supervisord need them, as ``onestack up`` does."""
    from onestack.drivers import apt
    from onestack.drivers.host import LocalHost
    from onestack.drivers.supervisor import WRAPPER_PACKAGES

    host = LocalHost()
    if apt.missing(host, WRAPPER_PACKAGES):
        apt.install(host, WRAPPER_PACKAGES)


@pytest.fixture(scope="session")
def network_tools() -> None:
    """iproute2 (ip, bridges, namespaces): tests of lab hosts and the data path install
    it on a machine without it (a minimal Debian), rather than skip."""
    import shutil

    from onestack.drivers import apt
    from onestack.drivers.host import LocalHost

    if shutil.which("ip") is None:
        apt.install(LocalHost(), ["iproute2"])
