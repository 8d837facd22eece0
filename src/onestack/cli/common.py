"""Shared CLI plumbing: context object, JSON output, error reporting."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from onestack.errors import OnestackError

DEFAULT_HOME = "/var/lib/onestack"


@dataclass
class CliContext:
    """Options every command shares."""

    site_name: str
    home: str | None

    @property
    def home_path(self) -> Path:
        return Path(self.home or os.environ.get("ONESTACK_HOME") or DEFAULT_HOME)


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
