"""What each thread is doing right now (a command on a host, a transfer, a wait for
a connection), so that a step that takes long can say what it waits for
(``engine.runner``) instead of hanging silently. Drivers say it; nothing here acts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

MAX_SHOWN = 160  # characters of one activity (a long command line is cut)

_doing: dict[int, str] = {}
_lock = threading.Lock()


@contextmanager
def doing(what: str) -> Iterator[None]:
    """Record what this thread does until the block ends (nested: the innermost)."""
    ident = threading.get_ident()
    shown = what if len(what) <= MAX_SHOWN else what[:MAX_SHOWN - 3] + "..."
    with _lock:
        before = _doing.get(ident)
        _doing[ident] = shown
    try:
        yield
    finally:
        with _lock:
            if before is None:
                _doing.pop(ident, None)
            else:
                _doing[ident] = before


def activity_of(ident: int) -> str | None:
    """What that thread does now, if it said."""
    with _lock:
        return _doing.get(ident)
