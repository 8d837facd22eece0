"""Day-1 content as data: flavors with a disk, the test image, both idempotent."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from onestack.model.loader import parse_site
from onestack.plans.content import DEFAULT_FLAVORS, TEST_IMAGE_NAME, content_steps
from onestack.services.base import ServiceContext
from onestack.steps.content_actions import EnsureFlavors, EnsureTestImage, FlavorMismatchError

ContextFactory = Callable[..., ServiceContext]
SITE = 'name: s1\nrelease: "2026.1"\nhosts:\n  - name: aio\n'


def test_default_flavors_all_have_a_disk_so_any_user_can_boot() -> None:
    assert DEFAULT_FLAVORS and all(f.disk_gb >= 1 for f in DEFAULT_FLAVORS)
    assert "m1.nano" in {f.name for f in DEFAULT_FLAVORS}  # the test image's 128 MiB


def test_the_site_may_name_its_own_flavors_or_none_and_skip_the_image(
        make_service_context: ContextFactory) -> None:
    site = parse_site(SITE + "flavors:\n  - {name: c1, vcpus: 2, ram_mb: 1024, disk_gb: 10}\n"
                      "test_image: false\n", "s.yaml")
    steps = content_steps(make_service_context(site))
    assert [s.id for s in steps] == ["nova/flavors"]
    assert steps[0].action.flavors == (("c1", (2, 1024, 10)),)  # type: ignore[attr-defined]
    none = parse_site(SITE + "flavors: []\ntest_image: false\n", "s.yaml")
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


def test_the_image_is_needed_until_one_is_active_and_its_summary_names_it(
        make_service_context: ContextFactory) -> None:
    step = content_steps(make_service_context())[-1]
    assert isinstance(step.action, EnsureTestImage) and TEST_IMAGE_NAME in step.summary
    assert step.action.needed(None, None) and step.action.needed([], None)
    assert not step.action.needed(["0" * 64], None)
    assert "sekrit" not in repr(step.action)  # the admin password is not shown
