"""Upgrade, rollback and restore of a whole site (facade for the CLI and the API).

The journal keeps one ``upgrade`` fact: from, to, the live API colors before and
after, the backup, and the status (running, committing, done, rolled-back,
rollback-failed, restored). Every step is journaled, so ``upgrade apply`` resumes and
``rollback`` finishes after a crash at any point.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.catalog.releases import check_upgrade, load_bundle
from onestack.core.progress import Progress, SilentProgress
from onestack.core.step import Plan, Step, make_plan
from onestack.drivers import mysql
from onestack.engine.lock import site_lock
from onestack.engine.operations import (
    check_prerequisites,
    default_wheelhouse,
    gather_facts,
    host_context,
    plan_up,
    reached_hosts,
)
from onestack.engine.runner import apply_plan
from onestack.errors import OnestackError
from onestack.health import verify
from onestack.health.status import collect
from onestack.model.ports import Ports
from onestack.plans.deploy import deploy_steps
from onestack.plans.upgrade import (
    flipped,
    phase_of,
    rollback_prefix,
    rollback_steps,
    upgrade_prefix,
    upgrade_steps,
)
from onestack.services import mariadb, registry
from onestack.services.base import ServiceContext
from onestack.state.site import SiteHandle, colors_of, recorded_fact, series_of, service_context
from onestack.steps.context import HostContext
from onestack.steps.upgrade_actions import UpgradeCheckFailed


@dataclass
class UpgradeRefused(OnestackError):
    """The upgrade cannot start (or rollback cannot run); nothing was changed."""

    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass
class UpgradeRolledBack(OnestackError):
    """The upgrade failed and the site was returned to its previous release."""

    step: str
    cause: str
    release: str

    def __str__(self) -> str:
        return (f"upgrade failed at {self.step}: {self.cause}\n"
                f"rolled back: the site runs {self.release} again, with all its data")


def _state(handle: SiteHandle) -> dict[str, Any] | None:
    value = recorded_fact(handle, "upgrade")
    return dict(value) if value else None


def _save_state(handle: SiteHandle, state: dict[str, Any]) -> None:
    journal = handle.journal()
    try:
        journal.set_fact("upgrade", state)
    finally:
        journal.close()


def _contexts(handle: SiteHandle, state: dict[str, Any],
              generate: bool = True) -> tuple[ServiceContext, ServiceContext]:
    old = service_context(handle, state["from"], generate, colors=dict(state["old_colors"]))
    new = service_context(handle, state["to"], generate, colors=dict(state["new_colors"]))
    return old, new


def _backup_dir(handle: SiteHandle, backup_id: str) -> Path:
    return handle.paths.site / "backups" / backup_id


def _new_state(handle: SiteHandle, to: str) -> dict[str, Any]:
    current = series_of(handle)
    old_colors = {m.name: colors_of(handle).get(m.name, "blue") for m in registry.OPENSTACK}
    backup_id = time.strftime("%Y%m%dT%H%M%S") + f"-{current}-to-{to}"
    return {"from": current, "to": to, "old_colors": old_colors,
            "new_colors": flipped(old_colors), "backup": backup_id,
            "status": "running", "started": time.time()}


def validate_target(handle: SiteHandle, to: str) -> None:
    """Refuse unknown bundles, downgrades and skipped releases before anything changes."""
    current = series_of(handle)
    if current == to:
        raise UpgradeRefused(f"site {handle.site.name} already runs {to}")
    try:
        target = load_bundle(to)
    except OnestackError as exc:
        raise UpgradeRefused(f"cannot upgrade to {to}: {exc}") from None
    try:
        check_upgrade(load_bundle(current).version, target)
    except OnestackError as exc:
        raise UpgradeRefused(str(exc)) from None


def preflight(handle: SiteHandle, to: str) -> list[dict[str, Any]]:
    """Checks shown by ``upgrade plan``: path, health, disk space, upstream checks."""
    results = []
    try:
        validate_target(handle, to)
        results.append(_check("upgrade path", True, f"{series_of(handle)} -> {to} allowed"))
    except UpgradeRefused as exc:
        return [_check("upgrade path", False, str(exc))]
    status = collect(handle)
    bad = [c["process"] for c in status["components"] if not c["healthy"]]
    results.append(_check("all services healthy", not bad,
                          "all healthy" if not bad else f"unhealthy: {', '.join(bad)}"))
    results.append(_disk_check(handle))
    taken = _taken_ports(handle, _new_state(handle, to)["new_colors"])
    results.append(_check("ports for the new API instances", not taken,
                          "; ".join(taken) if taken else "free"))
    results += _upstream_checks(handle, to)
    return results


def _check(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"check": name, "passed": passed, "detail": detail}


def _disk_check(handle: SiteHandle) -> dict[str, Any]:
    """Room on the controller (where the dump and the new release go) for both."""
    host = handle.controller()
    data, home = handle.paths.data / "mariadb", handle.paths.home
    script = (f"du -sb {shlex.quote(str(data))} 2>/dev/null | cut -f1; "
              f"df -B1 --output=avail {shlex.quote(str(home))} | tail -n 1")
    lines = host.run(["sh", "-c", script], check=False).split()
    db_bytes = int(lines[0]) if len(lines) > 1 and lines[0].isdigit() else 0
    free = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    need = db_bytes + 1_500 * 2**20  # dump (uncompressed, worst case) + a release env
    return _check("disk space", free > need, f"{free / 2**30:.1f} GiB free, "
                  f"{need / 2**30:.1f} GiB needed (backup + {to_gib(1_500 * 2**20)} env)")


def to_gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _upstream_checks(handle: SiteHandle, to: str) -> list[dict[str, Any]]:
    """Run each service's status check with the newest code installed on the host."""
    from onestack.drivers import upgradecheck
    from onestack.errors import CommandError

    controller = handle.controller()
    new_ctx = service_context(handle, to, generate=False)
    use_new = controller.file_mode(new_ctx.venv / "bin" / "python") is not None \
        and controller.is_dir(new_ctx.etc("nova"))
    ctx = new_ctx if use_new else service_context(handle, generate=False)
    results = []
    for module in registry.OPENSTACK:
        label = f"{module.name} upgrade check ({ctx.series} code)"
        try:
            controller.run(module.upgrade_check(ctx), timeout=300)
            results.append(_check(label, True, "passed"))
        except CommandError as exc:
            warning = exc.returncode == 1
            found = upgradecheck.summary(exc.output)
            results.append(_check(label, warning, f"warnings: {found}" if warning else found))
    return results


def _hooks(handle: SiteHandle, state: dict[str, Any]) -> tuple[Any, Any]:
    def smoke_test(_: HostContext) -> None:
        result = verify.run(handle)
        failed = [c["name"] + ": " + c["detail"] for c in result["checks"] if not c["passed"]]
        if failed:
            raise UpgradeCheckFailed("smoke tests", "; ".join(failed))

    def on_commit(_: HostContext) -> None:
        _save_state(handle, {**state, "status": "committing"})

    return smoke_test, on_commit


def plan_upgrade(handle: SiteHandle, to: str) -> Plan:
    """The upgrade plan as it would run now (resuming a started upgrade if there is one)."""
    state = _state(handle)
    if not (state and state["to"] == to and state["status"] in ("running", "committing")):
        validate_target(handle, to)
        state = _new_state(handle, to)
    with reached_hosts(handle, SilentProgress()) as contexts:
        return _upgrade_plan(handle, state, contexts, generate=False)


def _upgrade_plan(handle: SiteHandle, state: dict[str, Any],
                  hctx: Mapping[str, HostContext],
                  generate: bool = True) -> Plan:
    """``generate=False`` (plan, status): only reads; secrets the new release adds show
    as empty in the plan and are generated when the upgrade is applied."""
    old, new = _contexts(handle, state, generate)
    smoke, on_commit = _hooks(handle, state)
    steps = upgrade_steps(old, new, _backup_dir(handle, state["backup"]),
                          default_wheelhouse(handle, state["to"]), smoke, on_commit)
    return make_plan("upgrade", steps, gather_facts(steps, hctx), _completed(handle, steps))


def _completed(handle: SiteHandle, steps: list[Step]) -> dict[str, str]:
    """Completed steps from the journal, without creating one where there is none."""
    if not handle.paths.state_db.exists():
        return {}
    journal = handle.journal()
    try:
        return journal.done_for(steps)
    finally:
        journal.close()


def apply_upgrade(handle: SiteHandle, to: str, progress: Progress) -> dict[str, Any]:
    """Upgrade the site to ``to``; on a failure before commit, roll back automatically."""
    check_prerequisites()
    with site_lock(handle.paths.site, handle.site.name, f"upgrade to {to}"):
        state = _state(handle)
        if state and state["to"] == to and state["status"] == "done":
            return state
        if not (state and state["to"] == to and state["status"] in ("running", "committing")):
            validate_target(handle, to)
            _refuse_if_unhealthy(handle)
            state = _new_state(handle, to)
            _refuse_if_ports_taken(handle, state)
            _forget(handle, upgrade_prefix(to), rollback_prefix(to))
            _save_state(handle, state)
        else:
            progress.message(f"resuming the upgrade {state['from']} -> {to}")
        with reached_hosts(handle, progress) as contexts:
            plan = _upgrade_plan(handle, state, contexts)
            journal = handle.journal()
            try:
                apply_plan(plan, contexts, journal, progress)
            except OnestackError as exc:
                journal.close()
                _recover(handle, state, progress, exc)
                raise  # _recover raises UpgradeRolledBack; this keeps mypy's flow happy
            journal.close()
            return _finish(handle, state, contexts[handle.site.controller.name])


def _refuse_if_unhealthy(handle: SiteHandle) -> None:
    bad = [c["process"] for c in collect(handle)["components"] if not c["healthy"]]
    if bad:
        raise UpgradeRefused(f"the site is not healthy ({', '.join(bad)}); run `onestack "
                             "status` and fix it (or `onestack up`) before upgrading")


def _taken_ports(handle: SiteHandle, new_colors: dict[str, str]) -> list[str]:
    """The new API instances' ports that something else already holds."""
    host = handle.controller()
    taken = []
    for label, port in Ports(handle.site.port_offset).backends(new_colors).items():
        holder = host.port_holder(port)
        if holder:
            taken.append(f"port {port} ({label}) is held by {holder}")
    return taken


def _refuse_if_ports_taken(handle: SiteHandle, state: dict[str, Any]) -> None:
    taken = _taken_ports(handle, state["new_colors"])
    if taken:
        raise UpgradeRefused("the new API instances cannot listen: " + "; ".join(taken)
                             + "; stop that process (or change the site's port_offset)")


def _recover(handle: SiteHandle, state: dict[str, Any], progress: Progress,
             exc: OnestackError) -> None:
    step = _failed_step(handle) or "?"
    current = _state(handle) or state
    if current["status"] == "committing":
        progress.message("the upgrade failed after its point of no return; run `onestack "
                         "upgrade apply` again to finish it, or `onestack restore`")
        raise exc
    progress.message(f"upgrade failed at {step}; rolling back to {state['from']}")
    _rollback(handle, current, progress)
    raise UpgradeRolledBack(step, str(exc), state["from"]) from exc


def _failed_step(handle: SiteHandle) -> str | None:
    journal = handle.journal()
    try:
        runs = journal.runs(1)
        steps = journal.steps_of(runs[0].id) if runs else []
    finally:
        journal.close()
    failed = [s["step"] for s in steps if s["status"] != "done"]
    return failed[-1] if failed else None


def _forget(handle: SiteHandle, *prefixes: str) -> None:
    journal = handle.journal()
    try:
        for prefix in prefixes:
            journal.forget(prefix + "/")
    finally:
        journal.close()


def _finish(handle: SiteHandle, state: dict[str, Any], hctx: HostContext) -> dict[str, Any]:
    """The site now runs the new release: record it, and adopt the new deploy plan's
    steps as done so ``up`` finds nothing to change."""
    old, new = _contexts(handle, state)
    journal = handle.journal()
    try:
        journal.set_fact("release", state["to"])
        journal.set_fact("api_colors", state["new_colors"])
        for step in deploy_steps(new, default_wheelhouse(handle, state["to"])):
            journal.record_completed(step.id, step.fingerprint(), step.host)
        done = {**state, "status": "done", "finished": time.time()}
        journal.set_fact("upgrade", done)
    finally:
        journal.close()
    return done


def rollback(handle: SiteHandle, progress: Progress) -> dict[str, Any]:
    """Return the site to the release it ran before the upgrade (before commit only)."""
    check_prerequisites()
    with site_lock(handle.paths.site, handle.site.name, "rollback"):
        state = _state(handle)
        if not state or state["status"] in ("rolled-back", "restored"):
            raise UpgradeRefused("no upgrade to roll back")
        if state["status"] in ("committing", "done"):
            raise UpgradeRefused(
                f"the upgrade to {state['to']} is committed (schemas contracted): going back "
                f"means restoring backup {state['backup']}, which loses every write since; "
                f"use `onestack restore --backup {state['backup']}`")
        return _rollback(handle, state, progress)


def _rollback(handle: SiteHandle, state: dict[str, Any], progress: Progress) -> dict[str, Any]:
    old, new = _contexts(handle, state)
    retry = state["status"] == "rollback-failed"
    if retry:
        progress.message("the last rollback failed; retrying it, restarting each service's "
                         "settle processes once it runs the old release")
    steps = rollback_steps(old, new, retry=retry)
    with reached_hosts(handle, progress) as contexts:
        return _apply_rollback(handle, state, steps, contexts, progress)


def _apply_rollback(handle: SiteHandle, state: dict[str, Any], steps: list[Step],
                    hctx: Mapping[str, HostContext], progress: Progress) -> dict[str, Any]:
    journal = handle.journal()
    try:
        plan = make_plan("rollback", steps, gather_facts(steps, hctx),
                         journal.done_for(steps))
        try:
            apply_plan(plan, hctx, journal, progress)
        except OnestackError:
            journal.set_fact("upgrade", {**state, "status": "rollback-failed"})
            progress.message("the rollback failed; fix the cause below and run `onestack "
                             "rollback` again: it resumes, and restarts the processes that "
                             "only had to report healthy")
            raise
        for prefix in (upgrade_prefix(state["to"]), rollback_prefix(state["to"])):
            journal.forget(prefix + "/")
        result = {**state, "status": "rolled-back", "finished": time.time()}
        journal.set_fact("upgrade", result)
    finally:
        journal.close()
    return result


def upgrade_status(handle: SiteHandle) -> dict[str, Any]:
    """Current phase and step, what is done, what is next."""
    state = _state(handle)
    result: dict[str, Any] = {"site": handle.site.name, "release": series_of(handle),
                              "upgrade": state}
    if not state:
        return result
    journal = handle.journal()
    try:
        runs = [r for r in journal.runs(20) if r.operation in ("upgrade", "rollback")]
        last = journal.steps_of(runs[0].id) if runs else []
    finally:
        journal.close()
    result["last_run"] = ({"operation": runs[0].operation, "status": runs[0].status,
                           "detail": runs[0].detail} if runs else None)
    if state["status"] in ("running", "committing"):
        with reached_hosts(handle, SilentProgress()) as contexts:
            plan = _upgrade_plan(handle, state, contexts, generate=False)
        pending = [s.id for s in plan.changes]
        result["phase"] = phase_of(pending[0]) if pending else "commit"
        result["done"] = len(plan.steps) - len(pending)
        result["total"] = len(plan.steps)
        result["next"] = pending[:5]
    failed = [s for s in last if s["status"] != "done"]
    result["stopped_at"] = failed[-1]["step"] if failed else None
    result["what_next"] = _what_next(state)
    return result


def _what_next(state: dict[str, Any]) -> str | None:
    """The command that moves the site on from this upgrade state, and why."""
    to = state["to"]
    return {
        "running": f"`onestack upgrade apply --to {to}` resumes it; `onestack rollback` "
                   "returns to " + state["from"],
        "committing": f"`onestack upgrade apply --to {to}` finishes it (past the point of no "
                      f"return; `onestack restore --backup {state['backup']}` loses writes)",
        "rollback-failed": "fix what the rollback reported, then `onestack rollback` again: "
                           "it resumes and restarts the processes it only waited for",
    }.get(state["status"])


def _ensure_database_running(handle: SiteHandle, ctx: ServiceContext,
                             progress: Progress) -> None:
    """A stopped site (after `down`, or a reboot) gets its MariaDB started to load into."""
    from onestack.steps.actions import StartProgram

    sup = handle.controller_supervisor()
    if not sup.is_running():
        sup.start_daemon()
    if sup.state("mariadb") == "RUNNING":
        return
    progress.message("starting mariadb to load the backup into")
    sup.update(only=("mariadb",))
    StartProgram("mariadb", "", tuple(c.probe for c in mariadb.checks(ctx))).apply(
        host_context(handle, progress))


def list_backups(handle: SiteHandle) -> list[dict[str, Any]]:
    """The database backups, each with its ``backup.json``: on the controller, where
    they were made (read through its connection, ADR 0027)."""
    import json

    host, root = handle.controller(), handle.paths.site / "backups"
    backups = []
    for name in host.list_dir(root):
        text = host.read_file(root / name / "backup.json")
        if text:
            backups.append({"id": name, **json.loads(text)})
    return backups


def restore(handle: SiteHandle, backup_id: str, progress: Progress) -> dict[str, Any]:
    """Restore the databases and release of a backup. Loses writes made since."""
    check_prerequisites()
    backup = next((b for b in list_backups(handle) if b["id"] == backup_id), None)
    if backup is None:
        raise UpgradeRefused(f"no backup {backup_id} (see `onestack upgrade backups`)")
    colors = dict(kv.split("=") for kv in backup.get("colors", "").split(",") if "=" in kv)
    with site_lock(handle.paths.site, handle.site.name, "restore"):
        sup = handle.controller_supervisor()
        openstack = [name for name in sup.states()
                     if not any(name == p.name for m in registry.INFRASTRUCTURE
                                for p in m.programs(service_context(handle, generate=False)))]
        if openstack:
            progress.message(f"stopping {', '.join(openstack)}")
            sup.stop_many(openstack)
        ctx = service_context(handle, generate=False)
        _ensure_database_running(handle, ctx, progress)
        progress.message(f"loading databases from backup {backup_id}")
        mysql.restore_all(handle.controller(), mariadb.socket_path(ctx),
                          _backup_dir(handle, backup_id) / backup["file"])
        journal = handle.journal()
        try:
            journal.set_fact("release", backup["from"])
            journal.set_fact("api_colors", colors)
            journal.forget("")
            # The databases come from a site that ran this release: its migrations,
            # bootstrap and cell setup are done (a newer release's *expand* may be in
            # them too, which the older migration tools would not recognise).
            restored = service_context(handle, backup["from"], colors=colors)
            for step in deploy_steps(restored, None):
                if step.action.kind in ("command", "call"):
                    journal.record_completed(step.id, step.fingerprint(), step.host)
            state = _state(handle) or {}
            journal.set_fact("upgrade", {**state, "status": "restored",
                                         "restored_backup": backup_id})
        finally:
            journal.close()
    from onestack.engine.operations import up

    up(handle, progress)
    return {"restored": backup_id, "release": backup["from"]}


__all__ = ["apply_upgrade", "plan_upgrade", "preflight", "rollback", "restore",
           "upgrade_status", "list_backups", "plan_up"]
