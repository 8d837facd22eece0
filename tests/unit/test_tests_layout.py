"""The test tree itself."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def test_every_test_module_has_its_own_basename() -> None:
    """pytest imports test modules by basename (no packages under tests/): two files of
    one name stop the whole run at collection."""
    names = Counter(p.name for p in Path(__file__).parents[1].rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []
