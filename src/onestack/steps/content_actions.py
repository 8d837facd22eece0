"""Day-1 content of a cloud through its APIs: flavors and the test image.

Each action probes the cloud (what is there now) and only adds what is missing; a
flavor of the same name with another shape is refused, naming both shapes (nova cannot
change a flavor in place, and deleting one under running servers is the operator's call).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onestack.catalog import guest_image as recipe
from onestack.core.digest import digest
from onestack.errors import OnestackError
from onestack.steps.context import HostContext

Shape = tuple[int, int, int]  # vcpus, ram MiB, disk GiB


@dataclass
class FlavorMismatchError(OnestackError):
    """A flavor of that name exists with another shape."""

    name: str
    wanted: Shape
    found: Shape

    def __str__(self) -> str:
        return (f"flavor {self.name} exists as {_shape(self.found)}, the site wants "
                f"{_shape(self.wanted)}: rename it in the site file, or delete the old "
                "flavor once no server uses it")


def _shape(shape: Shape) -> str:
    return f"{shape[0]} vCPU / {shape[1]} MiB RAM / {shape[2]} GiB disk"


@dataclass(frozen=True)
class CloudLogin:
    """How a content action reaches the cloud: as the site's admin (password hashed in
    fingerprints, never shown)."""

    auth_url: str
    password: str = field(repr=False)
    region: str
    cacert: str = ""  # the site CA (https)

    def connect(self) -> Any:
        from onestack.drivers import openstack

        return openstack.connect(self.auth_url, self.password, self.region,
                                 cacert=self.cacert)


def cloud_for_facts(ctx: HostContext, login: CloudLogin) -> Any | None:
    """A connection for a probe's fact, or None when there is no cloud to ask: never
    deployed here, or its identity API does not answer within a few seconds (its
    programs stopped behind a running HAProxy, which would hold every request): the
    fact is unknown and the step decides when it runs. Planning never waits on an
    API that the plan itself is about to start."""
    from onestack.drivers import openstack

    if not deployed(ctx) or not openstack.answers(login.auth_url, cacert=login.cacert):
        return None
    try:
        return login.connect()
    except Exception:  # noqa: BLE001 (openstacksdk's errors and ours: the same here)
        return None


def deployed(ctx: HostContext) -> bool:
    """Whether a deploy of the site ever finished here (its clouds.yaml is its last
    step): before that there is no cloud to ask, and a plan must not try."""
    return ctx.paths.clouds_yaml.exists()


@dataclass(frozen=True)
class EnsureFlavors:
    """Public flavors of these shapes exist."""

    flavors: tuple[tuple[str, Shape], ...]
    login: CloudLogin
    kind: str = "flavors"

    def fingerprint(self) -> str:
        return digest(repr(self.flavors) + self.login.auth_url)

    def probe(self, ctx: HostContext) -> Any:
        conn = cloud_for_facts(ctx, self.login)
        if conn is None:
            return None  # the cloud is not up yet: decided when the step runs
        try:
            return {f.name: [f.vcpus, f.ram, f.disk] for f in conn.compute.flavors()}
        except Exception:  # noqa: BLE001 (openstacksdk's errors and ours: same)
            return None

    def needed(self, fact: Any, done: str | None) -> bool:
        return not isinstance(fact, dict) or any(
            fact.get(name) != list(shape) for name, shape in self.flavors)

    def apply(self, ctx: HostContext) -> None:
        from onestack.drivers import openstack

        conn = self.login.connect()
        with openstack.translated("list flavors"):
            have = {f.name: (f.vcpus, f.ram, f.disk) for f in conn.compute.flavors()}
        for name, shape in self.flavors:
            if name in have and have[name] != shape:
                raise FlavorMismatchError(name, shape, have[name])
            if name not in have:
                with openstack.translated(f"create flavor {name}"):
                    conn.compute.create_flavor(name=name, vcpus=shape[0], ram=shape[1],
                                               disk=shape[2], is_public=True)
                ctx.progress.message(f"flavor {name}: {_shape(shape)}")


IMAGE_DIGEST_PROPERTY = "onestack_sha256"
IMAGE_RECIPE_PROPERTY = "onestack_recipe"


@dataclass(frozen=True)
class EnsureTestImage:
    """The test image (built from Debian packages, ADR 0013) is in glance, public and
    active, built from this onestack's recipe: an image of an older recipe is replaced
    (uploaded anew, then the old one deleted; running servers keep their disks)."""

    name: str
    images_dir: Path
    login: CloudLogin
    kind: str = "image"

    def fingerprint(self) -> str:
        return digest(f"{self.name}|{self.images_dir}|{self.login.auth_url}")

    def probe(self, ctx: HostContext) -> Any:
        conn = cloud_for_facts(ctx, self.login)
        if conn is None:
            return None
        try:
            return [str(i.properties.get(IMAGE_RECIPE_PROPERTY, "")) for i in
                    conn.image.images(name=self.name) if i.status == "active"]
        except Exception:  # noqa: BLE001 (the cloud is not up yet: decided when it runs)
            return None

    def needed(self, fact: Any, done: str | None) -> bool:
        return fact is None or recipe.recipe_digest() not in fact

    def apply(self, ctx: HostContext) -> None:
        from onestack.drivers import guest_image, openstack

        image = guest_image.build_image(self.images_dir, say=ctx.progress.message)
        conn = self.login.connect()
        with openstack.translated(f"upload image {self.name}"):
            current = recipe.recipe_digest()
            images = list(conn.image.images(name=self.name))
            if any(i.status == "active" and i.properties.get(IMAGE_DIGEST_PROPERTY)
                   == image.sha256 and i.properties.get(IMAGE_RECIPE_PROPERTY) == current
                   for i in images):
                return
            uploaded = conn.image.create_image(
                name=self.name, filename=str(image.path), disk_format=image.disk_format,
                container_format=image.container_format, visibility="public",
                min_ram=image.min_ram_mb, allow_duplicates=True,
                **{IMAGE_DIGEST_PROPERTY: image.sha256, IMAGE_RECIPE_PROPERTY: current,
                   "os_type": "linux", "os_distro": "debian",
                   "os_admin_user": image.ssh_user})
            conn.image.wait_for_status(uploaded, status="active", wait=300)
        for old in images:
            with openstack.translated(f"delete the replaced image {old.id}"):
                conn.image.delete_image(old, ignore_missing=True)
            ctx.progress.message(f"image {self.name}: replaced {old.id}")
        ctx.progress.message(f"image {self.name}: {image.size // 2**20} MiB, "
                             f"kernel {image.kernel}")
