"""``onestack lab``: test hosts on this machine, to rehearse a multi-host site."""

from __future__ import annotations

from pathlib import Path

import click

from onestack.cli.common import CliContext, emit_json, json_option
from onestack.drivers.lab_layout import DEFAULT_BRIDGE, DEFAULT_NETWORK
from onestack.drivers.labhosts import Lab, LabChange
from onestack.services import registry


def _lab(ctx: click.Context, bridge: str | None = None, network: str | None = None) -> Lab:
    cli: CliContext = ctx.find_root().obj
    return Lab.open(lab_home(cli.home_path), bridge, network,
                    say=lambda msg: click.echo(msg, err=True),
                    packages=registry.lab_host_packages())


def lab_home(home: Path) -> Path:
    """Where the lab of an onestack home keeps its hosts, keys and known_hosts."""
    return home / "lab"


def _show_changes(changes: list[LabChange], as_json: bool, lab: Lab) -> None:
    if as_json:
        emit_json({"hosts": [{"name": c.host, "change": c.change} for c in changes],
                   "key_file": str(lab.spec.key_file),
                   "known_hosts": str(lab.spec.known_hosts),
                   "tunnel_cable": lab.spec.tunnel_cable})
        return
    for change in changes:
        click.echo(f"{change.host}: {change.change}")


@click.group()
def lab() -> None:
    """Test hosts on this machine (namespaces behind a bridge without uplink)."""


@lab.group("hosts")
def hosts() -> None:
    """Create, list and delete the lab's hosts."""


@hosts.command("create")
@click.argument("count", type=click.IntRange(1, 200))
@click.option("--bridge", envvar="ONESTACK_LAB_BRIDGE", default=None,
              help=f"Bridge of a new lab (default {DEFAULT_BRIDGE}).")
@click.option("--network", envvar="ONESTACK_LAB_NETWORK", default=None,
              help=f"Network of a new lab, inside 198.18.0.0/15 (default {DEFAULT_NETWORK}).")
@json_option
@click.pass_context
def create(ctx: click.Context, count: int, bridge: str | None, network: str | None,
           as_json: bool) -> None:
    """Ensure hosts lab1..labCOUNT exist and new ones run (idempotent)."""
    the_lab = _lab(ctx, bridge, network)
    _show_changes(the_lab.create(count), as_json, the_lab)
    if not as_json:
        click.echo(f"tunnel interfaces (site file `tunnel:`): eth1 on each host, "
                   f"{the_lab.spec.tunnel_cable} on this machine")
        click.echo(f"ssh -i {the_lab.spec.key_file} -o UserKnownHostsFile="
                   f"{the_lab.spec.known_hosts} root@ADDRESS")


@hosts.command("list")
@json_option
@click.pass_context
def list_hosts(ctx: click.Context, as_json: bool) -> None:
    """Each host: address, power state, namespace, directory."""
    the_lab = _lab(ctx)
    states = the_lab.states()
    if as_json:
        emit_json({"bridge": the_lab.spec.bridge, "network": the_lab.spec.network,
                   "key_file": str(the_lab.spec.key_file),
                   "known_hosts": str(the_lab.spec.known_hosts),
                   "tunnel_cable": the_lab.spec.tunnel_cable,
                   "hosts": [s.to_dict() for s in states]})
        return
    if not states:
        click.echo("no lab hosts (onestack lab hosts create N)")
    for s in states:
        click.echo(f"{s.name:8} {s.address:15} {s.power:4} {s.dir}")


@hosts.command("delete")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, yes: bool) -> None:
    """Power off and remove every lab host, the bridge and the lab's directory."""
    the_lab = _lab(ctx)
    if not yes:
        click.confirm(f"delete every lab host under {the_lab.spec.home}, with their disks?",
                      abort=True)
    changes = the_lab.delete()
    _show_changes(changes, False, the_lab)
    click.echo(f"lab deleted ({the_lab.spec.bridge} removed)")


@lab.group("host")
def host() -> None:
    """Power one lab host off or on (its disk is kept)."""


@host.command("poweroff")
@click.argument("name")
@click.pass_context
def poweroff(ctx: click.Context, name: str) -> None:
    """Kill every process of NAME at once and unplug it."""
    the_lab = _lab(ctx)
    done = the_lab.power_off(the_lab.host(name))
    click.echo(f"{name}: {'powered off' if done else 'already off'}")


@host.command("poweron")
@click.argument("name")
@click.pass_context
def poweron(ctx: click.Context, name: str) -> None:
    """Boot NAME again: namespaces, address, sshd; its disk as it was."""
    the_lab = _lab(ctx)
    done = the_lab.power_on(the_lab.host(name))
    click.echo(f"{name}: {'powered on' if done else 'already on'}")
