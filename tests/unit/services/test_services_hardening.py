"""Least privilege in what the service modules render (issue 12, items 1, 2, 4, 5, 6)."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

import pytest

from onestack.core.step import Step
from onestack.model.site import Host, Role, default_lab_site
from onestack.services import haproxy, mariadb, oslo, rabbitmq
from onestack.services.base import ServiceContext
from onestack.steps.actions import CallOnce, WriteFile

ContextFactory = Callable[..., ServiceContext]


@pytest.fixture
def ctx(make_service_context: ContextFactory) -> ServiceContext:
    return make_service_context()


def _step(steps: list[Step], suffix: str) -> Step:
    return next(s for s in steps if s.id.endswith(suffix))


def test_rabbitmq_distribution_and_epmd_on_loopback_with_the_sites_cookie(
        ctx: ServiceContext) -> None:
    [program] = rabbitmq.programs(ctx)
    env = program.environment
    assert env["ERL_EPMD_ADDRESS"] == "127.0.0.1"
    assert env["ERL_EPMD_PORT"] == str(ctx.ports.infra("rabbitmq-epmd")) != "4369"
    assert "inet_dist_use_interface {127,0,0,1}" in env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    assert env["HOME"] == str(rabbitmq.cookie_path(ctx).parent)  # not /var/lib/rabbitmq
    cookie = _step(rabbitmq.steps(ctx), "/cookie").action
    assert isinstance(cookie, WriteFile)
    assert (cookie.mode, cookie.owner) == (0o400, "rabbitmq")
    assert cookie.content == ctx.secret("rabbitmq.cookie")


def test_rabbitmq_guest_is_not_let_in_from_anywhere(ctx: ServiceContext) -> None:
    conf = next(c for p, c in rabbitmq._config(ctx).items() if p.name == "rabbitmq.conf")
    assert "loopback_users" not in conf  # the default keeps guest loopback-only


def test_rabbitmq_measures_its_memory_without_reading_another_pids_proc(
        ctx: ServiceContext) -> None:
    # In its own PID namespace over the host's /proc, /proc/<its pid> is someone
    # else's; on a lab host there was none and the broker would not start (issue 22).
    conf = next(c for p, c in rabbitmq._config(ctx).items() if p.name == "rabbitmq.conf")
    assert "vm_memory_calculation_strategy = allocated\n" in conf


class _RecordingHost:
    name = "aio"

    def __init__(self, users: str) -> None:
        self.users = users
        self.calls: list[tuple[list[str], str | None]] = []

    def run(self, argv: Any, *, env: Any = None, cwd: Any = None, timeout: float = 600,
            check: bool = True, input: str | None = None) -> str:
        self.calls.append((list(argv), input))
        return self.users if "list_users" in argv else ""


def test_rabbitmq_password_goes_on_stdin_and_guest_is_deleted(ctx: ServiceContext) -> None:
    action = _step(rabbitmq.steps(ctx), "/user").action
    assert isinstance(action, CallOnce)
    host = _RecordingHost("guest\t[administrator]\n")

    class _Ctx:
        pass

    hc = _Ctx()
    hc.host = host  # type: ignore[attr-defined]
    action.apply(hc)  # type: ignore[arg-type]
    password = ctx.secret("rabbitmq.openstack")
    assert not any(password in " ".join(argv) for argv, _ in host.calls)
    assert (rabbitmq.rabbitmqctl(ctx, "add_user", "openstack"), password + "\n") in host.calls
    assert (rabbitmq.rabbitmqctl(ctx, "delete_user", "guest"), None) in host.calls


def test_database_users_only_for_the_controllers(make_service_context: ContextFactory) -> None:
    lab = make_service_context()
    assert mariadb.client_hosts(lab) == ("127.0.0.1",)
    site = default_lab_site().model_copy(update={"hosts": [
        Host(name="ctl", address=IPv4Address("198.18.0.11"), roles=[Role.CONTROLLER]),
        Host(name="cmp1", address=IPv4Address("198.18.0.12"), roles=[Role.COMPUTE])]})
    assert mariadb.client_hosts(make_service_context(site)) == ("198.18.0.11",)


def test_haproxy_workers_unprivileged_stats_behind_a_password(ctx: ServiceContext) -> None:
    cfg = haproxy.render(ctx)
    assert "\n    user haproxy\n    group haproxy\n" in cfg
    assert f"\n    chroot {haproxy.chroot_dir(ctx)}\n" in cfg
    assert f"stats auth onestack:{ctx.secret('haproxy.stats')}" in cfg
    written = [s.action for s in haproxy.steps(ctx) if isinstance(s.action, WriteFile)
               and s.action.path.parent == haproxy.config_path(ctx).parent]
    assert len(written) == 2
    assert all(a.mode == 0o600 for a in written)  # the password is in there


def test_cached_tokens_are_encrypted_in_memcached(ctx: ServiceContext) -> None:
    section = oslo.authtoken(ctx, "glance")
    assert section["memcache_security_strategy"] == "ENCRYPT"
    assert section["memcache_secret_key"] == ctx.secret("memcache.secret")


OPENSTACK = ("keystone", "placement", "glance", "neutron", "nova")
# The one OpenStack program that runs as root: neutron's OVN agent makes namespaces,
# veths in the switch and iptables rules; its metadata haproxies run as neutron.
ROOT_PROGRAMS: frozenset[str] = frozenset()  # issue 21: the OVN agent was root


def test_the_metadata_agent_and_its_proxies_are_neutrons(ctx: ServiceContext) -> None:
    from onestack.services import neutron

    ini = dict(neutron.config(ctx))[neutron.agent_conf_path(ctx)]
    assert "metadata_proxy_user = neutron\n" in ini
    assert "metadata_proxy_group = neutron\n" in ini
    assert [p.name for p in neutron.programs(ctx) if p.user is None] == []
    assert neutron.agent_program(ctx).user == "neutron"


@pytest.mark.parametrize("service", OPENSTACK)
def test_openstack_services_run_as_their_own_user(ctx: ServiceContext, service: str) -> None:
    from onestack.services import registry

    module = registry.by_name(service)
    steps = module.steps(ctx)
    ids = [s.id for s in steps]
    # The account exists before any file is given to its group.
    assert ids.index(f"{service}/user") < min(i for i, s in enumerate(ids) if "config:" in s)
    for program in module.programs(ctx):
        if program.name in ROOT_PROGRAMS:  # needs root; what it starts drops to the user
            assert program.user is None and program.group is None, program.name
            continue
        assert program.user == service, program.name
    configs = [s.action for s in steps if isinstance(s.action, WriteFile)
               and ctx.etc(service) in s.action.path.parents]
    assert configs, service
    for action in configs:  # secrets inside: root's, readable by the service's group only
        assert (action.owner, action.mode) == (f"root:{service}", 0o640), action.path


@pytest.mark.parametrize("service", OPENSTACK)
def test_migrations_and_checks_run_as_the_service_user(ctx: ServiceContext,
                                                       service: str) -> None:
    from onestack.services import registry

    module = registry.by_name(service)
    commands = [module.upgrade_check(ctx), *(argv for _, argv in module.expand(ctx)),
                *(argv for _, argv in module.contract(ctx))]
    for argv in commands:
        assert argv[:5] == ("/usr/bin/setpriv", f"--reuid={service}", f"--regid={service}",
                            "--init-groups", "--"), argv


def test_keystone_keeps_every_key_inside_the_site(ctx: ServiceContext) -> None:
    from onestack.services import keystone

    conf = next(c for p, c in keystone.config(ctx).items() if p.name == "keystone.conf")
    repos = [line.split(" = ", 1)[1] for line in conf.splitlines()
             if line.startswith("key_repository = ")]
    assert len(repos) == 3  # fernet_tokens, fernet_receipts, credential
    assert all(r.startswith(str(ctx.paths.data)) for r in repos), repos


def test_no_service_user_is_sent_into_the_sites_log_folder(ctx: ServiceContext) -> None:
    # issue 21: the log folder is root's alone (0750), so a program that runs as a
    # service user neither starts in it nor finds a path of its own there.
    from onestack.drivers.processes import MARKER_VARIABLE
    from onestack.drivers.supervisor import LOG_FOLDER_MODE, render_program
    from onestack.plans.deploy import deploy_steps
    from onestack.services import registry
    from onestack.steps.actions import EnsureDirs

    log = str(ctx.paths.log)
    users = [p for m in registry.ALL for p in m.programs(ctx) if p.user]
    assert {p.user for p in users} >= {"rabbitmq", "nova", "keystone"}
    for program in users:
        assert "\ndirectory=/\n" in render_program(program, ctx.paths.log)
        paths = [v for k, v in program.environment.items() if k != MARKER_VARIABLE]
        assert not [v for v in paths if log in v], program.name
    dirs = _step(deploy_steps(ctx), "host/dirs").action
    assert isinstance(dirs, EnsureDirs)
    assert (ctx.paths.log, None, LOG_FOLDER_MODE) in dirs.dirs and LOG_FOLDER_MODE == 0o750
