"""``onestack upgrade``, ``rollback`` and ``restore``: the whole stack as one unit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from onestack.cli.common import CliContext, emit_json, json_option, site_file_option
from onestack.cli.site import _handle, _progress, _render_plan
from onestack.engine import upgrade as ops


@click.group()
def upgrade() -> None:
    """Upgrade the site to another release bundle (atomic: completes or rolls back)."""


@upgrade.command("plan")
@click.option("--to", "target", required=True, help="Release series to upgrade to.")
@site_file_option
@json_option
@click.pass_obj
def plan_command(obj: CliContext, target: str, site_file: Path | None, as_json: bool) -> None:
    """Show the checks and every step of the upgrade, changing nothing."""
    handle = _handle(obj, site_file)
    checks = ops.preflight(handle, target)
    blocked = [c for c in checks if not c["passed"]]
    plan = None if any(c["check"] == "upgrade path" for c in blocked) else \
        ops.plan_upgrade(handle, target)
    if as_json:
        emit_json({"checks": checks, "blocked": bool(blocked),
                   "plan": plan.to_dict() if plan else None})
    else:
        _render_checks(checks)
        if plan:
            _render_plan(plan)
    sys.exit(1 if blocked else 0)


def _render_checks(checks: list[dict[str, Any]]) -> None:
    click.echo("pre-upgrade checks:")
    for c in checks:
        click.echo(f"  {'PASS' if c['passed'] else 'FAIL'}  {c['check']:<40} {c['detail']}")


@upgrade.command("apply")
@click.option("--to", "target", required=True, help="Release series to upgrade to.")
@site_file_option
@json_option
@click.pass_obj
def apply_command(obj: CliContext, target: str, site_file: Path | None, as_json: bool) -> None:
    """Run the upgrade: prepare, roll, verify, commit. Resumes an interrupted one."""
    handle = _handle(obj, site_file)
    state = ops.apply_upgrade(handle, target, _progress(as_json))
    if as_json:
        emit_json(state)
    else:
        click.echo(f"site {handle.site.name} upgraded {state['from']} -> {state['to']}; "
                   f"backup {state['backup']} kept for `onestack restore`")


@upgrade.command("status")
@site_file_option
@json_option
@click.pass_obj
def status_command(obj: CliContext, site_file: Path | None, as_json: bool) -> None:
    """Current phase and step of the upgrade: what is done, what is next."""
    data = ops.upgrade_status(_handle(obj, site_file))
    if as_json:
        emit_json(data)
        return
    click.echo(f"site {data['site']} runs {data['release']}")
    state = data.get("upgrade")
    if not state:
        click.echo("no upgrade has run")
        return
    click.echo(f"upgrade {state['from']} -> {state['to']}: {state['status']}"
               f" (backup {state['backup']})")
    if "phase" in data:
        click.echo(f"phase {data['phase']}: {data['done']}/{data['total']} steps done")
        for step in data["next"]:
            click.echo(f"  next: {step}")
    if data.get("stopped_at"):
        click.echo(f"last run stopped at {data['stopped_at']}")
    if data.get("what_next"):
        click.echo(f"what next: {data['what_next']}")


@upgrade.command("backups")
@site_file_option
@json_option
@click.pass_obj
def backups_command(obj: CliContext, site_file: Path | None, as_json: bool) -> None:
    """Database backups taken before upgrades."""
    backups = ops.list_backups(_handle(obj, site_file))
    if as_json:
        emit_json(backups)
        return
    for b in backups:
        click.echo(f"{b['id']}  {b['from']} -> {b['to']}  {b['size'] / 2**20:.1f} MiB")


@click.command()
@site_file_option
@json_option
@click.pass_obj
def rollback(obj: CliContext, site_file: Path | None, as_json: bool) -> None:
    """Return every service to the previous release (any time before commit). No data lost."""
    handle = _handle(obj, site_file)
    state = ops.rollback(handle, _progress(as_json))
    if as_json:
        emit_json(state)
    else:
        click.echo(f"site {handle.site.name} rolled back to {state['from']}")


@click.command()
@click.option("--backup", "backup_id", required=True, help="Backup id (onestack upgrade backups).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@site_file_option
@click.pass_obj
def restore(obj: CliContext, backup_id: str, yes: bool, site_file: Path | None) -> None:
    """Restore the databases and release of a pre-upgrade backup (after a commit)."""
    handle = _handle(obj, site_file)
    click.echo(f"WARNING: restoring backup {backup_id} replaces every database of site "
               f"{handle.site.name}: everything written since the backup is LOST.", err=True)
    if not yes:
        click.confirm("restore it?", abort=True)
    result = ops.restore(handle, backup_id, _progress(False))
    click.echo(f"site {handle.site.name} restored from {result['restored']}; "
               f"it runs {result['release']}")


COMMANDS = [upgrade, rollback, restore]
