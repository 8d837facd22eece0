"""The upgrade and rollback plans, as data (pure, no I/O).

An upgrade from release N to N+1 runs in four phases (docs/upgrade.md):

* prepare: N+1 environment side by side, database backup, N+1 configuration,
  upstream pre-upgrade checks with the N+1 code, schema *expand* (old code still runs);
* roll: service by service in upstream order, each API swapped blue/green behind
  HAProxy (N's instance stays up, without traffic, until commit), the other
  processes restarted on N+1 code;
* verify: health gates and the smoke tests;
* commit: N's API instances and configuration retired, then schema *contract* and
  online data migrations. Only this is irreversible.

Until commit, rollback is a switch back to N's code and configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from onestack.core.digest import digest
from onestack.core.step import Step
from onestack.drivers.probes import Probe, wait_until_healthy
from onestack.drivers.supervisor import Program, render_program, supervised_command
from onestack.errors import ServiceStartError
from onestack.model.site import Host
from onestack.plans.deploy import placed_programs, release_env
from onestack.services import haproxy, mariadb, neutron, nova, registry
from onestack.services.base import OpenStackService, ServiceContext, api_probes
from onestack.steps.actions import (
    CallOnce,
    RunOnce,
    ShipReleaseEnv,
    UpdateSupervisor,
    WriteFile,
    since_restart,
    where,
)
from onestack.steps.context import HostContext
from onestack.steps.upgrade_actions import (
    BackupDatabases,
    HealthGate,
    RetireRelease,
    RunWithDefinition,
    SwapApi,
    UpgradeCheck,
)

PHASES = ("prepare", "roll", "verify", "commit")
Hook = Callable[[HostContext], None]


def flipped(colors: dict[str, str]) -> dict[str, str]:
    """The other API instance for every OpenStack service."""
    return {m.name: "green" if colors.get(m.name, "blue") == "blue" else "blue"
            for m in registry.OPENSTACK}


def upgrade_prefix(series: str) -> str:
    return f"upgrade-{series}"


def rollback_prefix(series: str) -> str:
    return f"rollback-{series}"


def phase_of(step_id: str) -> str:
    """``upgrade-2026.2/roll/nova/...`` -> ``roll``."""
    parts = step_id.split("/")
    return parts[1] if len(parts) > 1 else ""


def _step(prefix: str, phase: str, service: str, name: str, summary: str, ctx: ServiceContext,
          action: object) -> Step:
    return Step(id=f"{prefix}/{phase}/{service}/{name}", summary=summary, service=service,
                host=ctx.host, action=action)  # type: ignore[arg-type]


def _host_step(prefix: str, phase: str, service: str, name: str, summary: str,
               ctx: ServiceContext, host: Host, action: object, fanout: str = "") -> Step:
    """A step of the upgrade on a host other than the controller: ``.../<host>/name``."""
    return Step(id=f"{prefix}/{phase}/{service}/{host.name}/{name}", summary=summary,
                service=service, host=host.name, action=action,  # type: ignore[arg-type]
                fanout=fanout)


def _prefixed(prefix: str, phase: str, steps: list[Step]) -> list[Step]:
    return [Step(id=f"{prefix}/{phase}/{s.id}", summary=s.summary, service=s.service,
                 host=s.host, action=s.action) for s in steps]


def _prepare(old: ServiceContext, new: ServiceContext, backup_dir: Path,
             wheelhouse: Path | None) -> list[Step]:
    p = upgrade_prefix(new.series)
    meta = (("from", old.series), ("to", new.series), ("site", old.site.name),
            ("colors", ",".join(f"{k}={v}" for k, v in sorted(old.colors.items()))))
    steps = [
        _step(p, "prepare", "host", "release-env", f"install release {new.series} side by side",
              new, release_env(new, new.site.controller, wheelhouse)),
        _step(p, "prepare", "mariadb", "backup", f"back up every database to {backup_dir}",
              new, BackupDatabases(mariadb.socket_path(old), backup_dir, meta,
                                   tuple(sorted(mariadb.DATABASES)))),
    ]
    steps += _prepare_computes(p, new, wheelhouse)
    for module in registry.OPENSTACK:
        steps += _prefixed(p, "prepare", module.configure(new))
    for module in registry.OPENSTACK:
        steps.append(_step(p, "prepare", module.name, "upgrade-check",
                           f"{module.name} pre-upgrade check ({new.series} code)", new,
                           UpgradeCheck(module.name, module.upgrade_check(new))))
    for module in registry.OPENSTACK:
        for name, argv in module.expand(new):
            steps.append(_step(p, "prepare", module.name, name,
                               f"{module.name}: {name.replace('-', ' ')}", new,
                               RunOnce(argv, inputs=new.series)))
    return steps


def remote_hosts(ctx: ServiceContext) -> list[Host]:
    """Hosts other than the controller that run OpenStack programs, in site order."""
    names = {h.name for h in [*nova.remote_computes(ctx), *neutron.remote_agents(ctx)]}
    return [h for h in ctx.site.hosts if h.name in names]


def _remote_configs(new: ServiceContext, host: Host) -> list[tuple[str, Path, str]]:
    """(service, path, text) of each configuration file of ``new`` on ``host``."""
    files = []
    if any(h.name == host.name for h in nova.remote_computes(new)):
        files.append(("nova", *nova.compute_config(new, host)))
    if any(h.name == host.name for h in neutron.remote_agents(new)):
        files += [("neutron", path, text) for path, text in neutron.agent_config(new, host).items()]
    return files


def _prepare_computes(prefix: str, new: ServiceContext, wheelhouse: Path | None) -> list[Step]:
    """On every host but the controller that runs OpenStack programs, all at once: the
    new release (sent from here) and its configuration files, beside the running ones."""
    steps = []
    for host in remote_hosts(new):
        steps.append(_host_step(prefix, "prepare", "host", "release-env",
                                f"install release {new.series} side by side", new, host,
                                ShipReleaseEnv(new.series, new.venv, wheelhouse),
                                fanout="computes"))
        steps += [_host_step(prefix, "prepare", service, f"config:{path.name}",
                             f"write {path}", new, host,
                             WriteFile(path, text, mode=0o640, owner=f"root:{service}"),
                             fanout="computes")
                  for service, path, text in _remote_configs(new, host)]
    return steps


def _roll_computes(prefix: str, phase: str, dst: ServiceContext) -> list[Step]:
    """nova-compute on every compute host but the controller moved to ``dst``, one host
    after the other, each back and reporting (a fresh heartbeat) before the next."""
    return _roll_remote(prefix, phase, dst, "nova", nova.compute_program(dst),
                        nova.remote_computes(dst),
                        lambda host: nova.compute_reports(dst, host.name))


def _roll_agents(prefix: str, phase: str, dst: ServiceContext) -> list[Step]:
    """neutron's OVN agent on every chassis but the controller moved to ``dst``, one
    host after the other, each listening again before the next (a chassis's metadata
    path is down only while its own agent restarts)."""
    return _roll_remote(prefix, phase, dst, "neutron", neutron.agent_program(dst),
                        neutron.remote_agents(dst), lambda host: neutron.agent_probe(dst, host))


def _roll_remote(prefix: str, phase: str, dst: ServiceContext, service: str, prog: Program,
                 hosts: list[Host], probe: Callable[[Host], Probe]) -> list[Step]:
    """One program on ``hosts`` moved to ``dst``, host after host, each healthy again
    (``probe``) before the next."""
    steps = []
    text = render_program(prog, dst.paths.log)
    for host in hosts:
        def on(name: str, summary: str, action: object, host: Host = host) -> Step:
            return _host_step(prefix, phase, service, name, summary, dst, host, action)

        steps += [
            on(f"program:{prog.name}", f"define program {prog.name} ({dst.series})",
               WriteFile(dst.paths.site / "supervisor" / f"{prog.name}.conf", text)),
            on("supervisor", f"load program definitions of {prog.name}",
               UpdateSupervisor(digest(text), (prog.name,))),
            on(f"restart:{prog.name}", f"restart {prog.name} on {dst.series}",
               RunWithDefinition(prog.name, " ".join(supervised_command(prog)))),
            on(f"ready:{prog.name}", f"wait until {prog.name} on {host.name} reports",
               CallOnce(f"wait for {prog.name} on {host.name}",
                        _waiter(prog.name, probe(host)), inputs=dst.series))]
    return steps


def _retire_computes(prefix: str, old: ServiceContext, new: ServiceContext) -> list[Step]:
    """On every other host, the older release's configuration goes; its programs stay:
    every program the site places there (the switch, OVN, libvirt beside nova-compute
    and the agent: keeping only the latter once removed the others' definitions)."""
    placed: dict[str, list[str]] = {}
    for host, _service, program in placed_programs(new):
        placed.setdefault(host, []).append(program)
    return [_host_step(prefix, "commit", "site", f"retire-{old.series}",
                       f"retire {old.series} configuration", new, host,
                       RetireRelease(old.series, old.paths.etc(old.series),
                                     new.paths.site / "supervisor",
                                     tuple(sorted(placed.get(host.name, ())))),
                       fanout="computes")
            for host in remote_hosts(new)]


def _definitions(ctx: ServiceContext, programs: list[Program]) -> dict[str, str]:
    return {prog.name: render_program(prog, ctx.paths.log) for prog in programs}


def _program_files(prefix: str, phase: str, name: str, dst: ServiceContext,
                   defs: dict[str, str]) -> list[Step]:
    return [_step(prefix, phase, name, f"program:{prog}", f"define program {prog} "
                  f"({dst.series})", dst, WriteFile(dst.paths.site / "supervisor" /
                                                    f"{prog}.conf", text))
            for prog, text in defs.items()]


def _load(prefix: str, phase: str, name: str, dst: ServiceContext, defs: dict[str, str],
          step_name: str = "supervisor") -> Step:
    """Load these program definitions (a changed one stops its running process)."""
    return _step(prefix, phase, name, step_name, f"load program definitions of "
                 f"{', '.join(sorted(defs))}", dst,
                 UpdateSupervisor(digest("".join(defs[k] for k in sorted(defs))),
                                  tuple(sorted(defs))))


def _loaded_at_restart(module: OpenStackService, defs: dict[str, str]) -> set[str]:
    """The service's programs (``LOAD_AT_RESTART``) whose new definition is loaded just
    before their own restart rather than with the others at the start of the service's
    roll: loading a changed definition stops the program, and these serve guests (the
    metadata path), which should be without them for their restart only."""
    return {p for p in getattr(module, "LOAD_AT_RESTART", ()) if p in defs}


def _load_late(prefix: str, phase: str, name: str, dst: ServiceContext,
               defs: dict[str, str], late: set[str], prog: Program) -> list[Step]:
    if prog.name not in late:
        return []
    return [_load(prefix, phase, name, dst, {prog.name: defs[prog.name]},
                  f"supervisor:{prog.name}")]


def _restart(prefix: str, phase: str, name: str, dst: ServiceContext, prog: Program) -> Step:
    return _step(prefix, phase, name, f"restart:{prog.name}",
                 f"restart {prog.name} on {dst.series}", dst,
                 RunWithDefinition(prog.name, " ".join(supervised_command(prog))))


def _checks(module: OpenStackService, ctx: ServiceContext) -> dict[str, Probe]:
    return {c.name: c.probe for c in module.checks(ctx)}


def _settle(prefix: str, phase: str, module: OpenStackService, dst: ServiceContext) -> list[Step]:
    """Restart the ``SETTLE`` programs once more, now that all of the service moved."""
    checks = _checks(module, dst)
    here = {p.name for p in module.programs(dst)}
    return [_step(prefix, phase, module.name, f"settle:{prog}",
                  f"restart {prog} once all of {module.name} runs {dst.series}", dst,
                  CallOnce(f"settle {prog}", _restarter(prog, checks), inputs=dst.series))
            for prog in getattr(module, "SETTLE", ()) if prog in here] + \
        (_settle_computes(prefix, phase, dst) if module is nova else [])


def _roll_service(prefix: str, module: OpenStackService, old: ServiceContext,
                  new: ServiceContext) -> list[Step]:
    """Move one service to ``new`` in its roll order (``roll_order``, default: API
    first), then restart its ``SETTLE`` programs once: a process started while its
    peers still ran ``old`` keeps version pins until it starts again."""
    name = module.name
    programs = module.programs(new)
    defs = _definitions(new, programs)
    late = _loaded_at_restart(module, defs)
    steps = [*_program_files(prefix, "roll", name, new, defs),
             _load(prefix, "roll", name, new, {k: v for k, v in defs.items() if k not in late})]
    for prog in getattr(module, "roll_order", list)(programs):
        steps += _before_agents(prefix, "roll", module, new, prog, programs)
        steps += _load_late(prefix, "roll", name, new, defs, late, prog)
        steps.append(_swap_step(prefix, "roll", module, old, new) if prog is programs[0]
                     else _restart(prefix, "roll", name, new, prog))
        steps += _agent_ready(prefix, "roll", module, new, prog)
    if module is nova:
        steps += _roll_computes(prefix, "roll", new)
    if module is neutron:
        steps += _roll_agents(prefix, "roll", new)
    return steps + _settle(prefix, "roll", module, new)


def _before_agents(prefix: str, phase: str, module: OpenStackService, dst: ServiceContext,
                   prog: Program, programs: list[Program]) -> list[Step]:
    """Before the first of the service's ``AGENTS`` moves: its ``before_agents`` step
    (neutron: the back end's rows written again by the servers that now run)."""
    agents = [p for p in programs if p.name in getattr(module, "AGENTS", ())]
    if not agents or prog is not agents[0]:
        return []
    return [_step(prefix, phase, module.name, "before-agents", f"{module.name} {dst.series}: "
                  "back-end rows written again by its servers, before its agents move", dst,
                  module.before_agents(dst))]  # type: ignore[attr-defined]


def _agent_ready(prefix: str, phase: str, module: OpenStackService, dst: ServiceContext,
                 prog: Program) -> list[Step]:
    """After one of the service's ``AGENTS`` restarted: its ``agent_ready`` step
    (neutron's OVN agent serves the metadata proxies again), so that the next restart
    (nova's metadata API) does not add its own outage to the agent's."""
    ready = getattr(module, "agent_ready", None)
    if ready is None or prog.name not in getattr(module, "AGENTS", ()):
        return []
    return [_step(prefix, phase, module.name, f"ready:{prog.name}",
                  f"wait until {prog.name} has started on {dst.series}", dst, ready(dst))]


def _roll_checks(prefix: str, phase: str, dst: ServiceContext) -> list[Step]:
    """Each service's ``roll_checks``: what must hold once all of it runs ``dst``."""
    return [_step(prefix, phase, module.name, check_name, summary, dst, action)
            for module in registry.OPENSTACK
            for check_name, summary, action in getattr(module, "roll_checks", _none)(dst)]


def _none(_: ServiceContext) -> list[tuple[str, str, CallOnce]]:
    return []


def _settle_computes(prefix: str, phase: str, dst: ServiceContext) -> list[Step]:
    """After the settle restarts of nova's conductor and scheduler: each other compute
    restarted once more, one after the other, and waited for until it reports. A
    compute that started before the conductor's last restart was seen to hang its next
    heartbeat for the RPC timeout (60 s): its call went to the conductor that stopped."""
    prog = nova.compute_program(dst)
    return [_host_step(prefix, phase, "nova", f"settle:{prog.name}",
                       f"restart {prog.name} on {host.name} once all of nova runs "
                       f"{dst.series}", dst, host,
                       CallOnce(f"settle {prog.name} on {host.name}",
                                _restarter(prog.name, {prog.name: nova.compute_reports(
                                    dst, host.name)}), inputs=dst.series))
            for host in nova.remote_computes(dst)]


def _roll_back_service(prefix: str, module: OpenStackService, newer: ServiceContext,
                       older: ServiceContext, settle: bool) -> list[Step]:
    """Move one service back to ``older``: its API first, then the rest.

    1. the service's ``before_downgrade`` steps (nova's version markers), all before
       any older process starts: an older conductor that started first would cache
       the newer compute version and refuse the compute ("older than the minimum");
    2. the API swapped back (its older instance is still up since the roll), so
       nothing sends messages of the newer release any more. With ``before_rollback``
       (nova) the swap has a gap: the newer API drains, HAProxy holds new requests,
       stored objects are made readable by the older code, then the older API takes
       the requests. Without the gap, the older API would read objects the newer one
       had just written and fail ("Version 1.44 of ImageMetaProps is not supported");
    3. ``drain_before_stop`` (nova): the newer back end handles what is queued for it;
    4. the other programs' older definitions loaded, which stops their newer processes;
    5. ``before_rollback`` again: what the newer back end stored meanwhile;
    6. the other programs started in roll order, each among older processes only, so
       none needs the roll's settle restart (unless ``settle``: a retried rollback).
    """
    name = module.name
    programs = module.programs(older)
    api, rest = programs[0], [p for p in getattr(module, "roll_order", list)(programs)
                              if p is not programs[0]]
    defs = _definitions(older, programs)
    steps = _program_files(prefix, "rollback", name, older, defs)
    downgrade = getattr(module, "before_downgrade", None)
    remote = _remote_programs(module, older, [*rest, api])
    if downgrade is not None:
        steps += [_step(prefix, "rollback", name, f"before:{prog.name}",
                        f"prepare {prog.name} to run {older.series} again", older,
                        downgrade(older, prog)) for prog in [*rest, *remote, api]]
    steps.append(_load(prefix, "rollback", name, older, {api.name: defs[api.name]},
                       "supervisor:api" if rest else "supervisor"))
    before_rollback = getattr(module, "before_rollback", None)
    convert = before_rollback(newer, older) if before_rollback is not None else None
    leave = _before_api_stops(module, newer, newer.color(name))
    steps.append(_swap_step(prefix, "rollback", module, newer, older,
                            between=convert.func if convert is not None else None,
                            before_stop=leave.func if leave is not None else None))
    if not rest:
        return steps
    drain = getattr(module, "drain_before_stop", None)
    if drain is not None:
        steps.append(_step(prefix, "rollback", name, "drain", f"let {name} {newer.series} "
                           "handle what is queued for it", newer, drain(newer)))
    late = _loaded_at_restart(module, defs)
    steps.append(_load(prefix, "rollback", name, older, {p.name: defs[p.name] for p in rest
                                                          if p.name not in late}))
    if convert is not None:
        steps.append(_step(prefix, "rollback", name, "before-rollback",
                           f"make {name}'s stored data readable by {older.series} (what "
                           f"its {newer.series} back end wrote since)", older, convert))
    for prog in rest:
        steps += _before_agents(prefix, "rollback", module, older, prog, rest)
        steps += _load_late(prefix, "rollback", name, older, defs, late, prog)
        steps.append(_restart(prefix, "rollback", name, older, prog))
        steps += _agent_ready(prefix, "rollback", module, older, prog)
    if module is nova:
        steps += _roll_computes(prefix, "rollback", older)
    if module is neutron:
        steps += _roll_agents(prefix, "rollback", older)
    return steps + (_settle(prefix, "rollback", module, older) if settle else [])


def _remote_programs(module: OpenStackService, ctx: ServiceContext,
                     local: list[Program]) -> list[Program]:
    """Programs of the service that run only on other hosts (nova-compute when the
    controller computes nothing): their version markers must be reset too."""
    if module is not nova or not nova.remote_computes(ctx):
        return []
    prog = nova.compute_program(ctx)
    return [] if any(p.name == prog.name for p in local) else [prog]


def _ready_steps(prefix: str, module: OpenStackService, dst: ServiceContext) -> list[Step]:
    """Wait until the service's settle programs that have a check report healthy."""
    checks = {k: v for k, v in _checks(module, dst).items()
              if k in {p.name for p in module.programs(dst)}}
    return [_step(prefix, "rollback", module.name, f"ready:{prog}",
                  f"wait until {prog} reports healthy", dst,
                  CallOnce(f"wait for {prog}", _waiter(prog, checks[prog]), inputs=dst.series))
            for prog in getattr(module, "SETTLE", ()) if prog in checks]


def _wait_healthy(hc: HostContext, program: str, check: Probe, started: float) -> None:
    """Wait until ``check`` passes for the process started at ``started``."""
    ok, detail = wait_until_healthy(since_restart(where(check, hc), started), 180)
    if not ok:
        raise ServiceStartError(program, detail, hc.supervisor.log_tail(program))


def _waiter(program: str, check: Probe) -> Hook:
    def wait(hc: HostContext) -> None:
        started = float(hc.supervisor.states().get(program, {}).get("start", 0))
        _wait_healthy(hc, program, check, started)

    return wait


def _restarter(program: str, checks: dict[str, Probe]) -> Hook:
    def restart(hc: HostContext) -> None:
        started = time.time()
        hc.supervisor.restart(program)
        if program in checks:
            _wait_healthy(hc, program, checks[program], started)

    return restart


def _swap_step(prefix: str, phase: str, module: OpenStackService, src: ServiceContext,
               dst: ServiceContext, between: Hook | None = None,
               before_stop: Hook | None = None) -> Step:
    name = module.name
    api_src = module.programs(src)[0]
    api_dst = module.programs(dst)[0]
    conf_digest = digest("".join(digest(v) for _, v in sorted(
        (str(k), v) for k, v in module.config(dst).items())))
    backend_probe: Probe = api_probes(dst, name)[0]
    return _step(prefix, phase, name, "swap-api",
                 f"{name} API: {src.color(name)} ({src.series}) -> "
                 f"{dst.color(name)} ({dst.series}) behind HAProxy", dst,
                 SwapApi(name, api_src.name, api_dst.name, f"{name}-{src.color(name)}",
                         f"{name}-{dst.color(name)}", backend_probe,
                         dst.paths.run / "haproxy.sock",
                         to_port=dst.backend_port(name), keep_warm=phase == "roll",
                         between=between, before_stop=before_stop,
                         config_digest=conf_digest))


def _haproxy_config(prefix: str, phase: str, ctx: ServiceContext) -> Step:
    """Record the live colors in HAProxy's file (its runtime state is already so)."""
    path = haproxy.config_path(ctx)
    return _step(prefix, phase, "haproxy", "config", f"record live API instances in {path}",
                 ctx, WriteFile(path, haproxy.render(ctx), mode=haproxy.CONFIG_MODE))


def _gate(prefix: str, ctx: ServiceContext) -> Step:
    probes: list[tuple[str, Probe]] = []
    programs: list[str] = []
    for module in registry.ALL:
        programs += [p.name for p in module.programs(ctx)]
        if module in registry.OPENSTACK:
            probes.append((f"{module.name} (haproxy)",
                           api_probes(ctx, module.name)[1]))
    return _step(prefix, "verify", "site", "health-gate", "health gate: every process running,"
                 " every API answering through HAProxy", ctx,
                 HealthGate("health gate", tuple(probes), tuple(programs)))


def upgrade_steps(old: ServiceContext, new: ServiceContext, backup_dir: Path,
                  wheelhouse: Path | None, smoke_test: Hook, on_commit: Hook) -> list[Step]:
    """Every step of the upgrade ``old.series`` -> ``new.series``, phase by phase."""
    p = upgrade_prefix(new.series)
    steps = _prepare(old, new, backup_dir, wheelhouse)
    for module in registry.OPENSTACK:
        steps += _roll_service(p, module, old, new)
    steps.append(_haproxy_config(p, "roll", new))
    steps.append(_gate(p, new))
    steps += _roll_checks(p, "verify", new)
    steps.append(_step(p, "verify", "site", "smoke-tests", "smoke tests on the new code", new,
                       CallOnce("smoke tests", smoke_test, inputs=new.series)))
    steps.append(_step(p, "commit", "site", "point-of-no-return",
                       "record that the upgrade is committing (rollback ends here)", new,
                       CallOnce("commit", on_commit, inputs=new.series)))
    # The older release's API instances stay up (no traffic) until here, for a fast
    # rollback; they stop before the contract removes what only their code needs.
    steps += _before_retire(p, old)
    steps.append(_retire(p, old, new))
    steps += _retire_computes(p, old, new)
    for module in registry.OPENSTACK:
        for name, argv in module.contract(new):
            steps.append(_step(p, "commit", module.name, name,
                               f"{module.name}: {name.replace('-', ' ')}", new,
                               RunOnce(argv, inputs=new.series)))
    return steps


def _before_retire(prefix: str, old: ServiceContext) -> list[Step]:
    """Each service's ``before_api_stops`` for its older API instance (neutron: it
    leaves the OVN hash ring, and the other workers reload it, before it stops)."""
    steps = []
    for module in registry.OPENSTACK:
        color = old.color(module.name)
        leave = _before_api_stops(module, old, color)
        if leave is not None:
            steps.append(_step(prefix, "commit", module.name, f"before-stop:{color}",
                               f"{module.name} API {color} ({old.series}): ready to stop",
                               old, leave))
    return steps


def _before_api_stops(module: OpenStackService, ctx: ServiceContext,
                      color: str) -> CallOnce | None:
    hook = getattr(module, "before_api_stops", None)
    return hook(ctx, color) if hook is not None else None


def _retire(prefix: str, old: ServiceContext, new: ServiceContext) -> Step:
    keep = tuple(sorted(p.name for m in registry.ALL for p in m.programs(new)))
    return _step(prefix, "commit", "site", f"retire-{old.series}",
                 f"retire {old.series}: stop and remove its API instances and its "
                 "configuration", new,
                 RetireRelease(old.series, old.paths.etc(old.series),
                               new.paths.site / "supervisor", keep))


def rollback_steps(old: ServiceContext, new: ServiceContext, retry: bool = False
                   ) -> list[Step]:
    """Return every service to ``old`` (code, configuration, live API instance).

    Services go back in reverse upgrade order, then the settle programs that were
    only restarted are waited for, all at the end. The expanded schema stays: the old
    code runs on it by design, and nothing written meanwhile is lost. A ``retry`` (the
    last rollback failed) restarts the settle programs once all of their service runs
    ``old`` instead of only waiting for them: a process that started too early (and
    cached something of the newer release) recovers only by a fresh start.
    """
    p = rollback_prefix(new.series)
    steps: list[Step] = []
    for module in reversed(registry.OPENSTACK):
        steps += _roll_back_service(p, module, new, old, settle=retry)
    steps.append(_haproxy_config(p, "rollback", old))
    if not retry:
        # Last: nova-compute's first heartbeat takes 10-30 s after its start, and the
        # other services can move back meanwhile (the scheduler still counts the
        # compute up on its last heartbeat, and its queue holds what is cast to it).
        for module in reversed(registry.OPENSTACK):
            steps += _ready_steps(p, module, old)
    return steps + _roll_checks(p, "rollback", old)
