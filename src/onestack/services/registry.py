"""The deployed services, in deploy (and upstream upgrade) order."""

from __future__ import annotations

from onestack.drivers.supervisor import SUPERVISOR_PACKAGE, WRAPPER_PACKAGES
from onestack.model.site import Host, Site
from onestack.services import (
    glance,
    haproxy,
    keystone,
    libvirt,
    mariadb,
    memcached,
    neutron,
    nova,
    ovn,
    ovs,
    placement,
    rabbitmq,
)
from onestack.services.base import InfraService, OpenStackService, ServiceModule

# Typed: mypy checks every module against its protocol (services.base).
# The network back end (ADR 0015): the switch on every chassis before OVN, whose
# ovn-controller needs it; libvirt on every compute host (ADR 0016). Each has no host
# (and no step) on a site that does not use it.
INFRASTRUCTURE: tuple[InfraService, ...] = (mariadb, rabbitmq, memcached, haproxy, ovs, ovn,
                                            libvirt)
# Upstream upgrade order: keystone, placement, glance, neutron, nova.
OPENSTACK: tuple[OpenStackService, ...] = (keystone, placement, glance, neutron, nova)
ALL: tuple[ServiceModule, ...] = INFRASTRUCTURE + OPENSTACK


# The interpreter of the release environments: the system's, which the services' users
# may run (onestack's own may sit under /root; drivers.python_env.find_python).
RELEASE_PYTHON = ("python3",)


def system_packages(site: Site) -> tuple[str, ...]:
    """Debian packages of the controller: the program wrappers, the release's
    interpreter and the infrastructure that runs there on this site (with the libvirt
    driver also the Python bindings every release environment links, ADR 0019)."""
    here = site.controller.name
    infra = tuple(p for module in INFRASTRUCTURE if any(h.name == here for h in
                                                       module.hosts(site))
                  for p in module.PACKAGES)
    bindings = libvirt.BINDINGS if libvirt.hosts(site) else ()
    return tuple(dict.fromkeys(WRAPPER_PACKAGES + RELEASE_PYTHON + infra + bindings))


def tls_hosts(site: Site) -> list[Host]:
    """The hosts with a certificate of the site's internal CA (ADR 0025): every host of
    a site where another host than the controller reaches it (OVN's southbound
    database, the message broker); none where all traffic stays on one host."""
    return list(site.hosts) if ovn.remote_chassis(site) or rabbitmq.remote_clients(site) \
        else []


def lab_host_packages() -> tuple[str, ...]:
    """Debian packages a host may install whatever roles a site gives it: a
    controller's infrastructure (issue 22: controllers are lab hosts too), supervisord,
    the switch, ovn-controller, the OVN agent's tools, libvirt and QEMU with the
    bindings. The lab installs them on this machine for its hosts (they share its /usr
    and have no uplink, drivers.labhosts)."""
    infra = tuple(p for module in INFRASTRUCTURE for p in module.PACKAGES)
    return tuple(dict.fromkeys(WRAPPER_PACKAGES + RELEASE_PYTHON + (SUPERVISOR_PACKAGE,)
                               + infra + ovn.CHASSIS_PACKAGES + neutron.AGENT_PACKAGES
                               + libvirt.PACKAGES + libvirt.BINDINGS))


def by_name(name: str) -> OpenStackService:
    """An OpenStack service module by name."""
    for module in OPENSTACK:
        if module.name == name:
            return module
    raise KeyError(name)


def service_users() -> list[str]:
    """OpenStack service users that need keystone credentials."""
    return [m.name for m in OPENSTACK if m.name != "keystone"]
