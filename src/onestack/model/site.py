"""The typed site model: what the operator declares. Pure data, no I/O."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Interface
from typing import Annotated, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from onestack.model.hardware import MAX_NODES, Node
from onestack.model.ports import MAX_PORT_OFFSET

# Every string of a site file has a length cap and a pattern: values end up in paths,
# shell scripts, INI files and node names, where a newline or a quote would be syntax.
SITE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
HOST_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SERIES_PATTERN = r"^[0-9]{4}\.[0-9]$"
USER_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}$"
# The characters --home allows (docs/security.md): the path reaches argvs and files.
FILE_PATH_PATTERN = r"^/[A-Za-z0-9._+@/-]{0,199}$"
MAX_HOSTS = 1000
_T = TypeVar("_T")

SiteName = Annotated[str, StringConstraints(max_length=32, pattern=SITE_NAME_PATTERN)]
HostName = Annotated[str, StringConstraints(max_length=63, pattern=HOST_NAME_PATTERN)]
Label = Annotated[str, StringConstraints(max_length=64, pattern=LABEL_PATTERN)]
Series = Annotated[str, StringConstraints(max_length=6, pattern=SERIES_PATTERN)]
UserName = Annotated[str, StringConstraints(max_length=32, pattern=USER_PATTERN)]
FilePath = Annotated[str, StringConstraints(max_length=200, pattern=FILE_PATH_PATTERN)]
# A Linux interface name (IFNAMSIZ - 1 characters, no '/', ':' or blank).
INTERFACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$"
InterfaceName = Annotated[str, StringConstraints(max_length=15, pattern=INTERFACE_PATTERN)]


class Role(StrEnum):
    """What a host does in the cloud."""

    CONTROLLER = "controller"
    COMPUTE = "compute"
    NETWORK = "network"
    STORAGE = "storage"


class ConnectionKind(StrEnum):
    """How onestack reaches a host: it runs there (local), or over SSH."""

    LOCAL = "local"
    SSH = "ssh"


class ComputeDriver(StrEnum):
    """What nova-compute runs instances with: real guests, or nothing (fast tests)."""

    LIBVIRT = "libvirt"
    FAKE = "fake"


class NetworkBackend(StrEnum):
    """Neutron's back end: OVN with a data path (ADR 0015), or none (neutron's API and
    database only: ports never bind, fast tests with the fake compute driver)."""

    OVN = "ovn"
    NONE = "none"


class VirtType(StrEnum):
    """How libvirt runs guests: ``auto`` uses KVM on a compute host only where a probe
    guest boots under it there (else QEMU software emulation); ``qemu`` never uses KVM;
    ``kvm`` requires it (the deploy fails on a host where the probe guest does not
    boot). See ADR 0016."""

    AUTO = "auto"
    QEMU = "qemu"
    KVM = "kvm"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostTunnel(Strict):
    """Where a chassis sends and receives its tenant networks' tunnels (Geneve): an
    interface given whole to the site's switch, and the tunnel address the switch holds
    on it (ADR 0023: the userspace datapath tunnels only through a switch port)."""

    interface: InterfaceName
    address: IPv4Interface  # with its prefix, e.g. 198.18.51.11/24

    @field_validator("address")
    @classmethod
    def _a_host_address(cls, address: IPv4Interface) -> IPv4Interface:
        net = address.network
        if net.prefixlen >= 31 or address.ip in (net.network_address, net.broadcast_address):
            raise ValueError(f"{address} is not a host's address in a network of "
                             "several hosts")
        return address


class Host(Strict):
    """A machine that runs part of the cloud."""

    name: HostName
    address: IPv4Address = IPv4Address("127.0.0.1")
    connection: ConnectionKind = ConnectionKind.LOCAL
    roles: list[Role] = Field(default_factory=lambda: [Role.CONTROLLER, Role.COMPUTE,
                                                       Role.NETWORK], max_length=len(Role))
    failure_domain: Label | None = None
    # How to reach an ``ssh`` host (ignored for ``local``). ``ssh_key`` defaults to
    # the site's own key (``SitePaths.ssh_key``).
    ssh_user: UserName = "root"
    ssh_port: int = Field(default=22, ge=1, le=65535, strict=True)
    ssh_key: FilePath | None = None
    # Tenant traffic to and from other chassis (compute and network hosts); None: the
    # host's address, for a site whose only chassis it is.
    tunnel: HostTunnel | None = None

    @property
    def is_local(self) -> bool:
        return self.connection == ConnectionKind.LOCAL

    @property
    def is_chassis(self) -> bool:
        """Whether it forwards instance traffic (a compute or network host)."""
        return Role.COMPUTE in self.roles or Role.NETWORK in self.roles


class Flavor(Strict):
    """A flavor offered to every project (Day-1 content): a non-zero disk, so any user
    can boot from an image."""

    name: Label
    vcpus: int = Field(ge=1, le=1024, strict=True)
    ram_mb: int = Field(ge=64, le=4 * 1024 * 1024, strict=True)
    disk_gb: int = Field(ge=1, le=65536, strict=True)


class SiteTls(Strict):
    """The operator's own certificate for the APIs (instead of one of the site CA's):
    PEM files on the machine onestack runs on."""

    certificate: FilePath  # the certificate, then its chain
    key: FilePath  # its private key, unencrypted
    ca: FilePath  # what clients must trust: the CA that issued the chain


class Site(Strict):
    """A whole cloud: its release bundle, its hosts, its hardware."""

    name: SiteName
    release: Series = Field(description="Release bundle series, e.g. 2026.1")
    # A reference architecture of the catalog (catalog/architectures, ADR 0024); its
    # rules are checked where the catalog is read (drivers.site_file).
    architecture: Label = "aio"
    region: Label = "RegionOne"
    hosts: list[Host] = Field(min_length=1, max_length=MAX_HOSTS)
    nodes: list[Node] = Field(default_factory=list, max_length=MAX_NODES)
    # strict: YAML's `true` is not the offset 1, nor is 1.5 the offset 1.
    port_offset: int = Field(default=0, ge=0, le=MAX_PORT_OFFSET, strict=True,
                             description="Added to every listening port (to run beside others)")
    # Host keys of the site's SSH hosts (default ``SitePaths.known_hosts``).
    known_hosts: FilePath | None = None
    # The APIs' certificate; None: one of the site's own CA (ADR 0022).
    tls: SiteTls | None = None
    # nova-compute's driver on every compute host. ``fake`` boots nothing (fast tests).
    compute_driver: ComputeDriver = ComputeDriver.LIBVIRT
    virt_type: VirtType = VirtType.AUTO
    # Neutron's back end; ``none`` has no data path (only with the fake driver).
    network: NetworkBackend = NetworkBackend.OVN
    # Day-1 content: the flavors every project sees (None: plans.content's defaults)
    # and the test image built from Debian packages (onestack image build).
    flavors: list[Flavor] | None = Field(default=None, max_length=100)
    test_image: bool = Field(default=True, strict=True)

    @field_validator("architecture")
    @classmethod
    def _former_architecture_name(cls, name: str) -> str:
        # Sites recorded before architectures were data say "all-in-one".
        return "aio" if name == "all-in-one" else name

    @field_validator("virt_type")
    @classmethod
    def _virt_type_needs_libvirt(cls, virt_type: VirtType, info: ValidationInfo) -> VirtType:
        # A hypervisor choice with the fake driver would be silently ignored. (Declared
        # after compute_driver, so that one is validated already; absent if invalid.)
        driver = info.data.get("compute_driver")
        if virt_type != VirtType.AUTO and driver not in (None, ComputeDriver.LIBVIRT):
            raise ValueError(f"virt_type {virt_type.value} needs compute_driver: libvirt")
        return virt_type

    @field_validator("network")
    @classmethod
    def _instances_need_a_network(cls, network: NetworkBackend,
                                  info: ValidationInfo) -> NetworkBackend:
        # A real guest on a network without a data path would never get its address.
        driver = info.data.get("compute_driver")
        if network == NetworkBackend.NONE and driver == ComputeDriver.LIBVIRT:
            raise ValueError("network none needs compute_driver: fake (libvirt guests "
                             "need a data path)")
        return network

    @field_validator("hosts")
    @classmethod
    def _unique_hosts(cls, hosts: list[Host]) -> list[Host]:
        _unique("host", "names", [h.name for h in hosts], hosts)
        # Two hosts on one address would be one machine doing both hosts' steps.
        _unique("host", "addresses", [str(h.address) for h in hosts], hosts)
        return _unique("tunnel", "addresses",
                       [str(h.tunnel.address.ip) for h in hosts if h.tunnel], hosts)

    @field_validator("nodes")
    @classmethod
    def _unique_node_names(cls, nodes: list[Node]) -> list[Node]:
        return _unique("node", "names", [n.name for n in nodes], nodes)

    def hosts_with(self, role: Role) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]

    @property
    def controller(self) -> Host:
        """The first controller: where the control plane of a lab runs."""
        controllers = self.hosts_with(Role.CONTROLLER)
        return controllers[0] if controllers else self.hosts[0]

    @property
    def computes(self) -> list[Host]:
        """The hosts that run nova-compute."""
        return self.hosts_with(Role.COMPUTE)

    @property
    def chassis(self) -> list[Host]:
        """The hosts that forward instance traffic, with the OVN back end."""
        return [h for h in self.hosts if h.is_chassis] if self.network == NetworkBackend.OVN \
            else []

    def untunnelled_chassis(self) -> list[Host]:
        """Chassis without a ``tunnel`` on a site of several chassis: their tenant
        traffic to the others would have no way (ADR 0023)."""
        chassis = self.chassis
        return [h for h in chassis if h.tunnel is None] if len(chassis) > 1 else []

    def host(self, name: str) -> Host:
        """The host of that name (KeyError if the site has none)."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


def _unique(what: str, field: str, names: list[str], items: list[_T]) -> list[_T]:
    """Refuse repeated names (or addresses), in linear time (a site file may list many
    hosts)."""
    dupes = sorted(n for n, count in Counter(names).items() if count > 1)
    if dupes:
        shown = ", ".join(dupes[:5]) + (f" and {len(dupes) - 5} more" if len(dupes) > 5 else "")
        raise ValueError(f"duplicate {what} {field}: {shown}")
    return items


def default_lab_site(name: str = "lab", release: str = "2026.1") -> Site:
    """The embedded default: one local host doing everything."""
    return Site(name=name, release=release, hosts=[Host(name="aio")])
