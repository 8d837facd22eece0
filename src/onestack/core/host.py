"""The host-connection protocol: every action on a machine goes through one.

The lab is one host reached locally (``drivers.host.LocalHost``). Remote hosts will
be reached through an existing engine (pyinfra), never a home-made SSH layer; they
implement the same :class:`HostConnection` protocol so plans do not special-case them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol


class HostConnection(Protocol):
    """What the engine needs from a machine."""

    name: str

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 600, check: bool = True,
            input: str | None = None) -> str: ...

    def write_file(self, path: Path, content: str, *, mode: int = 0o644,
                   owner: str | None = None) -> bool: ...

    def put_file(self, source: Path, path: Path, *, mode: int = 0o600) -> None:
        """Copy a (large) file of the machine onestack runs on to ``path`` there."""
        ...

    def file_digest(self, path: Path) -> str | None: ...

    def file_mode(self, path: Path) -> int | None:
        """Permission bits of a path (e.g. ``0o640``), or None if it does not exist."""
        ...

    def file_owner(self, path: Path) -> str | None:
        """``user:group`` owning a path, or None if it does not exist."""
        ...

    def is_dir(self, path: Path) -> bool: ...

    def read_file(self, path: Path) -> str | None:
        """A text file's exact content, or None if it is not there."""
        ...

    def ensure_dir(self, path: Path, *, mode: int = 0o755, owner: str | None = None) -> None: ...

    def port_holder(self, port: int) -> str | None: ...

    def list_dir(self, path: Path, pattern: str = "*") -> list[str]: ...

    def remove(self, path: Path) -> bool: ...

    def which(self, program: str) -> str | None: ...
