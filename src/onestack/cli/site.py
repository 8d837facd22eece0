"""Site lifecycle commands: up, plan, status, verify, down, credentials."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import click

from onestack.cli.common import (
    SECONDS,
    CliContext,
    emit_json,
    json_option,
    open_site,
    site_file_option,
)
from onestack.core.progress import JsonProgress, PlainProgress, Progress, SilentProgress
from onestack.core.step import Plan
from onestack.drivers.secrets import MAX_SECRET, check_secret_name
from onestack.engine import operations
from onestack.model.architecture import ArchitectureReport
from onestack.plans.deploy import CLOUD_NAME
from onestack.state.site import SiteHandle


def _handle(obj: CliContext, site_file: Path | None, must_exist: bool = True) -> SiteHandle:
    """The site of this command (one rule, see ``state.site.open_site``). Every command
    but ``up`` and ``plan`` refuses a site that does not exist here, creating nothing."""
    return open_site(obj, site_file, must_exist=must_exist)


def _progress(as_json: bool) -> Progress:
    return JsonProgress() if as_json else PlainProgress()


@click.command()
@site_file_option
@json_option
@click.pass_obj
def up(obj: CliContext, site_file: Path | None, as_json: bool) -> None:
    """Deploy the site (default: an all-in-one cloud on this machine), or converge it."""
    handle = _handle(obj, site_file, must_exist=False)
    t0 = time.monotonic()
    plan = operations.up(handle, _progress(as_json))
    seconds = time.monotonic() - t0
    summary = {"site": handle.site.name, "changes": len(plan.changes),
               "seconds": round(seconds, 1), "clouds_yaml": str(handle.paths.clouds_yaml),
               "cloud": CLOUD_NAME}
    if as_json:
        emit_json(summary)
        return
    what = "nothing to do, already up to date" if plan.is_empty else \
        f"{len(plan.changes)} steps applied"
    click.echo(f"site {handle.site.name} is up ({what}) in {seconds:.1f}s")
    click.echo(f"credentials: {handle.paths.clouds_yaml} (cloud '{CLOUD_NAME}')")
    click.echo(f"  export OS_CLIENT_CONFIG_FILE={handle.paths.clouds_yaml}")
    click.echo(f"  openstack --os-cloud {CLOUD_NAME} server list")


@click.command()
@site_file_option
@json_option
@click.pass_obj
def plan(obj: CliContext, site_file: Path | None, as_json: bool) -> None:
    """Show the architecture's placement and single points of failure, then every step
    `up` would take, changing nothing."""
    handle = _handle(obj, site_file, must_exist=False)
    architecture = operations.architecture_report(handle)
    result = operations.plan_site(handle, SilentProgress()) if architecture.deployable \
        else Plan("up", ())
    if as_json:
        emit_json({**result.to_dict(), "architecture": architecture.to_dict()})
        return
    _render_architecture(architecture)
    if not architecture.deployable:
        click.echo(f"no steps: this version of onestack cannot deploy architecture "
                   f"{architecture.architecture} yet (up refuses it)")
        return
    _render_plan(result)


def _render_architecture(report: ArchitectureReport) -> None:
    click.echo(f"architecture {report.architecture}: {report.summary}")
    click.echo("placement:")
    width = max(len(host) for host in report.placement)
    for host, components in report.placement.items():
        lines = textwrap.wrap(", ".join(components) or "(nothing)", 88 - width,
                              break_on_hyphens=False) or [""]
        click.echo(f"  {host:<{width}}  {lines[0]}")
        for more in lines[1:]:
            click.echo(f"  {'':<{width}}  {more}")
    points = report.single_points
    if not points:
        click.echo("single points of failure: none")
        return
    click.echo(f"single points of failure ({len(points)}):")
    name_width = max(len(p.what) for p in points)
    for point in points:
        hosts = f" on {', '.join(point.hosts)}" if point.hosts else " (none deployed)"
        click.echo(f"  {point.severity.value:<8}  {point.what:<{name_width}}{hosts}: "
                   f"{point.takes_down}")


def _render_plan(result: Plan) -> None:
    if result.is_empty:
        click.echo("nothing to do: the site is up to date")
        return
    changes = result.changes
    click.echo(f"{len(changes)} of {len(result.steps)} steps to apply:")
    width = max(len(s.host) for s in changes)
    for index, step in enumerate(changes, start=1):
        click.echo(f"  {index:>3}. {step.host:<{width}} {step.service:<10} {step.summary}")


@click.command()
@site_file_option
@json_option
@click.pass_obj
def status(obj: CliContext, site_file: Path | None, as_json: bool) -> None:
    """Every service and infrastructure component: version, process, address, health."""
    from onestack.health.status import collect

    handle = _handle(obj, site_file)
    data = collect(handle)
    if as_json:
        emit_json(data)
    else:
        _render_status(data)
    sys.exit(0 if data["healthy"] else 3)


def _render_status(data: dict[str, Any]) -> None:
    click.echo(f"site {data['site']}  release {data['release']}  "
               f"supervisor {data['supervisor']}")
    hosts = data.get("hosts", {})
    for name, state in hosts.items():
        if len(hosts) > 1:
            click.echo(f"  host {name}: supervisor {state}")
    width = max([len(h) for h in hosts] + [4]) if len(hosts) > 1 else 0
    head = f"{'SERVICE':<10} {'PROCESS':<25} {'STATE':<9} {'PID':>7} {'UPTIME':>9} " \
           f"{'CRASHES':>7} {'VERSION':<22} {'HEALTH':<7} ADDRESS"
    click.echo((f"{'HOST':<{width}} " if width else "") + head)
    for c in data["components"]:
        health = {True: "ok", False: "FAIL", None: "-"}[c["healthy"]]
        click.echo((f"{c['host']:<{width}} " if width else "")
                   + f"{c['service']:<10} {c['process']:<25} {c['state']:<9} "
                   f"{c['pid'] or '-':>7} {c['uptime']:>9} {c['crashes']:>7} "
                   f"{c['version']:<22} {health:<7} {c['address']}")
        if c["healthy"] is False and c["detail"]:
            click.echo(f"{'':<10} {'':<25} ! {c['detail']}")
    for cert in data.get("certificates", []):
        click.echo(f"{cert['name']}: {cert['detail']}"
                   + ("" if cert["healthy"] else "  FAIL"))
    run = data.get("last_run")
    if run:
        line = f"last run: #{run['id']} {run['operation']} {run['status']}"
        if run["status"] != "done" and run.get("stopped_at"):
            line += f" (stopped at {run['stopped_at']}: {run.get('detail') or ''})"
        click.echo(line.splitlines()[0])


@click.command()
@site_file_option
@json_option
@click.option("--timeout", default=120.0, show_default=True, type=SECONDS,
              help="Seconds per wait.")
@click.option("--ssh-timeout", default=180.0, show_default=True, type=SECONDS,
              help="Seconds for a booted instance to answer SSH on its floating IP.")
@click.option("--instances/--no-instances", default=True, show_default=True,
              help="Also boot real instances (libvirt and OVN sites) and check SSH, "
                   "instance-to-instance traffic and security groups.")
@click.pass_obj
def verify(obj: CliContext, site_file: Path | None, as_json: bool, timeout: float,
           ssh_timeout: float, instances: bool) -> None:
    """Smoke-test the running cloud through openstacksdk; non-zero exit on any failure."""
    from onestack.health.verify import run

    data = run(_handle(obj, site_file), timeout, instances=instances,
               ssh_timeout=ssh_timeout, progress=_progress(as_json))
    if as_json:
        emit_json(data)
    else:
        for c in data["checks"]:
            mark = "SKIP" if c["skipped"] else "PASS" if c["passed"] else "FAIL"
            click.echo(f"{mark}  {c['name']:<30} {c['seconds']:6.1f}s  {c['detail']}")
        click.echo("all checks passed" if data["passed"] else "some checks FAILED")
    sys.exit(0 if data["passed"] else 1)


@click.command()
@site_file_option
@click.option("--purge", is_flag=True, help="Also delete the site's state, data and secrets.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation of --purge.")
@click.pass_obj
def down(obj: CliContext, site_file: Path | None, purge: bool, yes: bool) -> None:
    """Stop every service of the site cleanly (data is kept unless --purge)."""
    handle = _handle(obj, site_file)
    if purge and not yes:
        click.confirm(f"delete all data, state and secrets of site {handle.site.name} "
                      f"under {handle.paths.site}?", abort=True)
    operations.down(handle, PlainProgress(), purge=purge)
    click.echo(f"site {handle.site.name} is down" + (" and purged" if purge else ""))


@click.command()
@site_file_option
@click.option("--show-secrets", is_flag=True, help="Also print every generated secret.")
@click.pass_obj
def credentials(obj: CliContext, site_file: Path | None, show_secrets: bool) -> None:
    """Where the admin credentials are; with --show-secrets, the secrets themselves."""
    handle = _handle(obj, site_file)
    click.echo(f"clouds.yaml: {handle.paths.clouds_yaml} (cloud '{CLOUD_NAME}')")
    click.echo(f"secrets:     {handle.paths.secrets_file}")
    if show_secrets:
        store = handle.secrets
        for name in store.names():
            click.echo(f"  {name} = {store.get(name)}")


@click.command("set-secret")
@click.argument("name")
@site_file_option
@click.pass_obj
def set_secret(obj: CliContext, name: str, site_file: Path | None) -> None:
    """Store a secret the site needs (e.g. bmc-rack01.password), read without echo.

    The value is prompted for (or read from standard input when it is not a
    terminal) and written to the site's 0600 secrets file; it is never printed.
    """
    check_secret_name(name)
    # A new site's secrets (BMC credentials before the first `up`) need its site file.
    handle = _handle(obj, site_file, must_exist=site_file is None)
    if sys.stdin.isatty():
        value = click.prompt(name, hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.readline(MAX_SECRET + 1).rstrip("\n")
    if not value:
        raise click.UsageError("empty value: nothing stored")
    if len(value) > MAX_SECRET or not value.isprintable():
        raise click.UsageError(f"a secret is one line of at most {MAX_SECRET} printable "
                               "characters: nothing stored")
    handle.secrets.set(name, value)
    click.echo(f"stored {name} in {handle.paths.secrets_file}")


COMMANDS = [up, plan, status, verify, down, credentials, set_secret]
