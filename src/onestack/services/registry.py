"""The deployed services, in deploy (and upstream upgrade) order."""

from __future__ import annotations

from types import ModuleType

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

INFRASTRUCTURE: tuple[ModuleType, ...] = (mariadb, rabbitmq, memcached, haproxy)
# Upstream upgrade order: keystone, placement, glance, neutron, nova.
OPENSTACK: tuple[ModuleType, ...] = (keystone, placement, glance, neutron, nova)
ALL: tuple[ModuleType, ...] = INFRASTRUCTURE + OPENSTACK


# The interpreter of the release environments: the system's, which the services' users
# may run (onestack's own may sit under /root; drivers.python_env.find_python).
RELEASE_PYTHON = ("python3",)


def system_packages() -> tuple[str, ...]:
    """Debian packages of the infrastructure."""
    return (WRAPPER_PACKAGES + RELEASE_PYTHON
            + tuple(p for module in INFRASTRUCTURE for p in module.PACKAGES))


def by_name(name: str) -> ModuleType:
    for module in ALL:
        if module.name == name:
            return module
    raise KeyError(name)


def service_users() -> list[str]:
    """OpenStack service users that need keystone credentials."""
    return [m.name for m in OPENSTACK if m.name != "keystone"]
