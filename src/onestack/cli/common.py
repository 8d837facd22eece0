"""Shared CLI plumbing: context object, JSON output, error reporting."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from onestack.errors import EmptyOptionError, InvalidOptionError, OnestackError
from onestack.model.site import SITE_NAME_PATTERN

if TYPE_CHECKING:
    from onestack.state.site import SiteHandle

DEFAULT_HOME = "/var/lib/onestack"
# $ONESTACK_HOME is written into service configurations, supervisor programs and shell
# commands: only characters that need no quoting anywhere.
HOME_PATTERN = re.compile(r"^/[A-Za-z0-9._+@/-]{0,199}$")
NOT_A_HOME = (Path("/proc"), Path("/sys"), Path("/dev"))


@dataclass
class CliContext:
    """Options every command shares (validated: see ``check_site_option``, ``check_home``)."""

    site_name: str
    home: str | None
    site_given: bool = True

    @property
    def home_path(self) -> Path:
        return check_home(chosen_home(self.home))

    @property
    def site_choice(self) -> str | None:
        """``--site`` when the operator gave it; None lets a ``--site-file`` name the site."""
        return self.site_name if self.site_given else None


def check_site_option(name: str) -> str:
    """``--site``: a site name, never a path (``../../etc`` would leave the home)."""
    if not re.fullmatch(SITE_NAME_PATTERN, name):
        raise InvalidOptionError("--site", name, "a site name is 1-32 lowercase letters, "
                                                 "digits and '-', starting with a letter or "
                                                 "digit")
    return name


def chosen_home(option: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """``--home``, else ``$ONESTACK_HOME``, else the default. An empty one is refused:
    it is a mistake (``--home "$UNSET"`` in a script), not a wish for the default."""
    if option == "":
        raise EmptyOptionError("--home", "", f"give onestack's state folder, or leave "
                                             f"--home out for {DEFAULT_HOME}")
    variable = environ.get("ONESTACK_HOME")
    if option is None and variable == "":
        raise EmptyOptionError("ONESTACK_HOME", "", f"set it to onestack's state folder, "
                                                    f"or unset it for {DEFAULT_HOME}")
    return option or variable or DEFAULT_HOME


def check_home(raw: str) -> Path:
    """``--home``: an absolute (or relative) path of plain characters, a directory if it
    exists, and not inside /proc, /sys or /dev."""
    path = Path(os.path.abspath(raw))
    if not HOME_PATTERN.fullmatch(str(path)):
        raise InvalidOptionError("--home", raw, "use a path of at most 200 letters, digits "
                                                "and . _ - + @ / (it is written into service "
                                                "configurations and commands)")
    real = path.resolve()
    if any(real == root or root in real.parents for root in NOT_A_HOME):
        raise InvalidOptionError("--home", raw, f"{real} is inside a kernel file system, "
                                                "not a place for a site's state")
    if path.exists() and not path.is_dir():
        raise InvalidOptionError("--home", raw, "exists and is not a directory")
    return path


# Numeric options: a count of workers is at least 1, a duration is more than 0 seconds
# (click refuses others with a usage error naming the option).
WORKERS = click.IntRange(min=1, max=4096)
SECONDS = click.FloatRange(min=0, min_open=True, max=86_400)


def open_site(obj: CliContext, site_file: Path | None, must_exist: bool = True) -> SiteHandle:
    """The site of a command, by the one rule of ``state.site.open_site``: ``--site``,
    else the ``--site-file``'s name, else ``lab`` (the two must agree). Every command but
    ``up`` and ``plan`` refuses a site that does not exist here, creating nothing."""
    from onestack.state import site

    return site.open_site(obj.home_path, obj.site_choice, site_file, must_exist=must_exist)


def emit_json(data: Any) -> None:
    """Print machine-readable output."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def report_error(exc: OnestackError) -> None:
    """Print an onestack error for an operator, never a traceback."""
    click.secho(f"error: {exc}", fg="red", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)


def report_crash(exc: BaseException) -> None:
    """An unexpected error: one line for the operator, the traceback in a private file.

    The message names only the exception's type: its text might quote anything,
    a secret included. The log file is created 0600 in the temporary directory (the
    home may be the very thing that is broken).
    """
    path = _crash_log_path()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"onestack {' '.join(sys.argv[1:2])}: unexpected error\n")
            traceback.print_exception(exc, file=f)
        where = f"the details are in {path}"
    except OSError:
        where = "the details could not be written"
    click.secho(f"error: unexpected internal error ({type(exc).__name__}); {where}",
                fg="red", err=True)
    click.echo("hint: this is a bug in onestack; please report it with that file", err=True)


def _crash_log_path() -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return Path(tempfile.gettempdir()) / f"onestack-error-{stamp}-{os.getpid()}.log"


site_file_option = click.option("--site-file", type=click.Path(path_type=Path), default=None,
                                help="Site file to use instead of the site's own site.yaml.")


def json_option(func: Any) -> Any:
    """The ``--json`` flag shared by read-only commands."""
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(func)


def is_tty() -> bool:
    return sys.stdout.isatty()
