"""``onestack hardware``: discovery, certification, firmware, power."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from onestack import hardware as hw
from onestack.cli.common import SECONDS, WORKERS, emit_json, json_option, open_site
from onestack.drivers.redfish import BmcLogin
from onestack.drivers.secrets import SecretStore
from onestack.errors import ConfirmationNeeded
from onestack.hardware.errors import NoInventoryError
from onestack.model.hardware import NodeInventory
from onestack.model.site import Site

PROGRESS_FROM = 10  # nodes: show a progress indicator from this many


@dataclass
class HardwareContext:
    """The site, its secrets and its inventory store, as the commands need them."""

    site: Site
    secrets: SecretStore
    store: hw.InventoryStore

    def logins(self, names: Sequence[str]) -> tuple[list[BmcLogin], dict[str, str]]:
        """Logins for the named nodes, and why each of the others has none.

        A node without credentials does not stop the others: the caller acts on
        the nodes it can and reports the rest as not attempted.
        """
        logins, missing = [], {}
        secrets = hw.SecretsSnapshot(self.secrets)
        for node in hw.select_nodes(self.site, list(names)):
            login = hw.login_for(node, secrets, hw.Timeouts())
            if isinstance(login, NodeInventory):
                missing[node.name] = f"not attempted: {login.reason or 'no credentials'}"
            else:
                logins.append(login)
        return logins, missing


def _context(ctx: click.Context, site_file: str | None) -> HardwareContext:
    """The site named by ``--site-file`` (else ``--site``): its secrets and its state.

    Hardware is discovered before a site is deployed, so a site file may name a new
    site; without one, the site must exist."""
    path = Path(site_file) if site_file else None
    handle = open_site(ctx.find_root().obj, path, must_exist=path is None)
    if handle.site_file is None:
        raise click.ClickException(f"no site file at {handle.paths.site_file} "
                                   "(use --site-file PATH)")
    return HardwareContext(handle.site, handle.secrets, hw.InventoryStore(handle.paths.state_db))


def _exit_failing(summary: str) -> None:
    """End with status 1 after the full output, saying why on stderr.

    ``sys.exit`` rather than ``ctx.exit``: the entry point runs click in
    non-standalone mode, where ``ctx.exit`` codes are returned and lost.
    """
    click.echo(summary, err=True)
    sys.exit(1)


def site_file_option(func: Any) -> Any:
    return click.option("--site-file", type=click.Path(dir_okay=False), default=None,
                        help="Site file to use instead of the site's own site.yaml.")(func)


class StderrProgress:
    """A one-line progress indicator on stderr (redrawn on a terminal)."""

    def __init__(self, verb: str, total: int) -> None:
        self.verb, self.total = verb, total
        self.tty = sys.stderr.isatty()
        self.step = max(1, total // 10)

    def __call__(self, done: int, total: int, node: str) -> None:
        if self.tty:
            click.echo(f"\r{self.verb}: {done}/{total} nodes", err=True, nl=done == total)
        elif done % self.step == 0 or done == total:
            click.echo(f"{self.verb}: {done}/{total} nodes", err=True)


def _progress(verb: str, total: int) -> StderrProgress | None:
    return StderrProgress(verb, total) if total >= PROGRESS_FROM else None


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    """Plain aligned columns, one row per line."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
             for row in [headers, *rows]]
    return "\n".join(lines)


@click.group()
def hardware() -> None:
    """Certified hardware: Redfish discovery, HCL certification, firmware, power."""


# -- discover -----------------------------------------------------------------


def _inventory_row(inv: NodeInventory) -> list[str]:
    note = inv.reason or "; ".join(inv.problems)
    if not inv.status.has_data:
        return [inv.node, inv.status.value, *["-"] * 8, f"{inv.bmc}: {note}"]
    gib = sum(d.capacity_bytes or 0 for d in inv.drives) / 1024**3
    return [inv.node, inv.status.value, f"{inv.manufacturer or '-'} {inv.model or ''}".strip(),
            inv.serial or "-", f"{inv.sockets}/{inv.cores}",
            f"{inv.memory_gib:g}" if inv.memory_gib is not None else "-",
            str(len(inv.nics)), f"{len(inv.drives)} ({gib:,.0f} GiB)",
            inv.power_state or "-", inv.health or "-", note]


def show_inventories(inventories: list[NodeInventory]) -> None:
    headers = ["NODE", "STATUS", "MODEL", "SERIAL", "CPU S/C", "MEM GiB", "NICS", "DRIVES",
               "POWER", "HEALTH", "NOTE"]
    click.echo(render_table(headers, [_inventory_row(i) for i in inventories]))


@hardware.command()
@click.argument("nodes", nargs=-1)
@site_file_option
@json_option
@click.option("--workers", default=256, show_default=True, type=WORKERS,
              help="BMCs read at once.")
@click.option("--timeout", "request_timeout", default=10.0, show_default=True, type=SECONDS,
              help="Seconds to wait for each BMC answer.")
@click.option("--node-deadline", default=60.0, show_default=True, type=SECONDS,
              help="Seconds after which a node's remaining reads are skipped (partial).")
@click.pass_context
def discover(ctx: click.Context, nodes: tuple[str, ...], site_file: str | None, as_json: bool,
             workers: int, request_timeout: float, node_deadline: float) -> None:
    """Read every node's hardware through its BMC and store the inventory."""
    hc = _context(ctx, site_file)
    selected = hw.select_nodes(hc.site, list(nodes))
    timeouts = hw.Timeouts(request_s=request_timeout, connect_s=min(5.0, request_timeout),
                           node_deadline_s=node_deadline)
    found = hw.discover_nodes(selected, hc.secrets, timeouts, workers,
                              _progress("discovering", len(selected)))
    hc.store.save(found)
    if as_json:
        emit_json([i.model_dump(mode="json") for i in found])
    else:
        show_inventories(found)
    failed = [i for i in found if not i.status.has_data]
    if failed:
        _exit_failing(f"{len(failed)} of {len(found)} nodes could not be read")


@hardware.command()
@click.argument("nodes", nargs=-1)
@site_file_option
@json_option
@click.pass_context
def inventory(ctx: click.Context, nodes: tuple[str, ...], site_file: str | None,
              as_json: bool) -> None:
    """Show the stored inventory (from the last discovery)."""
    hc = _context(ctx, site_file)
    found = _stored(hc, nodes)
    if as_json:
        emit_json([i.model_dump(mode="json") for i in found])
    else:
        show_inventories(found)


def _stored(hc: HardwareContext, names: Sequence[str]) -> list[NodeInventory]:
    """Stored inventories of the named nodes, in site-file order."""
    wanted = [n.name for n in hw.select_nodes(hc.site, list(names))]
    found = {i.node: i for i in hc.store.load(wanted)}
    if not found:
        raise NoInventoryError(hc.site.name)
    return [found[name] for name in wanted if name in found]


# -- certify ------------------------------------------------------------------


def _reason_lines(cert: hw.Certification) -> list[str]:
    return [f"{r.code}: {r.message}" for r in cert.reasons] or ["-"]


def show_certifications(certs: list[hw.Certification]) -> None:
    rows = []
    for cert in certs:
        lines = _reason_lines(cert)
        rows.append([cert.node, "yes" if cert.certified else "NO", cert.role or "-",
                     ",".join(cert.eligible_roles) or "-", lines[0]])
        rows += [["", "", "", "", line] for line in lines[1:]]
    click.echo(render_table(["NODE", "CERTIFIED", "ROLE", "ELIGIBLE FOR", "REASONS"], rows))


@hardware.command()
@click.argument("nodes", nargs=-1)
@site_file_option
@json_option
@click.option("--release", default=None, help="Release bundle whose baseline to use "
              "(default: the site's).")
@click.option("--discover", "rediscover", is_flag=True, help="Discover the nodes first.")
@click.pass_context
def certify(ctx: click.Context, nodes: tuple[str, ...], site_file: str | None, as_json: bool,
            release: str | None, rediscover: bool) -> None:
    """Certify nodes against the HCL: verdict, every reason, and eligible roles."""
    hc = _context(ctx, site_file)
    if rediscover:
        selected = hw.select_nodes(hc.site, list(nodes))
        hc.store.save(hw.discover_nodes(selected, hc.secrets,
                                        progress=_progress("discovering", len(selected))))
    hcl = hw.load_hcl()
    roles = {n.name: n.role for n in hc.site.nodes}
    certs = hw.certify_fleet(_stored(hc, nodes), hcl, hcl.baseline(release or hc.site.release),
                             roles)
    if as_json:
        emit_json([c.model_dump(mode="json") for c in certs])
    else:
        show_certifications(certs)
    refused = [c for c in certs if not c.certified]
    if refused:
        _exit_failing(f"{len(refused)} of {len(certs)} nodes are not certified")


# -- firmware -----------------------------------------------------------------


@hardware.group()
def firmware() -> None:
    """Firmware against the release bundle's baseline."""


def _plan(hc: HardwareContext, nodes: Sequence[str], release: str | None
          ) -> list[hw.FirmwareChange]:
    baseline = hw.load_hcl().baseline(release or hc.site.release)
    return hw.plan_firmware(_stored(hc, nodes), baseline)


def show_plan(changes: list[hw.FirmwareChange]) -> None:
    if not changes:
        click.echo("every node runs the baseline firmware")
        return
    rows = [[c.node, c.component, c.current or "?", c.expected,
             "yes" if c.below_minimum else "no", c.action.value, c.note] for c in changes]
    click.echo(render_table(["NODE", "COMPONENT", "CURRENT", "BASELINE", "BELOW MIN", "ACTION",
                             "NOTE"], rows))


release_option = click.option("--release", default=None,
                              help="Release bundle whose baseline to use (default: the site's).")


@firmware.command("plan")
@click.argument("nodes", nargs=-1)
@site_file_option
@json_option
@release_option
@click.pass_context
def firmware_plan(ctx: click.Context, nodes: tuple[str, ...], site_file: str | None,
                  as_json: bool, release: str | None) -> None:
    """Show which components on which nodes differ from the baseline."""
    changes = _plan(_context(ctx, site_file), nodes, release)
    if as_json:
        emit_json([c.model_dump(mode="json") for c in changes])
    else:
        show_plan(changes)


@firmware.command("apply")
@click.argument("nodes", nargs=-1)
@site_file_option
@json_option
@release_option
@click.option("--on-failure", type=click.Choice(["stop", "continue"]), default="stop",
              show_default=True, help="After a failed update: stop the plan or go on.")
@click.option("--task-timeout", default=1800.0, show_default=True, type=SECONDS,
              help="Seconds to wait for one update task.")
@click.option("--workers", default=8, show_default=True, type=WORKERS,
              help="Nodes updated at once.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def firmware_apply(ctx: click.Context, nodes: tuple[str, ...], site_file: str | None,
                   as_json: bool, release: str | None, on_failure: str, task_timeout: float,
                   workers: int, yes: bool) -> None:
    """Update firmware to the baseline through each BMC's UpdateService."""
    hc = _context(ctx, site_file)
    changes = [c for c in _plan(hc, nodes, release) if c.action is hw.FirmwareAction.UPDATE]
    if not changes:
        click.echo("nothing to update", err=as_json)
        if as_json:
            emit_json([])
        return
    if not as_json:
        show_plan(changes)
    if not yes:
        _confirm(f"update {len(changes)} component(s)?", "firmware apply")
    found, missing = hc.logins(sorted({c.node for c in changes}))
    logins = {lg.node.name: lg for lg in found}
    outcomes = hw.apply_firmware([c for c in changes if c.node in logins], logins, hc.store,
                                 hw.OnFailure(on_failure), task_timeout, workers=workers,
                                 progress=_progress("updating", len(logins)))
    outcomes += [hw.FirmwareOutcome(node=c.node, component=c.component, status="skipped",
                                    detail=missing[c.node]) for c in changes if c.node in missing]
    _after_firmware(hc, outcomes, as_json)


def _confirm(question: str, action: str) -> None:
    """Ask on the terminal; without one, refuse (the operator must say --yes)."""
    if not sys.stdin.isatty():
        raise ConfirmationNeeded(action)
    click.confirm(question, abort=True, err=True)


def _after_firmware(hc: HardwareContext,
                    outcomes: list[hw.FirmwareOutcome], as_json: bool) -> None:
    updated = sorted({o.node for o in outcomes if o.status == "updated"})
    if updated:  # keep the stored inventory in step with what the BMCs now report
        nodes = hw.select_nodes(hc.site, updated)
        hc.store.save([i for i in hw.discover_nodes(nodes, hc.secrets) if i.status.has_data])
    if as_json:
        emit_json([o.model_dump(mode="json") for o in outcomes])
    else:
        rows = [[o.node, o.component, o.status, o.version_after or "-", o.detail]
                for o in outcomes]
        click.echo(render_table(["NODE", "COMPONENT", "RESULT", "VERSION NOW", "DETAIL"], rows))
    bad = [o for o in outcomes if o.status != "updated"]
    if bad:
        _exit_failing(f"{len(bad)} of {len(outcomes)} firmware updates did not succeed")


# -- power and boot -------------------------------------------------------------


def _not_attempted(missing: dict[str, str], action: str) -> list[hw.ActionOutcome]:
    return [hw.ActionOutcome(node=node, action=action, ok=False, detail=why)
            for node, why in missing.items()]


def _report(hc: HardwareContext, outcomes: list[hw.ActionOutcome], as_json: bool) -> None:
    order = {n.name: i for i, n in enumerate(hc.site.nodes)}
    outcomes = sorted(outcomes, key=lambda o: order.get(o.node, len(order)))
    if as_json:
        emit_json([o.model_dump(mode="json") for o in outcomes])
    else:
        rows = [[o.node, o.action, "ok" if o.ok else "FAILED", o.state or "-", o.detail]
                for o in outcomes]
        click.echo(render_table(["NODE", "ACTION", "RESULT", "STATE", "DETAIL"], rows))
    bad = [o for o in outcomes if not o.ok]
    if bad:
        _exit_failing(f"{len(bad)} of {len(outcomes)} nodes did not reach the wanted state")


@hardware.command()
@click.argument("action", type=click.Choice(["on", "off", "shutdown", "cycle"]))
@click.argument("nodes", nargs=-1, required=True)
@site_file_option
@json_option
@click.option("--timeout", default=120.0, show_default=True, type=SECONDS,
              help="Seconds to wait for the new power state to show.")
@click.pass_context
def power(ctx: click.Context, action: str, nodes: tuple[str, ...], site_file: str | None,
          as_json: bool, timeout: float) -> None:
    """Power nodes on, off (forced), shutdown (graceful) or cycle; confirm the state."""
    hc = _context(ctx, site_file)
    logins, missing = hc.logins(list(nodes))
    done = hw.power_nodes(logins, action, timeout,
                          progress=_progress(f"power {action}", len(logins)))
    _report(hc, done + _not_attempted(missing, action), as_json)


@hardware.command()
@click.argument("device", type=click.Choice(["pxe", "disk", "cd"]))
@click.argument("nodes", nargs=-1, required=True)
@site_file_option
@json_option
@click.option("--image", default=None, help="ISO URL to insert as virtual media (with cd).")
@click.pass_context
def boot(ctx: click.Context, device: str, nodes: tuple[str, ...], site_file: str | None,
         as_json: bool, image: str | None) -> None:
    """Boot nodes once from PXE, disk or (virtual) CD; confirm the override."""
    if image and device != "cd":
        raise click.UsageError("--image goes with the cd device")
    hc = _context(ctx, site_file)
    logins, missing = hc.logins(list(nodes))
    done = hw.set_boot_once(logins, device, image)
    _report(hc, done + _not_attempted(missing, f"boot {device}"), as_json)
