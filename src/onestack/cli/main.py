"""The ``onestack`` command: a thin front-end over the library."""

from __future__ import annotations

import importlib
import sys

import click

from onestack.cli import common, hosts, release, site, upgrade
from onestack.errors import OnestackError

# Command groups imported only when used: the hardware group pulls in sushy and
# requests (~1 s), which `set-secret` or `status` must not pay for.
LAZY_GROUPS = {"hardware": ("onestack.cli.hardware", "hardware"),
               "image": ("onestack.cli.image", "image"),
               "lab": ("onestack.cli.lab", "lab")}


class LazyGroup(click.Group):
    """A click group whose heavier subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_GROUPS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_GROUPS and cmd_name not in self.commands:
            module, attribute = LAZY_GROUPS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--site", "site_name", default="lab", show_default=True, envvar="ONESTACK_SITE",
              help="Name of the site to act on (default: the name in --site-file, else lab).")
@click.option("--home", default=None, envvar="ONESTACK_HOME",
              help="onestack state root (default /var/lib/onestack).")
@click.pass_context
def cli(ctx: click.Context, site_name: str, home: str | None) -> None:
    """onestack: a turnkey OpenStack cloud, upgraded and rolled back as one unit."""
    given = ctx.get_parameter_source("site_name") != click.core.ParameterSource.DEFAULT
    common.chosen_home(home)  # refused here, for every command: an empty one is a mistake
    ctx.obj = common.CliContext(site_name=common.check_site_option(site_name), home=home,
                                site_given=given)


for command in [*site.COMMANDS, *upgrade.COMMANDS]:
    cli.add_command(command)
cli.add_command(release.release)
cli.add_command(hosts.host)


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
    except Exception as exc:  # the last line of defence: never a traceback
        common.report_crash(exc)
        sys.exit(70)  # EX_SOFTWARE


if __name__ == "__main__":
    main()
