"""Day-1 content as steps (pure): what a fresh cloud offers its users before anyone
configures anything. Flavors of the usual shapes with a non-zero disk, and the test
image built from Debian packages (ADR 0013). On an OVN site, the network part: the
provider network of floating IPs (and this host's gateway address on its bridge), a
default tenant network and a router between them."""

from __future__ import annotations

from ipaddress import ip_network

from onestack.core.step import Step
from onestack.model.site import Flavor, NetworkBackend
from onestack.services import oslo, ovs
from onestack.services.base import ServiceContext, host_step, step
from onestack.steps.content_actions import CloudLogin, EnsureFlavors, EnsureTestImage
from onestack.steps.network_content import (
    EnsureBridgeAddress,
    EnsureNetwork,
    EnsureRouter,
    EnsureSubnet,
)

TEST_IMAGE_NAME = "onestack-guest"

# The usual shapes (as OpenStack's own m1 flavors and DevStack's nano), each with a disk.
DEFAULT_FLAVORS = (
    Flavor(name="m1.nano", vcpus=1, ram_mb=128, disk_gb=1),
    Flavor(name="m1.tiny", vcpus=1, ram_mb=512, disk_gb=1),
    Flavor(name="m1.small", vcpus=1, ram_mb=2048, disk_gb=20),
    Flavor(name="m1.medium", vcpus=2, ram_mb=4096, disk_gb=40),
    Flavor(name="m1.large", vcpus=4, ram_mb=8192, disk_gb=80),
)

# The provider network of floating IPs ("public", flat on the physical network of
# ovs.PROVIDER_BRIDGES). Its bridge br-ex has no uplink, so its range is one reserved
# for testing (RFC 2544's 198.18.0.0/15; `onestack lab` uses 198.18.0.0/24): the
# controller holds the gateway address on br-ex and reaches floating IPs; nothing of
# the range is ever routed off the machine. The pool leaves .2-.9 and .251-.254 free.
PUBLIC_NETWORK = "public"
PUBLIC_SUBNET = "public-subnet"
PUBLIC_PHYSNET = "public"
PUBLIC_CIDR = "198.19.0.0/24"
PUBLIC_GATEWAY = "198.19.0.1"
PUBLIC_POOL = ("198.19.0.10", "198.19.0.250")
# The default tenant network (geneve, neutron's tenant type) in the admin project:
# a private range (RFC 1918), no DNS servers (none is reachable from a lab).
PRIVATE_NETWORK = "private"
PRIVATE_SUBNET = "private-subnet"
PRIVATE_CIDR = "10.0.0.0/24"
ROUTER = "router1"


def content_steps(ctx: ServiceContext) -> list[Step]:
    """Flavors (the site's, else the defaults), on an OVN site the networks and router
    (``network_steps``), and, unless the site says not, the test image: on the
    controller, once the APIs answer."""
    login = oslo.admin_login(ctx)
    flavors = ctx.site.flavors if ctx.site.flavors is not None else DEFAULT_FLAVORS
    shapes = tuple((f.name, (f.vcpus, f.ram_mb, f.disk_gb)) for f in flavors)
    steps = [step(ctx, "nova", "flavors", f"offer flavors {', '.join(n for n, _ in shapes)}",
                  EnsureFlavors(shapes, login))] if shapes else []
    if ctx.site.network == NetworkBackend.OVN:
        steps += network_steps(ctx, login)
    if ctx.site.test_image:
        steps.append(step(ctx, "glance", "test-image", f"build the test image and offer it "
                          f"as {TEST_IMAGE_NAME}",
                          EnsureTestImage(TEST_IMAGE_NAME, ctx.paths.images, login)))
    return steps


def network_steps(ctx: ServiceContext, login: CloudLogin) -> list[Step]:
    """The controller's gateway address on br-ex (when it is a chassis, so has one),
    then ``public`` and its subnet, ``private`` and its subnet, and ``router1``
    between them: each created only if missing, never changed."""
    bridge = ovs.PROVIDER_BRIDGES[PUBLIC_PHYSNET]
    prefix = PUBLIC_CIDR.split("/")[1]
    host = ([host_step(ctx, ctx.controller, "host", f"address:{bridge}",
                       f"give {bridge} the address {PUBLIC_GATEWAY}/{prefix} (this host "
                       f"reaches floating IPs; no uplink)",
                       EnsureBridgeAddress(bridge, f"{PUBLIC_GATEWAY}/{prefix}",
                                           ovs.ovsdb_connection(ctx)))]
            if ovs.is_chassis(ctx.controller) else [])
    public = EnsureNetwork(PUBLIC_NETWORK, (
        ("router:external", True), ("shared", False), ("provider:network_type", "flat"),
        ("provider:physical_network", PUBLIC_PHYSNET)), login)
    private = EnsureNetwork(PRIVATE_NETWORK, (("router:external", False), ("shared", False)),
                            login)
    return [
        *host,
        step(ctx, "neutron", f"network:{PUBLIC_NETWORK}", f"create the provider network "
             f"{PUBLIC_NETWORK} (external, flat on {PUBLIC_PHYSNET})", public),
        step(ctx, "neutron", f"subnet:{PUBLIC_SUBNET}", f"create {PUBLIC_SUBNET} "
             f"{PUBLIC_CIDR} (floating IPs {PUBLIC_POOL[0]}-{PUBLIC_POOL[1]}, no DHCP)",
             EnsureSubnet(PUBLIC_SUBNET, PUBLIC_NETWORK, _subnet(PUBLIC_CIDR, PUBLIC_GATEWAY,
                                                                 dhcp=False),
                          PUBLIC_POOL, (), login)),
        step(ctx, "neutron", f"network:{PRIVATE_NETWORK}",
             f"create the tenant network {PRIVATE_NETWORK} (admin project)", private),
        step(ctx, "neutron", f"subnet:{PRIVATE_SUBNET}",
             f"create {PRIVATE_SUBNET} {PRIVATE_CIDR} (DHCP, no DNS servers)",
             EnsureSubnet(PRIVATE_SUBNET, PRIVATE_NETWORK,
                          _subnet(PRIVATE_CIDR, _first_host(PRIVATE_CIDR), dhcp=True),
                          None, (), login)),
        step(ctx, "neutron", f"router:{ROUTER}", f"create the router {ROUTER} (gateway on "
             f"{PUBLIC_NETWORK}, interface on {PRIVATE_SUBNET})",
             EnsureRouter(ROUTER, PUBLIC_NETWORK, (PRIVATE_SUBNET,), login)),
    ]


def _subnet(cidr: str, gateway: str, *, dhcp: bool) -> tuple[tuple[str, object], ...]:
    return (("ip_version", 4), ("cidr", cidr), ("gateway_ip", gateway), ("enable_dhcp", dhcp))


def _first_host(cidr: str) -> str:
    """Neutron's default gateway of a subnet (its first address), said explicitly so the
    shape compares exactly."""
    return str(next(ip_network(cidr).hosts()))
