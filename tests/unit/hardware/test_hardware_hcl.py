"""The shipped HCL loads, is consistent, and compares versions as vendors write them."""

from __future__ import annotations

import pytest

from onestack.errors import CatalogError
from onestack.hardware.hcl import HardwareCompatibilityList, version_below


def test_every_baseline_model_is_certified(hcl: HardwareCompatibilityList) -> None:
    certified = {s.key for s in hcl.servers}
    for release, baseline in hcl.baselines.items():
        assert set(baseline.servers) <= certified, release
        for targets in baseline.servers.values():
            for target in targets.values():
                assert not version_below(target.expected, target.minimum)


def test_roles_and_releases(hcl: HardwareCompatibilityList) -> None:
    assert set(hcl.roles) == {"controller", "compute", "storage"}
    assert {"2026.1", "2026.2"} <= set(hcl.baselines)
    with pytest.raises(CatalogError, match="no baseline shipped"):
        hcl.baseline("1999.1")


@pytest.mark.parametrize(("version", "floor", "below"), [
    ("1.9.0", "1.10.2", True),
    ("1.10.2", "1.10.2", False),
    ("1.10.10", "1.10.2", False),
    ("6.00.30.00", "6.10.30.00", True),
    ("U46 v1.60", "U46 v1.72", True),
    ("U46 v1.72 (12/06/2022)", "U46 v1.72", False),
    ("P79 v1.45 (12/06/2017)", "P79 v1.50", True),
    ("1.45.455b66-rev4", "1.45.455b66-rev3", False),
])
def test_version_below(version: str, floor: str, below: bool) -> None:
    assert version_below(version, floor) is below
