"""``onestack image``: the test image, a small guest built from Debian packages."""

from __future__ import annotations

from pathlib import Path

import click

from onestack.cli.common import CliContext, emit_json, json_option
from onestack.drivers.guest_image import build_image
from onestack.model.paths import SitePaths


@click.group()
def image() -> None:
    """The test image: a small guest built from Debian packages (ADR 0013)."""


@image.command("build")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the image and its manifest (default $ONESTACK_HOME/images).")
@click.option("--force", is_flag=True,
              help="Build again even if the image there was built from the same inputs.")
@json_option
@click.pass_obj
def build(ctx: CliContext, output: Path | None, force: bool, as_json: bool) -> None:
    """Build the test image (qcow2) from Debian packages, or reuse an identical one."""
    target = output or SitePaths(ctx.home_path, ctx.site_name).images
    built = build_image(target, force=force, say=lambda line: click.echo(line, err=True))
    if as_json:
        emit_json(built.to_dict())
        return
    state = "reused (same inputs)" if built.reused else f"built in {built.seconds:.1f}s"
    click.echo(f"{built.path}: {built.size / 2**20:.1f} MiB, {state}")
    click.echo(f"kernel {built.kernel}; manifest {built.manifest}")
    click.echo(f"log in as {built.ssh_user} with the key given at boot (config drive or "
               "metadata service); the console shows 'onestack-guest: ssh ready'")
