"""``onestack release``: list, show and build release bundles."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from onestack.catalog.releases import ReleaseBundle, list_bundles, load_bundle
from onestack.cli.common import CliContext, emit_json, json_option
from onestack.model.paths import SitePaths


@click.group()
def release() -> None:
    """Release bundles: the curated, pinned distribution."""


def bundle_summary(bundle: ReleaseBundle) -> dict[str, Any]:
    """The one-line view of a bundle, as data."""
    return {
        "series": bundle.series,
        "version": bundle.version,
        "codename": bundle.codename,
        "slurp": bundle.slurp,
        "python": bundle.python,
        "services": dict(bundle.services),
        "packages": len(bundle.lock.packages),
        "upgrade_from": list(bundle.upgrade_from),
    }


def bundle_detail(bundle: ReleaseBundle) -> dict[str, Any]:
    """Everything ``release show`` displays, as data."""
    lock = bundle.lock
    runtime = {name: _locked_version(bundle, name) for name in bundle.runtime}
    return {
        **bundle_summary(bundle),
        "platform": bundle.platform,
        "not_deployed": dict(bundle.not_deployed),
        "runtime": runtime,
        "infrastructure": {k: v.model_dump() for k, v in bundle.infrastructure.items()},
        "constraints": bundle.constraints.model_dump(),
        "deviations": [d.model_dump() for d in bundle.deviations],
        "build_from_source": list(bundle.build_from_source),
        "firmware": bundle.firmware.model_dump(),
        "lock": {"packages": len(lock.packages), "sha256": lock.sha256},
    }


def _locked_version(bundle: ReleaseBundle, name: str) -> str:
    locked = bundle.lock.get(name)
    return locked.version if locked else "?"


@release.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """List the release bundles this onestack ships."""
    rows = [bundle_summary(b) for b in list_bundles()]
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'VERSION':<10} {'CODENAME':<10} {'SLURP':<6} {'PACKAGES':>8}  "
               f"{'UPGRADE FROM':<13} SERVICES")
    for row in rows:
        services = ", ".join(f"{n} {v}" for n, v in row["services"].items())
        slurp = "yes" if row["slurp"] else "no"
        upgrade_from = ", ".join(row["upgrade_from"]) or "-"
        click.echo(f"{row['version']:<10} {row['codename']:<10} {slurp:<6}"
                   f" {row['packages']:>8}  {upgrade_from:<13} {services}")


@release.command("show")
@click.argument("series")
@json_option
def show_command(series: str, as_json: bool) -> None:
    """Show one bundle: services, infrastructure, upgrade paths, lock."""
    detail = bundle_detail(load_bundle(series))
    if as_json:
        emit_json(detail)
        return
    for line in render_detail(detail):
        click.echo(line)


def render_detail(d: dict[str, Any]) -> list[str]:
    """Human-readable lines of ``release show``."""
    lines = [f"release {d['version']} ({d['codename']}{', SLURP' if d['slurp'] else ''})",
             f"python: CPython {d['python']} ({d['platform']})", "services:"]
    lines += [f"  {n:<22} {v}" for n, v in d["services"].items()]
    lines += [f"  {n:<22} {v}  (not deployed)" for n, v in d["not_deployed"].items()]
    lines.append("runtime:")
    lines += [f"  {n:<22} {v}" for n, v in d["runtime"].items()]
    lines.append("infrastructure (Debian 12):")
    infra = d["infrastructure"].items()
    lines += [f"  {n:<10} {i['package']:<16} {i['version']}" for n, i in infra]
    lines.append(f"upgrade from: {', '.join(d['upgrade_from']) or 'none (first bundle)'};"
                 " newer revisions of the same series; never downgrade")
    c = d["constraints"]
    lines.append(f"constraints: {c['source']} (sha256 {c['sha256'][:12]}…)")
    lines += [f"  deviation {x['package']}: {x['note']}" for x in d["deviations"]]
    lines.append(f"built from source: {', '.join(d['build_from_source']) or 'none'}")
    lines.append(f"firmware: {d['firmware']['hcl']} baseline {d['firmware']['baseline']}")
    lines.append(f"lock: {d['lock']['packages']} packages, sha256 {d['lock']['sha256']}")
    return lines


@release.command("build")
@click.argument("series")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Wheelhouse folder (default $ONESTACK_HOME/wheelhouse/SERIES).")
@click.pass_obj
def build_command(ctx: CliContext, series: str, dest: Path | None) -> None:
    """Build the offline wheelhouse of a bundle (download, verify hashes, build sdists)."""
    from onestack.drivers import python_env  # deferred: only this command needs it

    bundle = load_bundle(series)
    target = dest or SitePaths(ctx.home_path, ctx.site_name).wheelhouse / series
    started = time.monotonic()
    path = python_env.build_wheelhouse(bundle, target, progress=_echo_progress(started))
    click.echo(f"wheelhouse of release {bundle.version} is ready: {path}")
    click.echo(f"install offline from it with: --no-index --find-links {path}")


def _echo_progress(started: float) -> Callable[[str], None]:
    def report(message: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {message}")

    return report

