"""The all-in-one deploy plan of the default lab site, as data."""

from __future__ import annotations

import configparser
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from onestack.core.progress import SilentProgress
from onestack.core.step import Step, batches, make_plan
from onestack.drivers.host import LocalHost
from onestack.model.site import default_lab_site
from onestack.plans.deploy import CLOUD_NAME, deploy_steps, required_secrets
from onestack.services import registry
from onestack.services.base import ServiceContext
from onestack.steps.actions import (
    EnsureDirs,
    EnsureSystemGroup,
    EnsureSystemUser,
    WriteFile,
    WriteOperatorFile,
)
from onestack.steps.context import HostContext
from support.sites import fast

# The make_service_context fixture (tests/conftest.py) builds these.
ContextFactory = Callable[..., ServiceContext]


@pytest.fixture
def ctx(make_service_context: ContextFactory) -> ServiceContext:
    return make_service_context()


@pytest.fixture
def steps(ctx: ServiceContext) -> list[Step]:
    return deploy_steps(ctx)


def _index(steps: list[Step], step_id: str) -> int:
    return [s.id for s in steps].index(step_id)


def _first(steps: list[Step], service: str) -> int:
    return next(i for i, s in enumerate(steps) if s.service == service)


def _last(steps: list[Step], service: str) -> int:
    return max(i for i, s in enumerate(steps) if s.service == service)


def _files(steps: list[Step]) -> dict[str, WriteFile | WriteOperatorFile]:
    """Every file a plan writes: on its hosts, and the operator's on this machine."""
    return {s.id: s.action for s in steps
            if isinstance(s.action, (WriteFile, WriteOperatorFile))}


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_step_ids_unique_and_services_known(steps: list[Step]) -> None:
    ids = [s.id for s in steps]
    assert len(ids) == len(set(ids))
    known = {m.name for m in registry.ALL} | {"host"}
    assert {s.service for s in steps} == known
    assert all(s.id.startswith(s.service + "/") for s in steps)
    assert all(s.host == "aio" for s in steps)


def test_packages_come_first(steps: list[Step]) -> None:
    assert steps[0].id == "host/packages"
    assert set(steps[0].action.packages) == {  # type: ignore[attr-defined]
        "mariadb-server", "mariadb-client", "rabbitmq-server", "memcached", "haproxy",
        "tini", "util-linux", "python3", "openvswitch-switch", "nftables", "ovn-central",
        "ovn-host",
        "iproute2", "iptables",
        "libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients", "qemu-system-x86",
        "qemu-utils", "genisoimage", "sudo", "python3-libvirt"}


def test_a_fast_site_installs_only_the_core_infrastructure(
        make_service_context: ContextFactory) -> None:
    steps = deploy_steps(make_service_context(fast(default_lab_site())))
    assert set(steps[0].action.packages) == {  # type: ignore[attr-defined]
        "mariadb-server", "mariadb-client", "rabbitmq-server", "memcached", "haproxy",
        "tini", "util-linux", "python3"}


def _batch_of(steps: list[Step], step_id: str) -> list[Step]:
    return next(b for b in batches(steps) if step_id in {s.id for s in b})


def test_system_users_first_then_infrastructure_beside_the_release(
        steps: list[Step]) -> None:
    users = [i for i, s in enumerate(steps) if isinstance(s.action, EnsureSystemUser)]
    batch = _batch_of(steps, "host/release-env")
    assert max(users) < _index(steps, batch[0].id)  # useradd one at a time, before
    assert {s.runs_in for s in batch} == {"aio", "mariadb", "rabbitmq", "memcached",
                                          "haproxy", "network", "libvirt"}
    assert {s.service for s in batch} == {"host", "mariadb", "rabbitmq", "memcached",
                                          "haproxy", "ovs", "ovn", "libvirt"}


def test_openstack_services_side_by_side_once_the_infrastructure_answers(
        steps: list[Step]) -> None:
    infra = _batch_of(steps, "host/release-env")
    services = _batch_of(steps, "keystone/db-sync")
    assert _index(steps, infra[-1].id) < _index(steps, services[0].id)
    assert {s.runs_in for s in services} == {"keystone", "placement", "glance", "neutron",
                                             "nova"}
    for lane in ("keystone", "placement", "glance", "neutron"):  # their own programs too
        assert f"{lane}/supervisor" in {s.id for s in services if s.runs_in == lane}


def test_catalog_right_after_keystone_start_in_keystones_lane(steps: list[Step]) -> None:
    lane = [s.id for s in _batch_of(steps, "keystone/catalog") if s.runs_in == "keystone"]
    assert lane[-2:] == ["keystone/start:keystone-api", "keystone/catalog"]


def test_nova_starts_its_programs_once_every_other_service_is_up(steps: list[Step]) -> None:
    nova_lane = [s.id for s in _batch_of(steps, "nova/db-sync") if s.runs_in == "nova"]
    assert "nova/db-sync" in nova_lane and not [i for i in nova_lane if "program:" in i]
    services = _batch_of(steps, "nova/db-sync")
    assert _index(steps, services[-1].id) < _index(steps, "nova/program:nova-api")
    assert [s.id for s in steps[-10:]] == [
        "nova/discover-hosts", "nova/flavors", "host/address:br-ex", "neutron/network:public",
        "neutron/subnet:public-subnet", "neutron/network:private",
        "neutron/subnet:private-subnet", "neutron/router:router1", "glance/test-image",
        "host/clouds-yaml"]


def test_each_service_writes_programs_before_loading_then_starts(steps: list[Step]) -> None:
    for module in registry.ALL:
        own = [s.id.split("/", 1)[1] for s in steps if s.service == module.name]
        sup = own.index("supervisor")
        assert all(own.index(n) < sup for n in own if n.startswith("program:")), module.name
        assert all(own.index(n) > sup for n in own if n.startswith("start:")), module.name
        assert all(own.index(n) < sup for n in own if n.startswith("config:")), module.name


@pytest.mark.parametrize("service", [m.name for m in registry.OPENSTACK if m.name != "keystone"])
def test_openstack_config_has_authtoken_and_database(ctx: ServiceContext, steps: list[Step],
                                                     service: str) -> None:
    main = next(a for i, a in _files(steps).items()
                if i.startswith(f"{service}/config:") and a.path.name.endswith(".conf"))
    conf = _ini(main.content)
    auth = conf["keystone_authtoken"]
    assert auth["www_authenticate_uri"] == "https://127.0.0.1:5000"
    assert auth["auth_url"] == "https://127.0.0.1:5000/v3"
    assert auth["cafile"] == str(ctx.paths.ca_cert)  # issue 21: the APIs speak TLS
    assert auth["username"] == service
    assert auth["password"] == ctx.secret(f"keystone.{service}")
    # memcached on its socket only (issue 21: any local user read cached admin tokens)
    assert auth["memcached_servers"] == f"unix:{ctx.paths.run}/memcached/memcached.sock"
    section = "placement_database" if service == "placement" else "database"
    assert f":{ctx.secret(f'db.{service}')}@127.0.0.1:13306/" in conf[section]["connection"]
    assert main.mode == 0o640


def test_messaging_services_have_transport_url(ctx: ServiceContext, steps: list[Step]) -> None:
    files = _files(steps)
    for step_id in ("nova/config:nova.conf", "neutron/config:neutron.conf"):
        url = _ini(files[step_id].content)["DEFAULT"]["transport_url"]
        assert url == f"rabbit://openstack:{ctx.secret('rabbitmq.openstack')}@127.0.0.1:5682/"


def test_keystone_config(ctx: ServiceContext, steps: list[Step]) -> None:
    conf = _ini(_files(steps)["keystone/config:keystone.conf"].content)
    assert conf["token"]["provider"] == "fernet"
    assert ctx.secret("db.keystone") in conf["database"]["connection"]


def test_no_secret_in_summaries_or_plan_output(ctx: ServiceContext, steps: list[Step]) -> None:
    plan = make_plan("up", steps, {}, {})
    shown = json.dumps(plan.to_dict()) + "".join(s.summary + s.id for s in steps)
    shown += "".join(s.fingerprint() for s in steps)
    for name, value in ctx.secrets.items():
        assert value not in shown, name


def test_files_with_secrets_are_not_world_readable(ctx: ServiceContext,
                                                   steps: list[Step]) -> None:
    values = list(ctx.secrets.values())
    holding = {i: a for i, a in _files(steps).items() if any(v in a.content for v in values)}
    assert "host/clouds-yaml" in holding and "nova/config:nova.conf" in holding
    for step_id, action in holding.items():
        assert action.mode & 0o007 == 0, step_id


def test_admin_password_only_via_environment(ctx: ServiceContext, steps: list[Step]) -> None:
    bootstrap = steps[_index(steps, "keystone/bootstrap")].action
    assert ctx.secret("keystone.admin") not in " ".join(bootstrap.argv)  # type: ignore[attr-defined]
    assert ("OS_BOOTSTRAP_PASSWORD", ctx.secret("keystone.admin")) in bootstrap.env  # type: ignore[attr-defined]


def test_plan_is_deterministic(ctx: ServiceContext) -> None:
    first = [(s.id, s.fingerprint()) for s in deploy_steps(ctx)]
    assert first == [(s.id, s.fingerprint()) for s in deploy_steps(ctx)]


@pytest.mark.parametrize(("secret", "expected"), [
    ("keystone.admin", {"keystone/bootstrap"}),
    ("keystone.nova", {"keystone/catalog"}),
])
def test_changed_secret_makes_dependent_steps_needed(ctx: ServiceContext, secret: str,
                                                     expected: set[str]) -> None:
    done = {s.id: s.fingerprint() for s in deploy_steps(ctx)}
    changed = ServiceContext(ctx.site, ctx.series, ctx.paths,
                             {**ctx.secrets, secret: "changed"}, ctx.venv, ctx.ports)
    plan = make_plan("up", deploy_steps(changed), {}, done)
    assert {s.id for s in plan.changes if s.action.kind in ("command", "call")} == expected


def _port_values(text: str) -> set[int]:
    return {int(p) for p in re.findall(r"(?:127\.0\.0\.1:|port = )(\d+)", text)}


def test_port_offset_shifts_rendered_ports(make_service_context: ContextFactory) -> None:
    site = default_lab_site().model_copy(update={"port_offset": 1000})
    files = _files(deploy_steps(make_service_context(site)))
    haproxy = files["haproxy/config:haproxy.cfg"].content
    assert "bind 127.0.0.1:6000" in haproxy
    assert "server keystone-blue 127.0.0.1:26000 check" in haproxy
    assert "server keystone-green 127.0.0.1:16000 check disabled" in haproxy
    assert "bind 127.0.0.1:5000 " not in haproxy
    assert "port = 14306" in files["mariadb/config:my.cnf"].content
    assert "http-socket = 127.0.0.1:29778" in files[
        "placement/config:placement-api-blue.ini"].content
    nova = _ini(files["nova/config:nova.conf"].content)
    assert nova["keystone_authtoken"]["auth_url"] == "https://127.0.0.1:6000/v3"
    assert nova["DEFAULT"]["transport_url"].endswith("@127.0.0.1:6682/")
    assert nova["cache"]["memcache_servers"].startswith("unix:")
    clouds = yaml.safe_load(files["host/clouds-yaml"].content)
    assert clouds["clouds"][CLOUD_NAME]["auth"]["auth_url"] == "https://127.0.0.1:6000/v3"
    unshifted = files["nova/config:nova.conf"].content
    assert not _port_values(unshifted) & {5000, 13306, 5682, 11212}


def test_clouds_yaml_written_0600(ctx: ServiceContext, steps: list[Step],
                                  tmp_path: Path) -> None:
    action = _files(steps)["host/clouds-yaml"]
    assert action.path == ctx.paths.clouds_yaml
    hctx = HostContext(LocalHost("aio"), ctx.paths, None, SilentProgress())  # type: ignore[arg-type]
    action.apply(hctx)
    assert ctx.paths.clouds_yaml.stat().st_mode & 0o777 == 0o600
    cloud = yaml.safe_load(ctx.paths.clouds_yaml.read_text())["clouds"][CLOUD_NAME]
    assert cloud["auth"]["password"] == ctx.secret("keystone.admin")
    assert cloud["auth"]["auth_url"] == "https://127.0.0.1:5000/v3"
    assert cloud["cacert"] == str(ctx.paths.ca_cert)
    assert cloud["region_name"] == "RegionOne"


def test_required_secrets_cover_every_service_user() -> None:
    names = set(required_secrets())
    for user in registry.service_users():
        assert {f"db.{user}", f"keystone.{user}"} <= names
    assert {"keystone.admin", "rabbitmq.openstack", "db.keystone"} <= names


def test_the_sites_folder_is_for_its_group_only(ctx: ServiceContext, steps: list[Step]) -> None:
    # issue 21: an unprivileged local user must read no file of the site: the folder
    # itself is root:onestack 0750, not recursively (guests' disks change hands).
    by_id = {s.id: s.action for s in steps}
    assert by_id["host/group"] == EnsureSystemGroup("onestack")
    dirs = by_id["host/dirs"]
    assert isinstance(dirs, EnsureDirs) and not dirs.recursive
    assert (ctx.paths.site, "root:onestack", 0o750) in dirs.dirs
    order = [s.id for s in steps]
    assert order.index("host/group") < order.index("host/dirs")
    # Every user that works inside it joins the group before its program starts.
    members = {s.action.name: s.action.groups for s in steps
               if isinstance(s.action, EnsureSystemUser)}
    for user in ("keystone", "glance", "placement", "nova", "neutron", "mysql", "rabbitmq",
                 "memcache"):
        assert "onestack" in members[user], user
    for service, user in (("mariadb", "mysql"), ("rabbitmq", "rabbitmq"),
                          ("memcached", "memcache")):
        assert order.index(f"{service}/user:{user}") < order.index(f"{service}/start:{service}")
