"""Site operations shared by the CLI and the API: plan, up, down.

This is the small public facade: the front-ends call these functions and render
what they return; they never reach into services or drivers themselves.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from onestack.core.host import HostConnection
from onestack.core.progress import Progress
from onestack.core.step import Plan, Step, make_plan
from onestack.drivers.host import LocalHost
from onestack.drivers.site_file import architecture_of
from onestack.drivers.ssh_host import SshHost
from onestack.drivers.supervisor import SiteSupervisor
from onestack.engine.lock import site_lock
from onestack.engine.runner import apply_plan, context_of, per_host
from onestack.errors import HostError, NotDeployableError, PortInUseError, PrerequisiteError
from onestack.model.architecture import ArchitectureReport, report
from onestack.model.loader import dump_site
from onestack.model.ports import API_PORTS, Ports
from onestack.model.site import Host
from onestack.plans.deploy import deploy_steps
from onestack.state.site import SiteHandle, series_of, service_context
from onestack.steps.context import HostContext


def host_context(handle: SiteHandle, progress: Progress) -> HostContext:
    """The controller's context (operations that act on the controller alone), with
    every host's connection for probes that run elsewhere."""
    contexts = host_contexts(handle, progress)
    return contexts[handle.site.controller.name]


def host_contexts(handle: SiteHandle, progress: Progress) -> dict[str, HostContext]:
    """A context per host of the site, by name (SSH hosts connect on first use)."""
    hosts = {h.name: handle.connection(h)
             for h in (*handle.site.hosts, *handle.retired_hosts())}
    return {name: HostContext(host, handle.paths, handle.supervisor_on(host), progress,
                              hosts)
            for name, host in hosts.items()}


def ensure_site_key(handle: SiteHandle) -> bool:
    """The site's own SSH key pair (``<site>/ssh/id_ed25519``, 0600), generated on
    this machine if a host uses it and it is absent. True if generated. The private
    key is never printed; its public half is what hosts must authorize."""
    key = handle.paths.ssh_key
    if key.exists() or not any(not h.is_local and not h.ssh_key for h in handle.site.hosts):
        return False
    local = LocalHost()
    local.ensure_dir(key.parent, mode=0o700)
    local.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
               f"onestack-{handle.site.name}", "-f", str(key)])
    os.chmod(key, 0o600)
    return True


def preflight(contexts: Mapping[str, HostContext], leaving: Iterable[str] = ()) -> None:
    """Before anything changes: every SSH host reachable, its host key known and
    unchanged, onestack's key accepted, python3 there and root (all hosts at once),
    but hosts ``leaving`` the site (which may be gone already).
    Raises the first HostError in site order; the others go to progress."""
    leaving = set(leaving)
    remote = {name: c for name, c in contexts.items() if isinstance(c.host, SshHost)
              and name not in leaving}
    outcomes = per_host({name: c.host.connect for name, c in remote.items()})  # type: ignore[attr-defined]
    errors = [(name, o) for name, o in outcomes.items() if isinstance(o, BaseException)]
    for name, error in errors[1:]:
        remote[name].progress.message(f"also: {error}")
    if errors:
        raise errors[0][1]


@contextmanager
def reached_hosts(handle: SiteHandle, progress: Progress) -> Iterator[dict[str, HostContext]]:
    """Every host's context, each SSH host reached and checked first (``preflight``);
    their connections closed afterwards."""
    contexts = host_contexts(handle, progress)
    try:
        preflight(contexts, [h.name for h in handle.retired_hosts()])
        yield contexts
    finally:
        close_all(contexts)


def close_all(contexts: Mapping[str, HostContext]) -> None:
    for c in contexts.values():
        if isinstance(c.host, SshHost):
            c.host.close()


def gather_facts(steps: list[Step], ctx: HostContext | Mapping[str, HostContext]
                 ) -> dict[str, Any]:
    """Read-only probes of every step's present state, each through its own host
    (every host at once)."""
    by_host: dict[str, list[Step]] = {}
    for s in steps:
        by_host.setdefault(s.host, []).append(s)

    def probe(share: list[Step]) -> dict[str, Any]:
        return {s.id: s.action.probe(context_of(ctx, s)) for s in share}

    facts: dict[str, Any] = {}
    for outcome in per_host({h: partial(probe, share) for h, share in by_host.items()}
                            ).values():
        if isinstance(outcome, BaseException):
            raise outcome
        facts.update(outcome)
    return facts


def default_wheelhouse(handle: SiteHandle, series: str) -> Path | None:
    path = handle.paths.wheelhouse / series
    return path if path.is_dir() else None


def plan_up(handle: SiteHandle, contexts: Mapping[str, HostContext],
            generate_secrets: bool = True) -> Plan:
    """What ``up`` would do on the site's hosts now (``contexts``: by host name)."""
    series = series_of(handle)
    ctx = service_context(handle, series, generate=generate_secrets)
    steps = deploy_steps(ctx, default_wheelhouse(handle, series), handle.retired_hosts())
    journal = handle.journal() if handle.paths.state_db.exists() else None
    done = journal.done_for(steps) if journal else {}
    if journal:
        journal.close()
    return make_plan("up", steps, gather_facts(steps, contexts), done)


def plan_site(handle: SiteHandle, progress: Progress) -> Plan:
    """``onestack plan``: reach every host (pre-flight), probe, plan; change nothing."""
    with reached_hosts(handle, progress) as contexts:
        return plan_up(handle, contexts, generate_secrets=False)


def architecture_report(handle: SiteHandle) -> ArchitectureReport:
    """What ``plan`` shows first, from the site file alone: placement, broken rules,
    single points of failure (ADR 0024)."""
    return report(handle.site, architecture_of(handle.site))


def refuse_undeployable(handle: SiteHandle) -> None:
    """Before anything runs: the site's architecture is one this version deploys."""
    if not architecture_of(handle.site).deployable:
        raise NotDeployableError(handle.site.architecture)


def check_prerequisites() -> None:
    """Root, Debian with apt, a usable Python: or a clear error."""
    if os.geteuid() != 0:
        raise PrerequisiteError("onestack up must run as root (it installs packages and "
                                "runs services as their own users)", "run it with sudo")
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        raise PrerequisiteError("apt-get/dpkg not found: the lab needs a Debian 12 host")


def _port_owner(port: int, ports: Ports) -> str:
    for api in API_PORTS:
        if port == ports.frontend(api):
            return "haproxy"
        if port == ports.backend(api):
            return f"{api}-api"
    for name in ("mariadb", "rabbitmq"):
        if port == ports.infra(name):
            return name
    return "rabbitmq" if port == ports.infra("rabbitmq-dist") else "haproxy"


def check_ports(handle: SiteHandle, hctx: HostContext) -> None:
    """Every port the site needs is free, or held by the site's own program."""
    ports = Ports(handle.site.port_offset)
    states = hctx.supervisor.states()
    for label, port in ports.all_listening().items():
        owner = _port_owner(port, ports)
        if states.get(owner, {}).get("statename") in ("RUNNING", "STARTING", "BACKOFF"):
            continue
        holder = hctx.host.port_holder(port)
        if holder:
            raise PortInUseError(handle.site.controller.name, port, f"{holder} (needed for "
                                 f"{label})")


def up(handle: SiteHandle, progress: Progress) -> Plan:
    """Bring the site to its declared state. Idempotent; resumes after interruption.
    Hosts that left the site file leave the cloud (``retired_hosts``)."""
    refuse_undeployable(handle)
    check_prerequisites()
    with site_lock(handle.paths.site, handle.site.name, "up"):
        if ensure_site_key(handle):
            progress.message(f"generated the site's SSH key; authorize "
                             f"{handle.paths.ssh_key}.pub on its hosts")
        with reached_hosts(handle, progress) as contexts:
            plan = plan_up(handle, contexts)
            if plan.is_empty:
                return plan
            check_ports(handle, contexts[handle.site.controller.name])
            leaving = handle.retired_hosts()
            if not leaving:  # else once they left: until then they stay on record
                _record_site(handle)
            journal = handle.journal()
            try:
                apply_plan(plan, contexts, journal, progress)
                journal.set_fact("release", series_of(handle))
                for host in leaving:
                    journal.forget_host(host.name)
            finally:
                journal.close()
            if leaving:
                _record_site(handle)
        return plan


def _record_site(handle: SiteHandle) -> None:
    """Keep the site definition with the site's state (the default lab's too)."""
    hctx = LocalHost()
    hctx.write_file(handle.paths.site_file, dump_site(handle.site), mode=0o640)


def down(handle: SiteHandle, progress: Progress, purge: bool = False) -> None:
    """Stop every service of the site, other hosts' first (data kept); with ``purge``
    also delete its state and secrets. A host that cannot be reached is reported and
    skipped (a host that is off runs nothing)."""
    with site_lock(handle.paths.site, handle.site.name, "down"):
        if purge:
            _remove_guests(handle, progress)
        controller = handle.site.controller
        for host in handle.site.hosts:
            if host.name != controller.name:
                _down_remote(handle, host, progress, purge)
        sup = handle.controller_supervisor()
        if sup.is_running():
            _stop_in_order(handle, sup, progress)
            sup.shutdown()
        _stop_metadata_proxies(handle, progress, purge)
        _stop_epmd_if_unused(handle.controller(), progress)
        if purge:
            _remove_host_leftovers(handle, progress)
            if not controller.is_local:  # its copy of the site; this machine's below
                _on_hosts(handle, [controller], progress, "removing the site's folders",
                          lambda conn: [conn.remove(handle.paths.site),
                                        conn.remove(handle.paths.sockets)])
    for folder in (handle.paths.site, handle.paths.sockets):
        if purge and folder.exists():
            progress.message(f"removing {folder}")
            shutil.rmtree(folder)


def _on_hosts(handle: SiteHandle, hosts: Iterable[Host], progress: Progress,
              what: str, run: Any) -> None:
    """``run(connection)`` on each host, one that cannot be reached reported."""
    for host in hosts:
        try:
            run(handle.connection(host))
        except HostError as exc:
            progress.message(f"{host.name}: {what} skipped ({exc})")


def _stop_metadata_proxies(handle: SiteHandle, progress: Progress, purge: bool) -> None:
    """The haproxies of neutron's metadata agent outlive it by design: stopped once it
    is (on a purge, their namespaces removed too)."""
    from onestack.services import neutron, nova

    if not nova.serves_metadata(handle.site):
        return
    ctx = service_context(handle, generate=False)
    _on_hosts(handle, neutron.agent_hosts(handle.site), progress, "stopping metadata proxies",
              lambda conn: conn.run(list(neutron.metadata_proxies_script(ctx, purge)),
                                    check=False))


def _remove_guests(handle: SiteHandle, progress: Progress) -> None:
    """Before a purge stops libvirt: every guest of the site stopped and undefined."""
    from onestack.services import libvirt

    ctx = service_context(handle, generate=False)

    def remove(conn: Any) -> None:
        gone = conn.run(list(libvirt.remove_guests_script(ctx)), check=False).split()
        if gone:
            progress.message(f"{conn.name}: removed guests {', '.join(gone)}")

    _on_hosts(handle, libvirt.hosts(handle.site), progress, "removing guests", remove)


def _remove_host_leftovers(handle: SiteHandle, progress: Progress) -> None:
    """After a purge stopped everything: the switch's kernel devices, the site's
    files outside its folder (sudoers) and guests nova made that libvirt still defines."""
    from onestack.services import libvirt, neutron, ovs

    ctx = service_context(handle, generate=False)
    agents = [h for h in neutron.agent_hosts(handle.site) if h.name != handle.site.controller.name]
    _on_hosts(handle, [handle.site.controller, *agents], progress, "removing host files",
              lambda conn: [conn.remove(p) for p in neutron.host_files(ctx)])
    _on_hosts(handle, ovs.hosts(handle.site), progress, "removing bridges",
              lambda conn: conn.run(list(ovs.remove_ports_argv(ctx)), check=False))
    _on_hosts(handle, libvirt.hosts(handle.site), progress, "removing host files",
              lambda conn: [conn.remove(p) for p in libvirt.host_files(ctx)])

    def remove_definitions(conn: Any) -> None:
        script = libvirt.remove_guest_leftovers_script(libvirt.instances_dir(ctx))
        gone = conn.run(list(script), check=False).split()
        if gone:
            progress.message(f"{conn.name}: removed definitions of guests {', '.join(gone)}")

    _on_hosts(handle, libvirt.hosts(handle.site), progress, "removing guest definitions",
              remove_definitions)


def _down_remote(handle: SiteHandle, host: Host, progress: Progress, purge: bool) -> None:
    """Stop the site's supervisord on another host (its programs stop with it)."""
    try:
        conn = handle.connection(host)
        sup = handle.supervisor_on(conn)
        if sup.is_running():
            progress.message(f"{host.name}: stopping {', '.join(sup.states()) or 'supervisord'}")
            sup.shutdown()
        if purge:
            conn.remove(handle.paths.site)
            conn.remove(handle.paths.sockets)
    except HostError as exc:
        progress.message(f"{host.name}: skipped, cannot be reached ({exc})")


def _stop_in_order(handle: SiteHandle, sup: SiteSupervisor, progress: Progress) -> None:
    """OpenStack services first (together), then infrastructure in reverse deploy order."""
    from onestack.services import registry

    ctx = service_context(handle, generate=False)
    running = set(sup.states())
    openstack = [p.name for m in registry.OPENSTACK for p in m.programs(ctx) if p.name in running]
    progress.message(f"stopping {', '.join(openstack) or 'no OpenStack services'}")
    sup.stop_many(openstack)
    for module in reversed(registry.INFRASTRUCTURE):
        names = [p.name for p in module.programs(ctx) if p.name in running]
        if names:
            progress.message(f"stopping {', '.join(names)}")
            sup.stop_many(names)


def _stop_epmd_if_unused(host: HostConnection, progress: Progress) -> None:
    if host.which("epmd") is None:
        return
    names = host.run(["epmd", "-names"], check=False)
    if "epmd: up and running" in names and "name " not in names:
        host.run(["epmd", "-kill"], check=False)
