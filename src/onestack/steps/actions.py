"""The kinds of change a step can make. Each reads facts, decides purely, then acts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from onestack.core.digest import digest
from onestack.drivers import apt, processes
from onestack.drivers.host import LocalHost, chown_spec
from onestack.drivers.probes import AllOf, Probe, wait_until_healthy
from onestack.drivers.supervisor import program_marker
from onestack.errors import CommandError, ServiceStartError
from onestack.steps.context import HostContext


@dataclass(frozen=True)
class WriteFile:
    """A file with exact content and mode (configuration, unit definitions)."""

    path: Path
    content: str = field(repr=False)
    mode: int = 0o644
    owner: str | None = None
    kind: str = "file"

    def fingerprint(self) -> str:
        return digest(f"{self.path}|{self.mode:o}|{self.owner}|{digest(self.content)}")

    def probe(self, ctx: HostContext) -> Any:
        fact = [ctx.host.file_digest(self.path), ctx.host.file_mode(self.path)]
        return fact + [ctx.host.file_owner(self.path)] if self.owner else fact

    def needed(self, fact: Any, done: str | None) -> bool:
        if not isinstance(fact, list) or fact[:2] != [digest(self.content), self.mode]:
            return True
        if self.owner is None:
            return False
        return not owner_matches(fact[2] if len(fact) > 2 else None, self.owner)

    def apply(self, ctx: HostContext) -> None:
        ctx.host.write_file(self.path, self.content, mode=self.mode, owner=self.owner)
        if self.owner:  # an unchanged file written before it had this owner
            ctx.host.run(["chown", chown_spec(self.owner), str(self.path)])


@dataclass(frozen=True)
class WriteOperatorFile:
    """A file for the operator on the deploy host (the machine onestack runs on),
    whatever host its step is shown on: clients' credentials (clouds.yaml). ADR 0027."""

    path: Path
    content: str = field(repr=False)
    mode: int = 0o600
    kind: str = "file"

    def fingerprint(self) -> str:
        return digest(f"{self.path}|{self.mode:o}|None|{digest(self.content)}")

    def probe(self, ctx: HostContext) -> Any:
        here = LocalHost()
        return [here.file_digest(self.path), here.file_mode(self.path)]

    def needed(self, fact: Any, done: str | None) -> bool:
        return not isinstance(fact, list) or fact != [digest(self.content), self.mode]

    def apply(self, ctx: HostContext) -> None:
        LocalHost().write_file(self.path, self.content, mode=self.mode)


def owner_matches(actual: str | None, wanted: str) -> bool:
    """Whether ``user:group`` satisfies ``user`` (any group) or ``user:group``."""
    if actual is None:
        return False
    user, _, group = wanted.partition(":")
    have_user, _, have_group = actual.partition(":")
    return have_user == user and (not group or have_group == group)


@dataclass(frozen=True)
class EnsureDirs:
    """Directories that must exist with an owner and mode."""

    dirs: tuple[tuple[Path, str | None, int], ...]
    # An owner is given to what is already inside too, unless not ``recursive`` (a
    # folder whose files change hands on their own, e.g. guests' disks).
    recursive: bool = True
    kind: str = "dirs"

    def fingerprint(self) -> str:
        shallow = [] if self.recursive else ["shallow"]
        return digest(json.dumps([[str(p), o, m] for p, o, m in self.dirs] + shallow))

    def probe(self, ctx: HostContext) -> Any:
        return all(ctx.host.is_dir(p) for p, _, _ in self.dirs)

    def needed(self, fact: Any, done: str | None) -> bool:
        return not fact or done is None

    def apply(self, ctx: HostContext) -> None:
        for path, owner, mode in self.dirs:
            ctx.host.ensure_dir(path, mode=mode, owner=owner)
            if owner and self.recursive:  # what is already inside (made before the
                # service had its user)
                ctx.host.run(["chown", "-R", chown_spec(owner),
                              str(path)])


@dataclass(frozen=True)
class KeepFolderClosed:
    """A folder of the host's that a program would create wide open if it were missing
    (``/run/netns``: neutron's privileged helper runs with umask 0, so it became 0777
    and any local user could plant a namespace there): made first, ``root:root`` with
    ``mode``, and closed again by the next ``up`` if anything opened it (``/run`` is
    emptied at boot, so every ``up`` checks)."""

    path: Path
    mode: int = 0o755
    kind: str = "dirs"

    def fingerprint(self) -> str:
        return digest(f"closed-folder|{self.path}|{self.mode:o}")

    def probe(self, ctx: HostContext) -> Any:
        return [ctx.host.file_owner(self.path), ctx.host.file_mode(self.path)]

    def needed(self, fact: Any, done: str | None) -> bool:
        return bool(fact != ["root:root", self.mode])

    def apply(self, ctx: HostContext) -> None:
        ctx.host.ensure_dir(self.path, mode=self.mode, owner="root:root")


@dataclass(frozen=True)
class EnsureSystemGroup:
    """A system group (no members given here: each user joins it when it is made)."""

    name: str
    kind: str = "group"

    def fingerprint(self) -> str:
        return digest(f"system-group|{self.name}")

    def probe(self, ctx: HostContext) -> Any:
        return bool(ctx.host.run(["getent", "group", self.name], check=False).strip())

    def needed(self, fact: Any, done: str | None) -> bool:
        return not fact

    def apply(self, ctx: HostContext) -> None:
        if not self.probe(ctx):
            ctx.host.run(["groupadd", "--system", self.name])


@dataclass(frozen=True)
class EnsureSystemUser:
    """A system account (and its own group) that a service runs as: no login shell, no
    home, no password; also a member of ``groups`` (system groups, created if missing),
    e.g. the one whose members may use memcached's socket."""

    name: str
    groups: tuple[str, ...] = ()
    kind: str = "user"

    def fingerprint(self) -> str:
        extra = f"|{','.join(self.groups)}" if self.groups else ""
        return digest(f"system-user|{self.name}{extra}")

    def probe(self, ctx: HostContext) -> Any:
        """Its groups (``id -nG``), or None when there is no such user."""
        if not ctx.host.run(["getent", "passwd", self.name], check=False).strip():
            return None
        return ctx.host.run(["id", "-nG", self.name], check=False).split()

    def needed(self, fact: Any, done: str | None) -> bool:
        return fact is None or not set(self.groups) <= set(fact)

    def apply(self, ctx: HostContext) -> None:
        run = ctx.host.run
        if self.probe(ctx) is None:
            run(["useradd", "--system", "--user-group", "--no-create-home",
                 "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                 "--comment", f"onestack {self.name} service", self.name])
        for group in self.groups:
            if not run(["getent", "group", group], check=False).strip():
                run(["groupadd", "--system", group])
        if self.groups:
            run(["usermod", "--append", "--groups", ",".join(self.groups), self.name])


@dataclass(frozen=True)
class InstallPackages:
    """Debian packages the site needs."""

    packages: tuple[str, ...]
    kind: str = "packages"

    def fingerprint(self) -> str:
        return digest(" ".join(sorted(self.packages)))

    def probe(self, ctx: HostContext) -> Any:
        return sorted(apt.missing(ctx.host, self.packages))

    def needed(self, fact: Any, done: str | None) -> bool:
        return bool(fact)

    def apply(self, ctx: HostContext) -> None:
        apt.install(ctx.host, self.packages, ctx.progress.message)


@dataclass(frozen=True)
class RunOnce:
    """A command that must have run once for the present inputs (migrations, bootstrap)."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    inputs: str = ""
    timeout: float = 900
    kind: str = "command"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.argv, self.env, self.inputs]))

    def probe(self, ctx: HostContext) -> Any:
        return None

    def needed(self, fact: Any, done: str | None) -> bool:
        return done is None

    def apply(self, ctx: HostContext) -> None:
        marker = f"{ctx.paths.site}:{digest(json.dumps(self.argv))[:16]}"
        earlier = processes.marked_pids(ctx.host, marker, processes.COMMAND_VARIABLE)
        if earlier:  # an interrupted run's command is still at work: let it finish
            ctx.progress.message(f"waiting for the interrupted run's {Path(self.argv[0]).name}"
                                 f" (pids {', '.join(map(str, sorted(earlier)))}) to finish")
            left = processes.wait_gone(ctx.host, earlier, self.timeout)
            if left:
                raise CommandError(" ".join(self.argv), -1, f"an earlier run of this command "
                                   f"(pids {left}) is still running after {self.timeout:.0f}s")
        env = {**dict(self.env), processes.COMMAND_VARIABLE: marker}
        ctx.host.run(self.argv, env=env, timeout=self.timeout)


@dataclass(frozen=True)
class CallOnce:
    """A library call that must have run once for the present inputs (SQL, API calls)."""

    name: str
    func: Callable[[HostContext], None] = field(compare=False, repr=False)
    inputs: str = ""
    kind: str = "call"

    def fingerprint(self) -> str:
        return digest(f"{self.name}|{self.inputs}")

    def probe(self, ctx: HostContext) -> Any:
        return None

    def needed(self, fact: Any, done: str | None) -> bool:
        return done is None

    def apply(self, ctx: HostContext) -> None:
        self.func(ctx)


@dataclass(frozen=True)
class UpdateSupervisor:
    """supervisord running, with the present program definitions loaded."""

    programs_digest: str
    programs: tuple[str, ...] = ()  # the service's programs (empty: every program)
    kind: str = "supervisor"

    def fingerprint(self) -> str:
        return self.programs_digest

    def probe(self, ctx: HostContext) -> Any:
        return ctx.supervisor.is_running()

    def needed(self, fact: Any, done: str | None) -> bool:
        return not fact or done is None

    def apply(self, ctx: HostContext) -> None:
        ctx.supervisor.start_daemon()
        ctx.supervisor.update(self.programs)


@dataclass(frozen=True)
class StartProgram:
    """A supervised program running with its present configuration, and healthy."""

    program: str
    config_digest: str
    probe_checks: tuple[Probe, ...] = ()
    start_timeout: float = 120
    kind: str = "process"

    def fingerprint(self) -> str:
        return self.config_digest

    def recheck(self, ctx: HostContext) -> bool:
        """Skipped by the plan, but an earlier step of the run stopped the program."""
        return ctx.supervisor.state(self.program) not in ("RUNNING", "STARTING")

    def probe(self, ctx: HostContext) -> Any:
        state = ctx.supervisor.state(self.program)
        healthy = state == "RUNNING" and all(where(p, ctx).check()[0]
                                             for p in self.probe_checks)
        return [state, healthy]

    def needed(self, fact: Any, done: str | None) -> bool:
        return done is None or fact != ["RUNNING", True]

    def apply(self, ctx: HostContext) -> None:
        sup = ctx.supervisor
        started = time.time()
        if sup.state(self.program) == "RUNNING":
            sup.restart(self.program)
        else:
            remove_leftovers(ctx, self.program)
            sup.start(self.program)
        for probe in self.probe_checks:
            self._wait(ctx, since_restart(where(probe, ctx), started))

    def _wait(self, ctx: HostContext, probe: Probe) -> None:
        sup = ctx.supervisor

        def gave_up() -> bool:
            return sup.state(self.program) in ("FATAL", "STOPPED", "EXITED")

        ok, detail = wait_until_healthy(probe, self.start_timeout, stop_if=gave_up)
        if not ok:
            raise ServiceStartError(self.program, f"not healthy after {self.start_timeout:.0f}s"
                                    f" ({detail}); state {sup.state(self.program)}",
                                    sup.log_tail(self.program))


def remove_leftovers(ctx: HostContext, program: str) -> None:
    """Kill what a crash left of a program outside supervision (found by the program's
    marker, never by name) so its start finds its ports free."""
    info = ctx.supervisor.states().get(program, {})
    pid = int(info.get("pid") or 0) if info.get("statename") in _ALIVE else None
    stale = processes.program_processes(ctx.host, program_marker(ctx.paths.log, program),
                                        pid).outside
    if not stale:
        return
    ctx.progress.message(f"{program}: removing {len(stale)} leftover process(es) of an "
                         f"earlier run (pids {', '.join(map(str, stale))})")
    left = processes.kill(ctx.host, stale)
    if left:
        raise ServiceStartError(program, f"leftover processes {left} did not die on SIGKILL")


_ALIVE = ("RUNNING", "STARTING", "STOPPING", "BACKOFF")


def where(probe: Probe, ctx: HostContext) -> Probe:
    """A probe as it must run: on the host it names (``runs_on``, e.g. the database's),
    else on the step's own host, through that host's connection (never this machine
    for a component of another host)."""
    if isinstance(probe, AllOf):
        return AllOf(tuple(where(p, ctx) for p in probe.probes))
    through = getattr(probe, "through", None)
    runs_on = getattr(probe, "runs_on", "")
    target = ctx.hosts.get(runs_on) if runs_on else ctx.host
    if through is None or target is None:
        return probe
    bound: Probe = through(target)
    return bound


def since_restart(probe: Probe, started: float) -> Probe:
    """A probe that must see the restarted process, not what ran before it."""
    after = getattr(probe, "after", None)
    return after(started) if after is not None else probe


@dataclass(frozen=True)
class CreateReleaseEnv:
    """The immutable virtual environment of a release bundle, hash-verified."""

    series: str
    venv: Path
    wheelhouse: Path | None
    kind: str = "venv"

    def fingerprint(self) -> str:
        return digest(f"{self.series}|{self.venv}")

    def probe(self, ctx: HostContext) -> Any:
        from onestack.catalog.releases import load_bundle
        from onestack.drivers.python_env import venv_matches

        return venv_matches(load_bundle(self.series), self.venv)

    def needed(self, fact: Any, done: str | None) -> bool:
        return not fact

    def apply(self, ctx: HostContext) -> None:
        from onestack.catalog.releases import load_bundle
        from onestack.drivers.python_env import create_venv, wheelhouse_is_complete

        bundle = load_bundle(self.series)
        wheelhouse = self.wheelhouse
        if wheelhouse is not None and not wheelhouse_is_complete(bundle, wheelhouse):
            ctx.progress.message(f"no complete wheelhouse at {wheelhouse}; installing from the "
                                 "package index (hashes still verified)")
            wheelhouse = None
        create_venv(bundle, self.venv, wheelhouse, ctx.progress.message)


@dataclass(frozen=True)
class ShipReleaseEnv(CreateReleaseEnv):
    """The release environment on a host other than this machine, which may have no
    package index: the folder built here (hash-verified), packed once, sent by the
    host's connection, its digest checked there and unpacked at the same path (ADR 0014).
    Same inputs and decision as ``CreateReleaseEnv``; the facts are read there."""

    def probe(self, ctx: HostContext) -> Any:
        from onestack.catalog.releases import load_bundle
        from onestack.drivers.python_env import MARKER_FILE, marker_matches

        marker = ctx.host.read_file(self.venv / MARKER_FILE)
        return marker_matches(load_bundle(self.series), marker) and \
            ctx.host.file_mode(self.venv / "bin" / "python") is not None

    def apply(self, ctx: HostContext) -> None:
        from onestack.catalog.releases import load_bundle
        from onestack.drivers import python_env

        bundle = load_bundle(self.series)
        archive = python_env.release_archive(bundle, self.venv, self.wheelhouse,
                                             ctx.progress.message)
        _check_interpreter(ctx, *python_env.interpreter_id(bundle))
        parent, host = self.venv.parent, ctx.host
        sent = parent / f".{archive.path.name}.partial"
        ctx.progress.message(f"sending release {bundle.version} to {host.name} "
                             f"({archive.path.stat().st_size // 2**20} MiB)")
        host.put_file(archive.path, sent)
        if host.file_digest(sent) != archive.sha256:
            host.remove(sent)
            raise CommandError(f"send {archive.path} to {host.name}", 1,
                               "the received archive's sha256 differs from the one sent")
        host.remove(parent / archive.folder)  # a partial unpack of an interrupted run
        host.run(["tar", "-C", str(parent), "-xf", str(sent)], timeout=900)
        host.remove(sent)
        link = parent / f".{self.venv.name}.link"
        host.run(["sh", "-c", 'ln -sfn "$1" "$2" && mv -fT "$2" "$3"', "sh", archive.folder,
                  str(link), str(self.venv)])


def _check_interpreter(ctx: HostContext, python: str, version: str) -> None:
    """A release folder runs only where the same interpreter sits at the same path."""
    from onestack.drivers.python_env import INTERPRETER_ID_SCRIPT

    there = ctx.host.run([python, "-c", INTERPRETER_ID_SCRIPT], check=False).split()
    if there != [python, version]:
        raise CommandError(f"check Python on {ctx.host.name}", 1,
                           f"the release needs {python} (Python {version}) as on this "
                           f"machine; {ctx.host.name} has: {' '.join(there) or 'none'}")


@dataclass(frozen=True)
class CopyFile:
    """A copy of a file shipped in the release environment (e.g. a paste pipeline)."""

    source: Path
    path: Path
    mode: int = 0o644
    kind: str = "copy"

    def fingerprint(self) -> str:
        return digest(f"{self.source}|{self.path}|{self.mode:o}")

    def probe(self, ctx: HostContext) -> Any:
        return [ctx.host.file_digest(self.source), ctx.host.file_digest(self.path)]

    def needed(self, fact: Any, done: str | None) -> bool:
        return fact is None or fact[0] is None or fact[0] != fact[1]

    def apply(self, ctx: HostContext) -> None:
        content = ctx.host.read_file(self.source)
        if content is None:
            raise CommandError(f"copy {self.source} to {self.path} (on {ctx.host.name})", 1,
                               f"{self.source} is not there")
        ctx.host.write_file(self.path, content, mode=self.mode)


@dataclass(frozen=True)
class RetireCompute:
    """A compute host leaving the cloud, through nova's API: ``disable`` (nothing new
    lands there; refused while servers run there, naming them) or ``delete`` (its
    service record; nova removes its compute node, resource provider and cell mapping)."""

    DISABLE: ClassVar[str] = "disable"
    DELETE: ClassVar[str] = "delete"

    host: str
    phase: str  # DISABLE or DELETE
    auth_url: str
    password: str = field(repr=False)
    region: str
    cacert: str = ""
    kind: str = "compute"

    def fingerprint(self) -> str:
        return digest(f"{self.host}|{self.phase}|{self.auth_url}")

    def _connect(self) -> Any:
        from onestack.drivers import openstack

        return openstack.connect(self.auth_url, self.password, self.region,
                                 cacert=self.cacert)

    def probe(self, ctx: HostContext) -> Any:
        from onestack.drivers import openstack
        from onestack.errors import OnestackError

        if not openstack.answers(self.auth_url, cacert=self.cacert):
            return "unknown"  # not answering (stopped?): decided when the step runs
        try:
            service = openstack.compute_service(self._connect(), self.host)
        except OnestackError:
            return "unknown"  # the API is not answering: decided when the step runs
        return None if service is None else str(service.status)

    def needed(self, fact: Any, done: str | None) -> bool:
        return fact is not None

    def apply(self, ctx: HostContext) -> None:
        from onestack.drivers import openstack

        if self.phase not in (self.DISABLE, self.DELETE):
            raise ValueError(f"unknown phase {self.phase!r}")
        conn = self._connect()
        if self.phase == self.DELETE:
            servers = openstack.servers_on(conn, self.host)  # one forced there since
            if servers:
                raise openstack.HostHasServersError(self.host, servers)
            if openstack.delete_compute(conn, self.host):
                ctx.progress.message(f"{self.host}: compute node, resource provider and cell "
                                     "mapping removed")
            return
        servers = openstack.disable_compute(conn, self.host, "onestack: host leaving the site")
        if servers:
            raise openstack.HostHasServersError(self.host, servers)


@dataclass(frozen=True)
class StopSiteOnHost:
    """Nothing of the site left running on a host that leaves it: its supervisord (and
    with it every program) stopped, the site's folder removed there. A host that cannot
    be reached is reported, not waited for (a host that is off runs nothing). Then
    what the site left outside its folder: ``cleanup`` commands (metadata proxies and
    their namespaces, the switch's devices; failures ignored) and ``files`` (sudoers
    drop-ins)."""

    site_dir: Path
    cleanup: tuple[tuple[str, ...], ...] = ()
    files: tuple[Path, ...] = ()
    kind: str = "retire"

    def fingerprint(self) -> str:
        return digest(repr((str(self.site_dir), self.cleanup, [str(f) for f in self.files])))

    def probe(self, ctx: HostContext) -> Any:
        from onestack.errors import HostError

        try:
            return ctx.supervisor.is_running() or ctx.host.is_dir(self.site_dir)
        except HostError:
            return "unreachable"

    def needed(self, fact: Any, done: str | None) -> bool:
        return fact is not False

    def apply(self, ctx: HostContext) -> None:
        from onestack.errors import HostError

        try:
            if ctx.supervisor.is_running():
                ctx.supervisor.shutdown()
            for argv in self.cleanup:
                ctx.host.run(argv, check=False, timeout=120)
            for path in self.files:
                ctx.host.remove(path)
            ctx.host.remove(self.site_dir)
        except HostError as exc:
            ctx.progress.message(f"{ctx.host.name}: cannot be reached ({exc}); nothing of "
                                 "the site was stopped there")
