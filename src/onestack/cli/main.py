"""The ``onestack`` command: a thin front-end over the library."""

from __future__ import annotations

import sys

import click

from onestack.cli import common, hardware, lab, release, site, upgrade
from onestack.errors import OnestackError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--site", "site_name", default="lab", show_default=True, envvar="ONESTACK_SITE",
              help="Name of the site to act on.")
@click.option("--home", default=None, envvar="ONESTACK_HOME",
              help="onestack state root (default /var/lib/onestack).")
@click.pass_context
def cli(ctx: click.Context, site_name: str, home: str | None) -> None:
    """onestack: a turnkey OpenStack cloud, upgraded and rolled back as one unit."""
    ctx.obj = common.CliContext(site_name=site_name, home=home)


for command in [*site.COMMANDS, *upgrade.COMMANDS]:
    cli.add_command(command)
cli.add_command(release.release)
cli.add_command(hardware.hardware)
cli.add_command(lab.lab)


def main() -> None:
    """Entry point: run the CLI, turning onestack errors into messages and exit codes."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OnestackError as exc:
        common.report_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; run the same command again to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
