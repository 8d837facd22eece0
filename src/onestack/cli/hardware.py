"""``onestack hardware``: discovery, certification, firmware, power."""

from __future__ import annotations

import click


@click.group()
def hardware() -> None:
    """Certified hardware: Redfish discovery, HCL certification, firmware, power."""
