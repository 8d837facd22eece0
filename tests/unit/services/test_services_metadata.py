"""The metadata service as data: nova's metadata API and neutron's OVN agent on a site
with the OVN back end, none without; what ``down`` runs against the agent's haproxies."""

from __future__ import annotations

import configparser
import dataclasses
import signal
import subprocess
import sys
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from onestack.drivers.tls import HostCertificate, InternalTls
from onestack.model.site import Host, Role, Site, default_lab_site
from onestack.services import glance, haproxy, keystone, neutron, nova, placement
from onestack.services.base import ServiceContext
from onestack.steps.actions import WriteFile

ContextFactory = Callable[..., ServiceContext]


def site_of(computes: int) -> Site:
    """One controller (198.18.20.10, also the network host) and computes after it."""
    hosts = [Host(name="ctl1", address=IPv4Address("198.18.20.10"),
                  roles=[Role.CONTROLLER, Role.NETWORK])]
    hosts += [Host(name=f"cmp{i}", address=IPv4Address("198.18.20.10") + i,
                   roles=[Role.COMPUTE]) for i in range(1, computes + 1)]
    return Site(name="multi", release="2026.1", hosts=hosts)


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_nova_serves_metadata_and_shares_its_secret_with_the_agent(
        make_service_context: ContextFactory) -> None:
    ctx = make_service_context()
    files = nova.config(ctx)
    conf = _ini(files[ctx.etc("nova") / "nova.conf"])
    secret = ctx.secret(nova.METADATA_SECRET)
    assert conf["neutron"]["service_metadata_proxy"] == "true"
    assert conf["neutron"]["metadata_proxy_shared_secret"] == secret
    # Loopback only: the controller's agent and HAProxy reach it there.
    listen = f"http-socket = 127.0.0.1:{ctx.ports.infra('nova-metadata')}\n"
    assert listen in files[nova.metadata_ini_path(ctx)]
    assert nova.METADATA_MODULE in files[nova.metadata_ini_path(ctx)]
    program = next(p for p in nova.programs(ctx) if p.name == nova.METADATA_API)
    assert program.user == "nova" and program.environment == {
        "OS_NOVA_CONFIG_DIR": str(ctx.etc("nova"))}
    agent = _ini(neutron.config(ctx)[neutron.agent_conf_path(ctx)])
    assert agent["DEFAULT"]["metadata_proxy_shared_secret"] == secret
    assert agent["DEFAULT"]["nova_metadata_port"] == str(ctx.ports.infra("nova-metadata"))
    assert agent["DEFAULT"]["nova_metadata_host"] == "127.0.0.1"
    assert "nova_metadata_protocol" not in agent["DEFAULT"]
    assert agent["agent"]["extensions"] == "metadata"
    assert not nova.metadata_over_tls(ctx.site)
    assert "frontend nova-metadata" not in haproxy.render(ctx)


def test_agents_of_other_hosts_reach_the_metadata_api_over_mutual_tls(
        make_service_context: ContextFactory) -> None:
    # issue 21: nothing between hosts in the clear; HAProxy on the controller asks
    # every client for a certificate of the internal CA, then relays to loopback.
    internal = InternalTls("CA", {"ctl1": HostCertificate("C-ctl1\n", "K-ctl1\n"),
                                  "cmp1": HostCertificate("C-cmp1", "K-cmp1")})
    ctx = dataclasses.replace(make_service_context(site_of(1)), internal_tls=internal)
    port, api = ctx.ports.infra("nova-metadata-tls"), ctx.ports.infra("nova-metadata")
    assert nova.metadata_over_tls(ctx.site)
    cfg = haproxy.render(ctx)
    pem = ctx.etc_infra("haproxy") / "internal.pem"
    assert (f"frontend nova-metadata\n    bind 198.18.20.10:{port} ssl crt {pem} "
            f"ca-file {ctx.paths.internal_ca_cert} verify required\n") in cfg
    assert f"server nova-metadata 127.0.0.1:{api}\n" in cfg
    steps = {s.id: s.action for s in haproxy.steps(ctx)}
    written = steps["haproxy/certificate:internal"]
    assert isinstance(written, WriteFile) and written.owner == "root"
    assert (written.path, written.content, written.mode) == (pem, "C-ctl1\nK-ctl1\n", 0o600)
    compute = ctx.site.hosts[1]
    files = neutron.agent_tls_files(ctx, compute)
    ini = _ini(neutron.agent_config(ctx, compute)[neutron.agent_conf_path(ctx)])["DEFAULT"]
    etc = ctx.etc("neutron")
    assert {k: v for k, v in ini.items() if "nova" in k or k == "auth_ca_cert"} == {
        "nova_metadata_host": "198.18.20.10", "nova_metadata_port": str(port),
        "nova_metadata_protocol": "https", "auth_ca_cert": str(etc / "internal-ca.pem"),
        "nova_client_cert": str(etc / "host-cert.pem"),
        "nova_client_priv_key": str(etc / "host-key.pem")}
    assert files[etc / "host-key.pem"] == "K-cmp1"
    own = _ini(neutron.agent_config(ctx, ctx.site.hosts[0])[neutron.agent_conf_path(ctx)])
    own = own["DEFAULT"]
    assert own["nova_metadata_host"] == "127.0.0.1" and "auth_ca_cert" not in own


def test_every_api_writes_its_links_with_the_clients_scheme(
        make_service_context: ContextFactory) -> None:
    # Tempest's test_get_version_details followed an http:// link to the https frontend.
    ctx = make_service_context()
    assert haproxy.render(ctx).count("http-request set-header X-Forwarded-Proto https") == 5
    confs = {**keystone.config(ctx), **glance.config(ctx), **placement.config(ctx),
             **nova.config(ctx), **neutron.config(ctx)}
    for service, conf in (("keystone", "keystone.conf"), ("glance", "glance-api.conf"),
                          ("placement", "placement.conf"), ("nova", "nova.conf"),
                          ("neutron", "neutron.conf")):
        ini = _ini(confs[ctx.etc(service) / conf])
        assert ini["oslo_middleware"]["enable_proxy_headers_parsing"] == "true", service


def test_the_agent_runs_as_neutron_outside_a_pid_namespace_with_umask_007(
        make_service_context: ContextFactory) -> None:
    ctx = make_service_context()
    agent = neutron.agent_program(ctx)
    assert (agent.owns_tree, agent.umask, agent.user) == (False, 0o007, "neutron")
    files = neutron.config(ctx)
    ini = _ini(files[neutron.agent_conf_path(ctx)])
    venv = ctx.venv / "bin"
    for section in neutron.PRIVSEP_SECTIONS:
        assert ini[section]["helper_command"] == (
            f"sudo {venv}/privsep-helper --config-file {neutron.agent_conf_path(ctx)}")
    conf = neutron.rootwrap_conf_path(ctx)
    assert ini["agent"]["root_helper"] == f"sudo {venv}/neutron-rootwrap {conf}"
    rootwrap = _ini(files[conf])["DEFAULT"]
    assert rootwrap["filters_path"] == f"{ctx.venv}/etc/neutron/rootwrap.d"
    assert rootwrap["exec_dirs"] == "/sbin,/usr/sbin,/bin,/usr/bin"


def test_the_agents_sudo_rule_names_its_helpers_and_configuration(
        make_service_context: ContextFactory) -> None:
    ctx = make_service_context()
    home, site = ctx.paths.home, ctx.paths.site
    assert neutron.agent_sudoers(ctx).splitlines() == [
        f"neutron ALL=(root) NOPASSWD: {home}/releases/*/venv/bin/privsep-helper "
        f"--config-file {site}/etc/*/neutron/ovn_agent.ini *",
        f"neutron ALL=(root) NOPASSWD: {home}/releases/*/venv/bin/neutron-rootwrap "
        f"{site}/etc/*/neutron/rootwrap.conf *"]
    write = next(s.action for s in neutron.steps(ctx) if s.id == "neutron/sudoers")
    assert write.path == Path(f"/etc/sudoers.d/onestack-{ctx.site.name}-neutron")  # type: ignore[attr-defined]
    assert write.mode == 0o440  # type: ignore[attr-defined]
    assert neutron.host_files(ctx) == (write.path,)  # type: ignore[attr-defined]


def test_no_metadata_service_without_ovn(make_service_context: ContextFactory) -> None:
    site = Site(name="lab", release="2026.1", compute_driver="fake", network="none",
                hosts=[Host(name="aio", address="127.0.0.1")])
    ctx = make_service_context(site)
    assert nova.METADATA_API not in {p.name for p in nova.programs(ctx)}
    assert neutron.AGENT not in {p.name for p in neutron.programs(ctx)}
    assert "service_metadata_proxy" not in nova.config(ctx)[ctx.etc("nova") / "nova.conf"]
    assert set(neutron.config(ctx)) == {ctx.etc("neutron") / "neutron.conf",
                                        ctx.etc("neutron") / "plugins/ml2/ml2_conf.ini",
                                        ctx.etc("neutron") / "neutron-api-blue.ini"}
    assert default_lab_site().network.value == "ovn"


def test_down_stops_the_agents_haproxies_and_only_them(
        make_service_context: ContextFactory) -> None:
    ctx = make_service_context()
    pids = neutron.agent_state(ctx) / "external" / "pids"
    pids.mkdir(parents=True)
    proxy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                              "haproxy", "-f", "net-1.conf"])
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (pids / "net-1.pid.haproxy").write_text(f"{proxy.pid}\n")
    (pids / "net-2.pid.haproxy").write_text(f"{bystander.pid}\n")  # a stale pid, reused
    try:
        subprocess.run(list(neutron.metadata_proxies_script(ctx, purge=False)), check=True)
        assert proxy.wait(timeout=5) == -signal.SIGTERM
        assert bystander.poll() is None
        assert list(pids.iterdir()) == []
    finally:
        for proc in (proxy, bystander):
            proc.kill()
            proc.wait()
    assert "ip netns delete" in neutron.metadata_proxies_script(ctx, purge=True)[2]
    assert "ip netns" not in neutron.metadata_proxies_script(ctx, purge=False)[2]
