"""The deployed services, in deploy (and upstream upgrade) order."""

from __future__ import annotations

from onestack.drivers.supervisor import WRAPPER_PACKAGES
from onestack.services import (
    glance,
    haproxy,
    keystone,
    mariadb,
    memcached,
    neutron,
    nova,
    placement,
    rabbitmq,
)
from onestack.services.base import InfraService, OpenStackService, ServiceModule

# Typed: mypy checks every module against its protocol (services.base).
INFRASTRUCTURE: tuple[InfraService, ...] = (mariadb, rabbitmq, memcached, haproxy)
# Upstream upgrade order: keystone, placement, glance, neutron, nova.
OPENSTACK: tuple[OpenStackService, ...] = (keystone, placement, glance, neutron, nova)
ALL: tuple[ServiceModule, ...] = INFRASTRUCTURE + OPENSTACK


# The interpreter of the release environments: the system's, which the services' users
# may run (onestack's own may sit under /root; drivers.python_env.find_python).
RELEASE_PYTHON = ("python3",)


def system_packages() -> tuple[str, ...]:
    """Debian packages of the infrastructure."""
    return (WRAPPER_PACKAGES + RELEASE_PYTHON
            + tuple(p for module in INFRASTRUCTURE for p in module.PACKAGES))


def by_name(name: str) -> OpenStackService:
    """An OpenStack service module by name."""
    for module in OPENSTACK:
        if module.name == name:
            return module
    raise KeyError(name)


def service_users() -> list[str]:
    """OpenStack service users that need keystone credentials."""
    return [m.name for m in OPENSTACK if m.name != "keystone"]
