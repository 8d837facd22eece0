"""Day-1 content as steps (pure): what a fresh cloud offers its users before anyone
configures anything. Flavors of the usual shapes with a non-zero disk, and the test
image built from Debian packages (ADR 0013). The network part (a provider network,
floating IPs, a default router) comes with the network back end (issue 11)."""

from __future__ import annotations

from onestack.core.step import Step
from onestack.model.site import Flavor
from onestack.services import oslo
from onestack.services.base import ServiceContext, step
from onestack.steps.content_actions import CloudLogin, EnsureFlavors, EnsureTestImage

TEST_IMAGE_NAME = "onestack-guest"

# The usual shapes (as OpenStack's own m1 flavors and DevStack's nano), each with a disk.
DEFAULT_FLAVORS = (
    Flavor(name="m1.nano", vcpus=1, ram_mb=128, disk_gb=1),
    Flavor(name="m1.tiny", vcpus=1, ram_mb=512, disk_gb=1),
    Flavor(name="m1.small", vcpus=1, ram_mb=2048, disk_gb=20),
    Flavor(name="m1.medium", vcpus=2, ram_mb=4096, disk_gb=40),
    Flavor(name="m1.large", vcpus=4, ram_mb=8192, disk_gb=80),
)


def content_steps(ctx: ServiceContext) -> list[Step]:
    """Flavors (the site's, else the defaults) and, unless the site says not, the test
    image: on the controller, once the APIs answer."""
    login = CloudLogin(oslo.keystone_url(ctx) + "/v3", ctx.secret("keystone.admin"),
                       ctx.site.region)
    flavors = ctx.site.flavors if ctx.site.flavors is not None else DEFAULT_FLAVORS
    shapes = tuple((f.name, (f.vcpus, f.ram_mb, f.disk_gb)) for f in flavors)
    steps = [step(ctx, "nova", "flavors", f"offer flavors {', '.join(n for n, _ in shapes)}",
                  EnsureFlavors(shapes, login))] if shapes else []
    if ctx.site.test_image:
        steps.append(step(ctx, "glance", "test-image", f"build the test image and offer it "
                          f"as {TEST_IMAGE_NAME}",
                          EnsureTestImage(TEST_IMAGE_NAME, ctx.paths.images, login)))
    return steps
