"""A check's result row (``onestack verify``): name, passed, seconds, what it saw."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class CheckResult:
    name: str
    passed: bool
    seconds: float
    detail: str
    # Not run: the site has nothing to check (passed), or a check it needs failed.
    skipped: bool = False


def timed(name: str, func: Callable[[], str]) -> CheckResult:
    """Run one check; any failure becomes a row, never a traceback."""
    t0 = time.monotonic()
    try:
        detail = func()
        return CheckResult(name, True, time.monotonic() - t0, detail)
    except Exception as exc:  # every failure becomes a row, never a traceback
        return CheckResult(name, False, time.monotonic() - t0, f"{type(exc).__name__}: {exc}")


def not_run(name: str, why: str, passed: bool = False) -> CheckResult:
    """A row for a check that did not run, and why."""
    return CheckResult(name, passed, 0.0, f"not run: {why}", skipped=True)
