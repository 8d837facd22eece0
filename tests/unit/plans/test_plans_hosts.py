"""The deploy plan of sites of 1, 3 and 50 hosts, as data: which steps run where."""

from __future__ import annotations

import configparser
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Address

import pytest

from onestack.core.step import Step, batches
from onestack.model.site import Host, Role, Site, default_lab_site
from onestack.plans.deploy import deploy_steps
from onestack.services import nova, registry
from onestack.services.base import ServiceContext
from onestack.steps.actions import WriteFile
from support.sites import fast, site_of

ContextFactory = Callable[..., ServiceContext]
CONTROL_PLANE = ("mariadb", "rabbitmq", "memcached", "haproxy", "keystone", "placement",
                 "glance", "neutron")
PER_COMPUTE = ("user", "dirs", "config:nova.conf", "program:nova-compute", "supervisor",
               "start:nova-compute")
PER_HOST = ("packages", "group", "dirs", "ca", "release-env", "supervisord-conf")



@pytest.fixture(params=[0, 2, 49], ids=["1-host", "3-hosts", "50-hosts"])
def site(request: pytest.FixtureRequest) -> Site:
    return fast(default_lab_site()) if request.param == 0 else site_of(request.param)


@pytest.fixture
def steps(site: Site, make_service_context: ContextFactory) -> list[Step]:
    return deploy_steps(make_service_context(site))


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_ids_unique_and_every_step_on_a_host_of_the_site(site: Site,
                                                         steps: list[Step]) -> None:
    assert len({s.id for s in steps}) == len(steps)
    assert {s.host for s in steps} == {h.name for h in site.hosts}


def test_step_counts_per_host(site: Site, steps: list[Step]) -> None:
    per_host = Counter(s.host for s in steps)
    remote = [h for h in site.computes if h.name != site.controller.name]
    for host in remote:
        assert per_host[host.name] == len(PER_HOST) + len(PER_COMPUTE) + 1  # internal CA
    # The controller: the same steps whatever the number of computes (97 in the fast
    # all-in-one, whose controller also runs nova-compute; no Day-1 network content
    # without a network back end), plus one "map into the cell" step per remote compute.
    # With other hosts: the internal CA, and the broker's certificate, key and CA.
    own_compute = 3 if remote else 0  # program, start, map of its own nova-compute
    tls = 4 if remote else 0
    assert per_host[site.controller.name] == 97 - own_compute + len(remote) + tls
    mapped = [s for s in steps if s.id.endswith("/discover-hosts")]
    assert {s.host for s in mapped} == {site.controller.name}
    assert len(mapped) == len(site.computes)


def test_nova_compute_on_each_compute_and_nothing_else_there(site: Site,
                                                             steps: list[Step]) -> None:
    for host in site.computes:
        starts = [s for s in steps if s.host == host.name and
                  s.id.endswith("start:nova-compute")]
        assert len(starts) == 1, host.name
    for host in (h for h in site.computes if h.name != site.controller.name):
        services = {s.service for s in steps if s.host == host.name}
        assert services == {"host", "nova"}
        programs = [s.id for s in steps if s.host == host.name and "program:" in s.id]
        assert programs == [f"nova/{host.name}/program:nova-compute"]


def test_control_plane_only_on_the_controller(site: Site, steps: list[Step]) -> None:
    for s in steps:
        if s.service in CONTROL_PLANE:
            assert s.host == site.controller.name, s.id
    for program in ("nova-api", "nova-conductor", "nova-scheduler"):
        assert [s.host for s in steps if s.id.endswith(f"start:{program}")] == \
            [site.controller.name]


def test_compute_config_names_its_host_and_reaches_the_controller(
        make_service_context: ContextFactory) -> None:
    site = site_of(2)
    steps = deploy_steps(make_service_context(site))
    conf = next(s.action for s in steps if s.id == "nova/cmp2/config:nova.conf")
    assert isinstance(conf, WriteFile)
    ini = _ini(conf.content)
    assert (ini["DEFAULT"]["host"], ini["DEFAULT"]["my_ip"]) == ("cmp2", "198.18.20.12")
    assert "@198.18.20.10:" in ini["DEFAULT"]["transport_url"]
    assert ini["placement"]["auth_url"].startswith("https://198.18.20.10:")
    # Computes go through conductor: no database credentials on them.
    assert not ini.has_section("database") and not ini.has_section("api_database")
    assert "127.0.0.1" not in conf.content


def test_no_loopback_in_what_other_hosts_reach(make_service_context: ContextFactory) -> None:
    """Broker, database and cache listen on, and are reached at, the controller's
    address; loopback stays only for what is reached from the same host: HAProxy's
    API backends, its stats socket, the broker's epmd and Erlang distribution."""
    local_only = ("bind_host", "http-socket", "server ", "bind 127.0.0.1:",
                  "ERL_EPMD_ADDRESS")
    steps = deploy_steps(make_service_context(site_of(2)))
    for s in steps:
        if isinstance(s.action, WriteFile):
            for line in s.action.content.splitlines():
                if "127.0.0.1" in line:
                    assert any(word in line for word in local_only), (s.id, line)


def test_controller_without_compute_role_runs_no_compute(
        make_service_context: ContextFactory) -> None:
    ctx = make_service_context(site_of(1))
    assert [p.name for p in nova.programs(ctx)] == ["nova-api", "nova-conductor",
                                                   "nova-scheduler"]
    assert [h.name for h in nova.hosts(ctx.site)] == ["ctl1", "cmp1"]
    assert all(m.hosts(ctx.site) == [ctx.site.controller] for m in registry.ALL
               if m.name not in ("nova", "ovs", "ovn", "libvirt"))
    assert all(m.hosts(ctx.site) == [] for m in registry.ALL
               if m.name in ("ovs", "ovn", "libvirt"))  # a fast site: none of them


def test_computes_fan_out_one_batch(steps: list[Step], site: Site) -> None:
    """Every host's base steps are one batch, every host's release beside the
    infrastructure another, the OpenStack services side by side a third, the other
    computes' nova steps a fourth; everything else waits for what comes before it."""
    remote = len([h for h in site.computes if h.name != site.controller.name])
    hosts = 1 + remote
    lanes = [len({s.runs_in for s in g}) for g in batches(steps) if len(g) > 1]
    assert lanes == [hosts, hosts + 4, 5] + ([remote] if remote else []) or \
        (hosts == 1 and lanes == [1, 5, 5])
    assert all(s.fanout == "" for g in batches(steps) if len(g) == 1 for s in g
               if s.host != site.controller.name) or remote == 0


def test_no_loopback_address_in_any_rendered_file_of_a_multi_host_site(
        make_service_context: ContextFactory) -> None:
    """Every service of a multi-host site is reached at its host's management address.
    One exception, named: the broker's Erlang distribution and its epmd stay on the
    broker's own loopback (a single node talks to no other; clustering is the HA work)."""
    files = {s.action.path: s.action.content for s in deploy_steps(
        make_service_context(site_of(2))) if isinstance(s.action, WriteFile)}
    node_local = ("ERL_EPMD_ADDRESS=\"127.0.0.1\"", "inet_dist_use_interface {127,0,0,1}",
                  "-multi@localhost\"")
    for path, content in files.items():
        if path.name == "rabbitmq.conf" and path.parent.name == "supervisor":
            for allowed in node_local:
                content = content.replace(allowed, "")
        for loopback in ("127.0.0.1", "localhost", "::1"):
            assert loopback not in content, f"{loopback} in {path}"


def test_placed_programs_name_every_host_of_the_site(
        make_service_context: ContextFactory) -> None:
    from onestack.plans.deploy import placed_programs

    placed = placed_programs(make_service_context(site_of(2)))
    assert ("cmp1", "nova", "nova-compute") in placed
    assert ("cmp2", "nova", "nova-compute") in placed
    assert ("ctl1", "nova", "nova-conductor") in placed
    assert not any(h != "ctl1" and p != "nova-compute" for h, _, p in placed)


def test_a_host_that_left_is_disabled_stopped_then_deleted_in_that_order(
        make_service_context: ContextFactory) -> None:
    from onestack.steps.actions import RetireCompute, StopSiteOnHost

    ctx = make_service_context(site_of(1))
    gone = Host(name="cmp9", address=IPv4Address("198.18.20.99"), roles=[Role.COMPUTE])
    tail = deploy_steps(ctx, retired=(gone,))[-3:]
    assert [(s.host, type(s.action).__name__) for s in tail] == [
        ("ctl1", "RetireCompute"), ("cmp9", "StopSiteOnHost"), ("ctl1", "RetireCompute")]
    first, _, last = (s.action for s in tail)
    assert isinstance(first, RetireCompute) and first.phase == RetireCompute.DISABLE
    assert isinstance(last, RetireCompute) and last.phase == RetireCompute.DELETE
    assert isinstance(tail[1].action, StopSiteOnHost)


def test_a_chassis_that_left_leaves_nothing_and_ovn_forgets_it(
        make_service_context: ContextFactory) -> None:
    # issue 19: a retired chassis's proxies, switch devices, sudoers and OVN row go too.
    from onestack.steps.actions import RunOnce, StopSiteOnHost
    from support.sites import site_of as sites_of

    ctx = make_service_context(sites_of(1, real=True))
    gone = Host(name="cmp9", address=IPv4Address("198.18.20.99"), roles=[Role.COMPUTE])
    tail = deploy_steps(ctx, retired=(gone,))[-4:]
    stop, forget = tail[1].action, tail[3]
    assert isinstance(stop, StopSiteOnHost) and tail[1].host == "cmp9"
    assert {p.name for p in stop.files} == {"onestack-multi-neutron", "onestack-multi-nova"}
    assert any("ovnmeta-" in " ".join(argv) for argv in stop.cleanup)  # purge namespaces
    assert any("nft delete table" in " ".join(argv) for argv in stop.cleanup)
    assert (forget.id, forget.host) == ("ovn/cmp9/forget-chassis", "ctl1")
    assert isinstance(forget.action, RunOnce)
    assert forget.action.argv[-3:] == ("--if-exists", "chassis-del", "cmp9")
