"""Errors of the hardware layer (operator-facing, structured)."""

from __future__ import annotations

from dataclasses import dataclass

from onestack.errors import OnestackError


@dataclass
class UnknownNodesError(OnestackError):
    """The operator named nodes the site file does not declare."""

    names: list[str]
    known: list[str]

    def __str__(self) -> str:
        known = ", ".join(self.known) or "none"
        return f"unknown node(s): {', '.join(self.names)} (the site declares: {known})"


@dataclass
class NoInventoryError(OnestackError):
    """An operation needs an inventory that discovery has not stored yet."""

    site: str

    def __post_init__(self) -> None:
        self.hint = "run `onestack hardware discover` first"

    def __str__(self) -> str:
        return f"no hardware inventory stored for site {self.site}"


@dataclass
class HardwareActionFailed(OnestackError):
    """A power, boot or firmware action did not succeed on some nodes."""

    action: str
    failures: dict[str, str]

    def __str__(self) -> str:
        lines = [f"{self.action} failed on {len(self.failures)} node(s):"]
        lines += [f"  {node}: {why}" for node, why in sorted(self.failures.items())]
        return "\n".join(lines)
