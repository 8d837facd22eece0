"""``onestack host remove NAME``: a compute host leaves the site and the cloud."""

from __future__ import annotations

import time
from pathlib import Path

import click

from onestack.cli.common import CliContext, emit_json, json_option, open_site, site_file_option
from onestack.core.progress import JsonProgress, PlainProgress
from onestack.engine import operations
from onestack.errors import InvalidOptionError


@click.group()
def host() -> None:
    """The hosts of a site (to add one, list it in the site file and run `up`)."""


@host.command("remove")
@click.argument("name")
@site_file_option
@json_option
@click.pass_obj
def remove(obj: CliContext, name: str, site_file: Path | None, as_json: bool) -> None:
    """Take compute host NAME out of the site: disabled in nova (refused, naming them,
    while servers run there), its programs stopped and the site removed on it, then
    removed from nova's cell and placement. The same as deleting it from the site file
    and running `up`."""
    handle = open_site(obj, site_file, must_exist=True)
    if site_file is not None:
        raise InvalidOptionError("--site-file", str(site_file), f"it decides which hosts the "
                                 f"site has: delete {name} from it and run `onestack up "
                                 f"--site-file {site_file}`")
    hosts = [h for h in handle.site.hosts if h.name != name]
    if len(hosts) == len(handle.site.hosts):
        raise InvalidOptionError("NAME", name, f"site {handle.site.name} has no such host "
                                 f"({', '.join(h.name for h in handle.site.hosts)})")
    if name == handle.site.controller.name:
        raise InvalidOptionError("NAME", name, "is the site's controller, which cannot leave")
    handle.site = handle.site.model_copy(update={"hosts": hosts})
    started = time.monotonic()
    plan = operations.up(handle, JsonProgress() if as_json else PlainProgress())
    summary = {"site": handle.site.name, "removed": name, "changes": len(plan.changes),
               "seconds": round(time.monotonic() - started, 1)}
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"host {name} left site {handle.site.name} in {summary['seconds']}s")
