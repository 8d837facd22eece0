"""Service modules: registry, programs, catalog, HAProxy, uWSGI and shared helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from onestack.drivers.probes import HttpProbe, TcpProbe
from onestack.drivers.supervisor import Program
from onestack.model.ports import API_HEALTH_PATHS, API_PORTS
from onestack.model.site import default_lab_site
from onestack.plans.deploy import catalog_entries
from onestack.services import haproxy, mariadb, rabbitmq, registry, uwsgi
from onestack.services.base import ServiceContext, program_steps
from onestack.steps.actions import StartProgram, UpdateSupervisor, WriteFile

# The make_service_context fixture (tests/conftest.py) builds these.
ContextFactory = Callable[..., ServiceContext]


@pytest.fixture
def ctx(make_service_context: ContextFactory) -> ServiceContext:
    return make_service_context()


def test_registry_order_and_lookup() -> None:
    assert [m.name for m in registry.ALL] == ["mariadb", "rabbitmq", "memcached", "haproxy",
                                              "ovs", "ovn", "libvirt", "keystone", "placement",
                                              "glance", "neutron", "nova"]
    assert all(m.kind == "infra" for m in registry.INFRASTRUCTURE)
    assert all(m.kind == "openstack" for m in registry.OPENSTACK)
    assert registry.by_name("glance").name == "glance"
    with pytest.raises(KeyError):
        registry.by_name("swift")
    assert registry.service_users() == ["placement", "glance", "neutron", "nova"]


def test_every_module_has_the_service_interface(ctx: ServiceContext) -> None:
    for module in registry.ALL:
        assert module.steps(ctx), module.name
        assert module.checks(ctx), module.name
        assert all(isinstance(p, Program) for p in module.programs(ctx)), module.name


def test_program_names_unique_and_each_started(ctx: ServiceContext) -> None:
    names = [p.name for m in registry.ALL for p in m.programs(ctx)]
    assert len(names) == len(set(names))
    started = {s.action.program for m in registry.ALL for s in m.steps(ctx)  # type: ignore[attr-defined]
               if isinstance(s.action, StartProgram)}
    assert started == set(names)


def test_api_programs_wait_on_backend_and_haproxy(ctx: ServiceContext) -> None:
    for module in registry.OPENSTACK:
        start = next(s.action for s in module.steps(ctx)
                     if isinstance(s.action, StartProgram) and s.id.endswith("-api"))
        urls = [p.url for p in start.probe_checks if isinstance(p, HttpProbe)]
        assert urls[0].startswith(f"http://127.0.0.1:{ctx.ports.backend(module.name)}/")
        assert urls[1].startswith(f"https://127.0.0.1:{ctx.ports.frontend(module.name)}/")
        cafiles = [p.cafile for p in start.probe_checks if isinstance(p, HttpProbe)]
        assert cafiles == ["", str(ctx.paths.ca_cert)]  # the frontend's chain is checked


def test_catalog_entries(ctx: ServiceContext) -> None:
    entries = {e.name: e for e in catalog_entries(ctx)}
    assert set(entries) == {m.name for m in registry.OPENSTACK}
    assert entries["keystone"].type == "identity"
    assert entries["keystone"].url == "https://127.0.0.1:5000/v3"
    assert entries["keystone"].password is None
    assert entries["nova"].url == "https://127.0.0.1:8774/v2.1"
    for user in registry.service_users():
        assert entries[user].user == user
        assert entries[user].password == ctx.secret(f"keystone.{user}")


def test_haproxy_frontends_and_blue_green_backends(ctx: ServiceContext) -> None:
    files = {a.path.name: a.content for s in haproxy.steps(ctx)
             if isinstance(a := s.action, WriteFile)}
    text = files["haproxy.cfg"]
    assert f"lua-load {haproxy.hold_script_path(ctx)}\n" in text
    assert files["hold.lua"] == haproxy.HOLD_LUA
    for api, (front, blue, green) in API_PORTS.items():
        assert f"bind 127.0.0.1:{front} ssl crt {ctx.paths.api_cert}\n" in text
        assert f"http-request lua.wait_for_server {api} {haproxy.HOLD_MS}\n" in text
        assert f"server {api}-blue 127.0.0.1:{blue} check\n" in text
        assert f"server {api}-green 127.0.0.1:{green} check disabled\n" in text
        assert f"option httpchk GET {API_HEALTH_PATHS[api]}\n" in text
    assert f"stats socket {ctx.paths.run / 'haproxy.sock'} mode 600" in text
    assert isinstance(haproxy.checks(ctx)[0].probe, TcpProbe)


def test_uwsgi_instance_per_color(ctx: ServiceContext) -> None:
    blue = uwsgi.ini(ctx, "glance", "glance.wsgi.api:application")
    green = uwsgi.ini(ctx, "glance", "glance.wsgi.api:application", color="green")
    assert "http-socket = 127.0.0.1:29292\n" in blue
    assert "http-socket = 127.0.0.1:19292\n" in green
    assert "procname-prefix = glance-green-\n" in green
    program = uwsgi.program(ctx, "glance", "green")
    assert program.name == "glance-api-green"
    assert program.environment["OS_GLANCE_CONFIG_DIR"] == str(ctx.etc("glance"))
    assert program.user == "glance"
    assert program.command[-1] == str(uwsgi.ini_path(ctx, "glance", "green"))
    assert uwsgi.program(ctx, "glance").name == "glance-api"


def test_infrastructure_urls(ctx: ServiceContext) -> None:
    assert mariadb.url(ctx, "nova_cell0") == (
        f"mysql+pymysql://nova:{ctx.secret('db.nova')}@127.0.0.1:13306/nova_cell0"
        "?charset=utf8mb4")
    assert set(mariadb.DATABASES.values()) == {"keystone", "glance", "placement", "nova",
                                               "neutron"}
    env = rabbitmq.environment(ctx)
    assert env["RABBITMQ_NODENAME"] == "onestack-lab@localhost"
    assert (env["RABBITMQ_NODE_PORT"], env["RABBITMQ_DIST_PORT"]) == ("5682", "25682")
    assert env["RABBITMQ_MNESIA_BASE"].startswith(str(ctx.paths.data))


def test_infrastructure_uses_site_dirs_not_distribution_defaults(ctx: ServiceContext) -> None:
    my_cnf = next(a.content for s in mariadb.steps(ctx) if isinstance(a := s.action, WriteFile)
                  and a.path.name == "my.cnf")
    assert f"datadir = {ctx.paths.data / 'mariadb'}" in my_cnf
    assert "/var/lib/mysql" not in my_cnf


def test_config_change_restarts_program_but_keeps_definition(ctx: ServiceContext,
                                                             tmp_path: Path) -> None:
    program = [Program("svc", ["/bin/svc"])]

    def by_kind(conf: str) -> dict[str, str]:
        steps = program_steps(ctx, "svc", program, {tmp_path / "svc.conf": conf}, {})
        return {type(s.action).__name__: s.fingerprint() for s in steps}

    old, new = by_kind("a = 1\n"), by_kind("a = 2\n")
    assert old[WriteFile.__name__] == new[WriteFile.__name__]
    assert old[UpdateSupervisor.__name__] == new[UpdateSupervisor.__name__]
    assert old[StartProgram.__name__] != new[StartProgram.__name__]


def test_other_site_name_gives_other_rabbitmq_node(make_service_context: ContextFactory) -> None:
    ctx = make_service_context(default_lab_site("lab2"))
    assert rabbitmq.node_name(ctx) == "onestack-lab2@localhost"
    assert ctx.paths.site.name == "lab2"


def test_nova_backport_script_travels_with_its_command(
        make_service_context: ContextFactory, tmp_path: Path) -> None:
    # issue 22 (ADR 0027): the script was named by its path in onestack's source on
    # the deploy host, which a controller reached over SSH does not have.
    from typing import Any

    from onestack.core.progress import SilentProgress
    from onestack.services import nova
    from onestack.steps.context import HostContext

    older = make_service_context(series="2026.1")
    newer = make_service_context(series="2026.2")
    nova._RELEASE_FACTS[older.bin("python")] = (72, "{}")
    seen: list[tuple[list[str], str | None, dict[str, str]]] = []

    class Controller:
        name = "ctl1"

        def run(self, argv: Any, *, env: Any = None, input: str | None = None,
                **_: Any) -> str:
            seen.append((list(argv), input, dict(env or {})))
            return "backported 0 objects\n"

    action = nova.before_rollback(newer, older)
    action.apply(HostContext(Controller(), older.paths, None, SilentProgress()))  # type: ignore[arg-type]
    argv, text, env = seen[0]
    assert argv == [newer.bin("python"), "-"]
    assert text is not None and "ONESTACK_NOVA_MANIFEST" in text
    assert env["ONESTACK_NOVA_MANIFEST"] == "{}"
    assert not any("scripts" in a for a in argv)
