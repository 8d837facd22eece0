"""Shared CLI plumbing: context object, JSON output, error reporting."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from onestack.errors import OnestackError, SiteNameMismatch

if TYPE_CHECKING:
    from onestack.state.site import SiteHandle

DEFAULT_HOME = "/var/lib/onestack"


@dataclass
class CliContext:
    """Options every command shares."""

    site_name: str
    home: str | None
    site_explicit: bool = False
    """Whether ``--site`` (or ONESTACK_SITE) was given, rather than defaulted."""

    @property
    def home_path(self) -> Path:
        return Path(self.home or os.environ.get("ONESTACK_HOME") or DEFAULT_HOME)


def open_site(obj: CliContext, site_file: Path | None) -> SiteHandle:
    """The site to act on: the one ``--site-file`` declares, else ``--site``'s.

    The site file's ``name`` decides whose secrets and state are used; an
    explicit ``--site`` naming another site is refused rather than mixed in.
    """
    from onestack.state import site

    handle = site.open_site(obj.home_path, obj.site_name, site_file)
    if site_file is not None and obj.site_explicit and handle.site.name != obj.site_name:
        raise SiteNameMismatch(obj.site_name, str(site_file), handle.site.name)
    return handle


def emit_json(data: Any) -> None:
    """Print machine-readable output."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def report_error(exc: OnestackError) -> None:
    """Print an onestack error for an operator, never a traceback."""
    click.secho(f"error: {exc}", fg="red", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)


def json_option(func: Any) -> Any:
    """The ``--json`` flag shared by read-only commands."""
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(func)


def is_tty() -> bool:
    return sys.stdout.isatty()
