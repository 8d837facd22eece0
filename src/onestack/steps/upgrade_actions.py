"""Actions only an upgrade or a rollback takes: backups, gates, blue/green swaps."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onestack.core.digest import digest
from onestack.drivers import mysql, upgradecheck
from onestack.drivers.haproxy_admin import HaproxyAdmin
from onestack.drivers.probes import Probe, wait_until_healthy
from onestack.errors import CommandError, OnestackError, PortInUseError, ServiceStartError
from onestack.steps.actions import remove_leftovers, where
from onestack.steps.context import HostContext


@dataclass
class UpgradeCheckFailed(OnestackError):
    """A pre-upgrade check or a health gate failed: the upgrade must not go on."""

    check: str
    reason: str

    def __str__(self) -> str:
        return f"check {self.check} failed: {self.reason}"


@dataclass(frozen=True)
class BackupDatabases:
    """A consistent dump of every database, with what it belongs to, before any change."""

    socket_path: Path
    backup_dir: Path
    meta: tuple[tuple[str, str], ...]
    databases: tuple[str, ...] = ()
    kind: str = "backup"

    @property
    def dump(self) -> Path:
        return self.backup_dir / "databases.sql.gz"

    def fingerprint(self) -> str:
        return digest(f"{self.backup_dir}|{self.meta}")

    def probe(self, ctx: HostContext) -> Any:
        return (ctx.host.file_mode(self.backup_dir / "backup.json") is not None
                and ctx.host.file_mode(self.dump) is not None)

    def needed(self, fact: Any, done: str | None) -> bool:
        return not fact

    def apply(self, ctx: HostContext) -> None:
        ctx.host.ensure_dir(self.backup_dir, mode=0o700)
        size = mysql.dump_all(ctx.host, self.socket_path, self.dump, list(self.databases))
        info = {**dict(self.meta), "created": time.time(), "size": size,
                "databases": list(self.databases),
                "file": self.dump.name}
        ctx.host.write_file(self.backup_dir / "backup.json", json.dumps(info, indent=2),
                            mode=0o600)
        ctx.progress.message(f"backup {self.backup_dir.name}: {size / 2**20:.1f} MiB")


@dataclass(frozen=True)
class UpgradeCheck:
    """An upstream status command: exit 0 passes, 1 is a warning, anything else blocks."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    kind: str = "check"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.name, self.argv]))

    def probe(self, ctx: HostContext) -> Any:
        return None

    def needed(self, fact: Any, done: str | None) -> bool:
        return done is None

    def apply(self, ctx: HostContext) -> None:
        try:
            ctx.host.run(self.argv, env=dict(self.env), timeout=300)
        except CommandError as exc:
            found = upgradecheck.summary(exc.output, tail=6)
            if exc.returncode == 1:
                ctx.progress.message(f"{self.name}: warnings, not blocking: {found}")
                return
            raise UpgradeCheckFailed(self.name, f"exit {exc.returncode}: {found}") from None


@dataclass(frozen=True)
class SwapApi:
    """Blue/green: start the other instance, give it traffic, drain this one.

    The drained instance stops, unless ``keep_warm``: an upgrade leaves the older
    release's instance running without traffic until commit, so that a rollback
    moves traffic back to an instance that is already up instead of starting one.

    ``before_stop`` runs once the drained instance has no traffic, before it stops
    (neutron's API leaves its OVN hash ring).

    With ``between``, there is a gap instead of an overlap: this instance drains
    first, ``between`` runs while no instance takes traffic (HAProxy holds new
    requests, services.haproxy.HOLD_MS), then the other takes it. If ``between``
    fails or the other does not come up, this instance takes traffic again.
    ``between`` must not call the API itself: its request would wait for the gap.
    """

    service: str
    from_program: str
    to_program: str
    from_server: str
    to_server: str
    to_probe: Probe
    haproxy_socket: Path
    to_port: int
    keep_warm: bool = False
    between: Callable[[HostContext], None] | None = field(default=None, compare=False,
                                                         repr=False)
    before_stop: Callable[[HostContext], None] | None = field(default=None, compare=False,
                                                             repr=False)
    start_timeout: float = 180
    kind: str = "swap"
    config_digest: str = field(default="")

    @property
    def backend(self) -> str:
        return self.service

    def fingerprint(self) -> str:
        return digest(f"{self.from_program}>{self.to_program}|{self.config_digest}")

    def probe(self, ctx: HostContext) -> Any:
        try:
            stats = HaproxyAdmin(self.haproxy_socket, ctx.host).server_stats(self.backend)
        except OnestackError:
            return None
        return [ctx.supervisor.state(self.to_program),
                stats.get(self.to_server, {}).get("status", "?")[:2],
                stats.get(self.from_server, {}).get("status", "?")[:5],
                ctx.supervisor.state(self.from_program)]

    def needed(self, fact: Any, done: str | None) -> bool:
        return done is None or fact is None or fact[0] != "RUNNING" or fact[1] != "UP" \
            or fact[2] != "MAINT"

    def apply(self, ctx: HostContext) -> None:
        admin = HaproxyAdmin(self.haproxy_socket, ctx.host)
        self._start_new(ctx)
        if self.between is None:
            self._take_traffic(admin)
            self._drain(ctx, admin)
        else:
            self._drain(ctx, admin)
            try:
                self.between(ctx)
                self._take_traffic(admin)
            except BaseException:
                admin.set_state(self.backend, self.from_server, "ready")
                raise
        admin.set_state(self.backend, self.from_server, "maint")
        if self.keep_warm:
            ctx.progress.message(f"{self.from_program} stays up without traffic until commit")
            return
        if self.before_stop is not None:
            self.before_stop(ctx)
        ctx.supervisor.stop(self.from_program)

    def _take_traffic(self, admin: HaproxyAdmin) -> None:
        admin.set_state(self.backend, self.to_server, "ready")
        admin.wait_up(self.backend, self.to_server, timeout=30)

    def _drain(self, ctx: HostContext, admin: HaproxyAdmin) -> None:
        admin.set_state(self.backend, self.from_server, "drain")
        left = admin.wait_drained(self.backend, self.from_server, timeout=60)
        if left:
            ctx.progress.message(f"{self.from_server}: {left} sessions still open after 60s")

    def _start_new(self, ctx: HostContext) -> None:
        sup = ctx.supervisor
        if sup.state(self.to_program) != "RUNNING":
            self._refuse_taken_port(ctx)
            sup.start(self.to_program)
        elif not self.to_probe.check()[0]:
            # Running but unhealthy (e.g. left over from an interrupted run, with an
            # init failure cached): a fresh start is the only way to a clean instance.
            sup.restart(self.to_program)

        def gave_up() -> bool:
            return sup.state(self.to_program) in ("FATAL", "STOPPED", "EXITED")

        ok, detail = wait_until_healthy(self.to_probe, self.start_timeout, stop_if=gave_up)
        if not ok:
            raise ServiceStartError(self.to_program, f"not healthy ({detail})",
                                    sup.log_tail(self.to_program))

    def _refuse_taken_port(self, ctx: HostContext) -> None:
        holder = ctx.host.port_holder(self.to_port)
        if holder:
            raise PortInUseError(ctx.host.name, self.to_port, f"{holder} (needed for "
                                 f"{self.to_program})")


@dataclass(frozen=True)
class RunWithDefinition:
    """A program running with exactly this command (release): restarted only if not."""

    program: str
    command: str
    timeout: float = 60
    kind: str = "process"

    def fingerprint(self) -> str:
        return digest(f"{self.program}|{self.command}")

    def recheck(self, ctx: HostContext) -> bool:
        """Skipped by the plan, but loading definitions stopped or changed it since."""
        return self.needed(self.probe(ctx), None)

    def probe(self, ctx: HostContext) -> Any:
        return [ctx.supervisor.state(self.program), ctx.supervisor.loaded_command(self.program)]

    def needed(self, fact: Any, done: str | None) -> bool:
        return bool(fact != ["RUNNING", self.command])

    def apply(self, ctx: HostContext) -> None:
        sup = ctx.supervisor
        if sup.state(self.program) == "RUNNING":
            sup.restart(self.program)
        else:
            remove_leftovers(ctx, self.program)
            sup.start(self.program)
        deadline = time.monotonic() + self.timeout
        while sup.state(self.program) != "RUNNING":
            if time.monotonic() > deadline or sup.state(self.program) == "FATAL":
                raise ServiceStartError(self.program, f"state {sup.state(self.program)}",
                                        sup.log_tail(self.program))
            time.sleep(0.2)


@dataclass(frozen=True)
class HealthGate:
    """Every given probe answers; a failing gate stops the upgrade (and rolls it back)."""

    name: str
    probes: tuple[tuple[str, Probe], ...]
    programs: tuple[str, ...]
    timeout: float = 60
    kind: str = "gate"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.name, [n for n, _ in self.probes], self.programs]))

    def probe(self, ctx: HostContext) -> Any:
        return None

    def needed(self, fact: Any, done: str | None) -> bool:
        return done is None

    def apply(self, ctx: HostContext) -> None:
        states = ctx.supervisor.states()
        down = [p for p in self.programs if states.get(p, {}).get("statename") != "RUNNING"]
        if down:
            raise UpgradeCheckFailed(self.name, f"not running: {', '.join(down)}")
        for label, probe in self.probes:
            ok, detail = wait_until_healthy(where(probe, ctx), self.timeout)
            if not ok:
                raise UpgradeCheckFailed(self.name, f"{label}: {detail}")


@dataclass(frozen=True)
class RetireRelease:
    """After commit, nothing of the older release stays in the site's running setup:
    the programs the new release does not run (the old colour's API instances, idle
    since their swap: loading their removed definitions stops them) and the older
    release's configuration.

    The older release's environment under ``releases/`` stays: it is immutable, other
    sites of this home may run it, and ``restore`` needs it to go back quickly."""

    series: str
    config_dir: Path
    definitions: Path
    keep: tuple[str, ...]
    kind: str = "retire"

    def fingerprint(self) -> str:
        return digest(f"{self.series}|{self.config_dir}|{','.join(self.keep)}")

    def _leftovers(self, ctx: HostContext) -> list[str]:
        files = {n.removesuffix(".conf") for n in ctx.host.list_dir(self.definitions, "*.conf")}
        loaded = set(ctx.supervisor.states())
        return sorted((files | loaded) - set(self.keep))

    def probe(self, ctx: HostContext) -> Any:
        return [bool(ctx.host.list_dir(self.config_dir.parent, self.config_dir.name)),
                self._leftovers(ctx)]

    def needed(self, fact: Any, done: str | None) -> bool:
        return done is None or fact is None or bool(fact[0]) or bool(fact[1])

    def apply(self, ctx: HostContext) -> None:
        leftovers = self._leftovers(ctx)
        for name in leftovers:
            ctx.host.remove(self.definitions / f"{name}.conf")
        if leftovers:
            ctx.supervisor.update(only=tuple(leftovers))
            ctx.progress.message(f"removed program definitions: {', '.join(leftovers)}")
        if ctx.host.remove(self.config_dir):
            ctx.progress.message(f"removed {self.series} configuration {self.config_dir}")

