"""Host connections for unit tests of our own logic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from onestack.drivers.host import LocalHost


class OtherHost:
    """A connection that is not this machine's, as an SSH host's is, whose commands the
    local shell runs: code that runs things "there" (a script handed to python3, a
    client for a socket) really runs, in a process of its own."""

    def __init__(self, name: str = "ctl2") -> None:
        self.name = name
        self.commands: list[list[str]] = []

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 600, check: bool = True,
            input: str | None = None) -> str:
        self.commands.append(list(argv))
        return LocalHost().run(argv, env=env, cwd=cwd, timeout=timeout, check=check,
                               input=input)
