"""``onestack host remove NAME``: a compute host leaves the site and the cloud."""

from __future__ import annotations

import time
from pathlib import Path

import click

from onestack.cli.common import (
    CliContext,
    emit_json,
    is_tty,
    json_option,
    open_site,
    site_file_option,
)
from onestack.core.progress import JsonProgress, PlainProgress
from onestack.drivers import host_keys
from onestack.engine import operations
from onestack.errors import HostKeyChangedError, HostUnreachableError, InvalidOptionError
from onestack.model.site import Host
from onestack.state.site import SiteHandle


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


@host.command("trust")
@click.argument("names", nargs=-1)
@site_file_option
@click.option("--yes", is_flag=True, help="Record the keys without asking (compare the "
              "fingerprints shown with the host's own console first).")
@click.option("--replace", is_flag=True, help="Replace a host's recorded key that changed "
              "(a reinstalled host).")
@json_option
@click.pass_obj
def trust(obj: CliContext, names: tuple[str, ...], site_file: Path | None, yes: bool,
          replace: bool, as_json: bool) -> None:
    """Record the SSH host keys of the site's hosts (NAMES, default: every SSH host) in
    the site's known_hosts, after showing their fingerprints. A key that differs from
    the recorded one is refused unless --replace. A site not deployed yet needs its
    --site-file (to trust its hosts before the first `up`)."""
    handle = open_site(obj, site_file, must_exist=site_file is None)
    known = handle.known_hosts_file
    report = [_trust_host(h, known, yes, replace, as_json) for h in _ssh_hosts(handle, names)]
    if as_json:
        emit_json({"site": handle.site.name, "known_hosts": str(known), "hosts": report})


def _ssh_hosts(handle: SiteHandle, names: tuple[str, ...]) -> list[Host]:
    remote = [h for h in handle.site.hosts if not h.is_local]
    unknown = sorted(set(names) - {h.name for h in remote})
    if unknown:
        raise InvalidOptionError("NAMES", " ".join(unknown), "not SSH hosts of site "
                                 f"{handle.site.name} ({', '.join(h.name for h in remote)})")
    return [h for h in remote if not names or h.name in names]


def _trust_host(host: Host, known: Path, yes: bool, replace: bool,
                as_json: bool) -> dict[str, object]:
    pattern = host_keys.host_pattern(str(host.address), host.ssh_port)
    offered = host_keys.scan(str(host.address), host.ssh_port)
    if not offered:
        raise HostUnreachableError(host.name, f"{host.address}:{host.ssh_port}",
                                   "no host key offered (ssh-keyscan)")
    have = host_keys.recorded(known, pattern)
    prints = [f"{k.key_type} {k.fingerprint}" for k in offered]
    entry: dict[str, object] = {"host": host.name, "address": pattern, "keys": prints}
    if have and {(k.key_type, k.key) for k in offered} <= {(k.key_type, k.key) for k in have}:
        return {**entry, "change": "already trusted"}
    if have and not replace:
        raise HostKeyChangedError(host.name, pattern, str(known))
    if not as_json:
        click.echo(f"{host.name} ({pattern}) offers:\n" + "".join(f"  {p}\n" for p in prints),
                   nl=False)
    if not yes:
        if not is_tty():
            raise InvalidOptionError("--yes", "", "not given, and no terminal to ask on: "
                                     "compare the fingerprints, then run again with --yes")
        click.confirm(f"record these keys for {host.name}?", abort=True)
    host_keys.record(known, offered, replace=bool(have))
    return {**entry, "change": "replaced" if have else "recorded"}
