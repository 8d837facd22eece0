"""Day-1 content as data: flavors with a disk, the test image, and on an OVN site the
networks and router (their actions: tests/unit/steps/test_network_content.py)."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address, ip_network

import pytest

from onestack.catalog import guest_image as guest_recipe
from onestack.model.loader import parse_site
from onestack.plans import content
from onestack.plans.content import DEFAULT_FLAVORS, TEST_IMAGE_NAME, content_steps
from onestack.services import ovs
from onestack.services.base import ServiceContext
from onestack.steps.content_actions import EnsureFlavors, EnsureTestImage, FlavorMismatchError
from onestack.steps.network_content import (
    EnsureBridgeAddress,
    EnsureNetwork,
    EnsureRouter,
    EnsureSubnet,
)

ContextFactory = Callable[..., ServiceContext]
SITE = 'name: s1\nrelease: "2026.1"\nhosts:\n  - name: aio\n'
NO_NETWORK = "compute_driver: fake\nnetwork: none\n"  # no network content


def test_default_flavors_all_have_a_disk_so_any_user_can_boot() -> None:
    assert DEFAULT_FLAVORS and all(f.disk_gb >= 1 for f in DEFAULT_FLAVORS)
    assert "m1.nano" in {f.name for f in DEFAULT_FLAVORS}  # the test image's 128 MiB


def test_the_site_may_name_its_own_flavors_or_none_and_skip_the_image(
        make_service_context: ContextFactory) -> None:
    site = parse_site(SITE + NO_NETWORK + "flavors:\n  - {name: c1, vcpus: 2, ram_mb: 1024, "
                      "disk_gb: 10}\ntest_image: false\n", "s.yaml")
    steps = content_steps(make_service_context(site))
    assert [s.id for s in steps] == ["nova/flavors"]
    assert steps[0].action.flavors == (("c1", (2, 1024, 10)),)  # type: ignore[attr-defined]
    none = parse_site(SITE + NO_NETWORK + "flavors: []\ntest_image: false\n", "s.yaml")
    assert content_steps(make_service_context(none)) == []


def test_a_flavor_without_disk_is_refused_naming_the_field() -> None:
    from onestack.errors import SiteFileError

    with pytest.raises(SiteFileError) as err:
        parse_site(SITE + "flavors:\n  - {name: c1, vcpus: 1, ram_mb: 512, disk_gb: 0}\n",
                   "s.yaml")
    assert err.value.field_path == "flavors.0.disk_gb"


def test_flavors_are_needed_until_every_shape_is_there(
        make_service_context: ContextFactory) -> None:
    action = content_steps(make_service_context())[0].action
    assert isinstance(action, EnsureFlavors)
    every = {n: list(shape) for n, shape in action.flavors}
    assert action.needed(None, None)  # the cloud did not answer: decided when it runs
    assert not action.needed(every, None)
    assert action.needed({**every, "m1.tiny": [1, 512, 0]}, None)
    assert "1 vCPU / 512 MiB RAM / 0 GiB disk" in str(
        FlavorMismatchError("m1.tiny", (1, 512, 1), (1, 512, 0)))


def test_the_image_is_needed_until_one_of_this_recipe_is_active_and_its_summary_names_it(
        make_service_context: ContextFactory) -> None:
    step = content_steps(make_service_context())[-1]
    assert isinstance(step.action, EnsureTestImage) and TEST_IMAGE_NAME in step.summary
    assert step.action.needed(None, None) and step.action.needed([], None)
    assert step.action.needed(["0" * 64], None)  # built from an older recipe: replaced
    assert not step.action.needed(["0" * 64, guest_recipe.recipe_digest()], None)
    assert "sekrit" not in repr(step.action)  # the admin password is not shown


NETWORK_IDS = ["host/address:br-ex", "neutron/network:public", "neutron/subnet:public-subnet",
               "neutron/network:private", "neutron/subnet:private-subnet",
               "neutron/router:router1"]


def test_an_ovn_site_gets_its_networks_and_router_in_order(
        make_service_context: ContextFactory) -> None:
    steps = content_steps(make_service_context(parse_site(SITE, "s.yaml")))
    assert [s.id for s in steps] == ["nova/flavors", *NETWORK_IDS, "glance/test-image"]
    bridge = steps[1].action
    assert isinstance(bridge, EnsureBridgeAddress) and steps[1].host == "aio"
    assert (bridge.bridge, bridge.address) == (ovs.PROVIDER_BRIDGES["public"], "198.19.0.1/24")
    public = steps[2].action
    assert isinstance(public, EnsureNetwork) and dict(public.shape) == {
        "router:external": True, "shared": False, "provider:network_type": "flat",
        "provider:physical_network": "public"}
    assert "public" in ovs.PROVIDER_BRIDGES  # the physical network OVN maps to br-ex
    floating = steps[3].action
    assert isinstance(floating, EnsureSubnet) and floating.pool == content.PUBLIC_POOL
    assert dict(floating.shape)["enable_dhcp"] is False
    private = steps[5].action
    assert isinstance(private, EnsureSubnet) and private.dns == ()
    assert dict(private.shape) == {"ip_version": 4, "cidr": "10.0.0.0/24",
                                   "gateway_ip": "10.0.0.1", "enable_dhcp": True}
    router = steps[6].action
    assert isinstance(router, EnsureRouter)
    assert (router.gateway, router.subnets) == ("public", ("private-subnet",))
    assert all("sekrit" not in s.summary + repr(s.action) for s in steps)


def test_a_site_without_network_back_end_gets_no_network_content(
        make_service_context: ContextFactory) -> None:
    site = parse_site(SITE + NO_NETWORK, "s.yaml")
    assert [s.id for s in content_steps(make_service_context(site))] == [
        "nova/flavors", "glance/test-image"]


def test_a_controller_without_switch_gets_no_bridge_address(
        make_service_context: ContextFactory) -> None:
    site = parse_site(SITE.replace("  - name: aio\n", "  - {name: ctl, roles: [controller]}\n"
                                   "  - {name: cmp1, address: 198.18.0.12}\n"), "s.yaml")
    ids = [s.id for s in content_steps(make_service_context(site))]
    assert ids == ["nova/flavors", *NETWORK_IDS[1:], "glance/test-image"]


def test_the_public_range_never_leaves_the_test_range_and_private_is_private() -> None:
    public = ip_network(content.PUBLIC_CIDR)
    assert public.subnet_of(ip_network("198.18.0.0/15"))  # RFC 2544: reserved for tests
    assert not public.overlaps(ip_network("198.18.0.0/24"))  # onestack lab's hosts
    gateway = ip_address(content.PUBLIC_GATEWAY)
    start, end = (ip_address(a) for a in content.PUBLIC_POOL)
    assert gateway in public and start in public and end in public
    assert gateway < start <= end < public.broadcast_address
    assert ip_network(content.PRIVATE_CIDR).is_private
    assert not ip_network(content.PRIVATE_CIDR).overlaps(public)
