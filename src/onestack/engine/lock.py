"""The site lock: one mutating operation per site at a time."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from onestack.errors import SiteLockedError


@contextmanager
def site_lock(site_dir: Path, site_name: str, operation: str) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on the site for the block's duration."""
    site_dir.mkdir(parents=True, exist_ok=True)
    path = site_dir / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise SiteLockedError(site_name, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{operation} (pid {os.getpid()})".encode(), 0)
        yield
    finally:
        os.close(fd)
