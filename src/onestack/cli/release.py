"""``onestack release``: list, show and build release bundles."""

from __future__ import annotations

import click


@click.group()
def release() -> None:
    """Release bundles: the curated, pinned distribution."""
