"""Fixtures for hardware unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from onestack.hardware.hcl import HardwareCompatibilityList, load_hcl  # noqa: E402


@pytest.fixture(scope="session")
def hcl() -> HardwareCompatibilityList:
    return load_hcl()
