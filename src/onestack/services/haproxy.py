"""HAProxy: every OpenStack API is reached through a frontend here, so a second
(green) instance can be put behind it during an upgrade."""

from __future__ import annotations

from pathlib import Path

from onestack.core.step import Step
from onestack.drivers import tls
from onestack.drivers.probes import TcpProbe
from onestack.drivers.supervisor import Program
from onestack.drivers.tls import CertificateProbe
from onestack.model.ports import API_HEALTH_PATHS, API_PORTS
from onestack.services import nova
from onestack.services.base import (
    Check,
    ServiceContext,
    config_steps,
    placed,
    program_steps,
    step,
)
from onestack.steps.actions import EnsureDirs, WriteFile

name = "haproxy"
kind = "infra"
hosts = placed("haproxy")
PACKAGES = ("haproxy",)

# How long a request waits at HAProxy for an API instance that takes traffic (a
# rollback converts nova's stored objects while no instance does: ADR 0007) before
# HAProxy answers 503 as it would at once without the wait.
HOLD_MS = 15000
STATS_USER = "onestack"
# The configuration holds the stats password: only root (the master) reads it.
CONFIG_MODE = 0o600

# An http-request action: wait (without blocking HAProxy) while the named backend has
# no usable server, up to a limit. HAProxy's nbsrv counts neither drain nor maint.
HOLD_LUA = """-- onestack: hold a request while its API has no instance that takes traffic
core.register_action("wait_for_server", {"http-req"}, function(txn, backend, limit_ms)
    local waited = 0
    while txn.f:nbsrv(backend) == 0 and waited < tonumber(limit_ms) do
        core.msleep(100)
        waited = waited + 100
    end
end, 2)
"""

def _backend(ctx: ServiceContext, api: str) -> str:
    return f"""
frontend {api}
    bind {ctx.address}:{ctx.ports.frontend(api)} ssl crt {ctx.paths.api_cert}
    # The APIs write links (version documents, pagination) with the client's scheme.
    http-request set-header X-Forwarded-Proto https
    http-request lua.wait_for_server {api} {HOLD_MS}
    default_backend {api}

backend {api}
    # A GET or HEAD whose API process died under it is sent again once the
    # instance answers (it changed nothing); any other request fails as it must:
    # it may have been applied (ADR 0010).
    retry-on conn-failure empty-response
    http-request disable-l7-retry unless METH_GET
    option httpchk GET {API_HEALTH_PATHS[api]}
    http-check expect rstatus ^[23]
    default-server inter 2s fall 2 rise 1
{_server(ctx, api, "blue")}
{_server(ctx, api, "green")}
"""


def _server(ctx: ServiceContext, api: str, color: str) -> str:
    """A backend server line; only the live color takes traffic after a (re)start."""
    disabled = "" if ctx.color(api) == color else " disabled"
    return f"    server {api}-{color} {ctx.address}:{ctx.ports.backend(api, color)} check{disabled}"


def _metadata_frontend(ctx: ServiceContext) -> str:
    """nova's metadata API for the agents of other hosts: mutual TLS with the internal
    CA (a host without the CA's certificate gets no answer), then the API's loopback
    listener (ADR 0025)."""
    if not nova.metadata_over_tls(ctx.site):
        return ""
    port, ca = ctx.ports.infra("nova-metadata-tls"), ctx.paths.internal_ca_cert
    return f"""
frontend nova-metadata
    bind {ctx.address}:{port} ssl crt {internal_pem_path(ctx)} ca-file {ca} verify required
    default_backend nova-metadata

backend nova-metadata
    server nova-metadata {nova.METADATA_LISTEN}:{ctx.ports.infra("nova-metadata")}
"""


def internal_pem_path(ctx: ServiceContext) -> Path:
    """The controller's certificate and key of the internal CA, for HAProxy."""
    return ctx.etc_infra(name) / "internal.pem"


def _internal_certificate(ctx: ServiceContext) -> dict[Path, str]:
    if not nova.metadata_over_tls(ctx.site):
        return {}
    own = ctx.internal_tls.of(ctx.controller.name)
    return {internal_pem_path(ctx): own.cert_pem + own.key_pem}


def config_path(ctx: ServiceContext) -> Path:
    return ctx.etc_infra(name) / "haproxy.cfg"


def chroot_dir(ctx: ServiceContext) -> Path:
    return ctx.paths.run / "haproxy-empty"


def hold_script_path(ctx: ServiceContext) -> Path:
    return ctx.etc_infra(name) / "hold.lua"


def render(ctx: ServiceContext) -> str:
    """haproxy.cfg for the site, with the live color of every API enabled."""
    head = f"""global
    maxconn 4096
    lua-load {hold_script_path(ctx)}
    stats socket {ctx.paths.run / 'haproxy.sock'} mode 600 level admin
    # The workers run unprivileged in an empty directory; the master only re-executes.
    user haproxy
    group haproxy
    chroot {chroot_dir(ctx)}

defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    option redispatch
    retries 3

listen stats
    bind {ctx.address}:{ctx.ports.infra('haproxy-stats')}
    stats enable
    stats uri /
    stats auth {STATS_USER}:{ctx.secret("haproxy.stats")}
"""
    return head + "".join(_backend(ctx, api) for api in API_PORTS) + _metadata_frontend(ctx)


def programs(ctx: ServiceContext) -> list[Program]:
    return [Program("haproxy", ["/usr/sbin/haproxy", "-W", "-db", "-f", str(config_path(ctx))],
                    stopsignal="USR1")]


def checks(ctx: ServiceContext) -> list[Check]:
    """HAProxy answers, and the certificate it serves the APIs with is the site CA's,
    for the controller's names, and far from expiry (``status`` shows the days left)."""
    return [Check("haproxy", TcpProbe(ctx.address, ctx.ports.infra("haproxy-stats"))),
            Check("api certificate", CertificateProbe(ctx.paths.api_cert, ctx.paths.ca_cert,
                                                      tuple(tls.certificate_names(ctx.site)),
                                                      operators=ctx.site.tls is not None))]


def _issuer(ctx: ServiceContext) -> str:
    return "the site CA" if ctx.site.tls is None else "the operator's"


def steps(ctx: ServiceContext) -> list[Step]:
    """Its folder, the certificate (the site CA's, made by ``state.tls`` where onestack
    runs) and configuration, then HAProxy (restarted when either changes)."""
    config = {hold_script_path(ctx): HOLD_LUA, config_path(ctx): render(ctx)}
    certificate = {ctx.paths.api_cert: ctx.api_pem, **_internal_certificate(ctx)}
    probe = TcpProbe(ctx.address, ctx.ports.infra("haproxy-stats"))
    return [step(ctx, name, "dirs", "create HAProxy's empty root",
                 EnsureDirs(((chroot_dir(ctx), "root", 0o755),))),
            step(ctx, name, "certificate", f"install the APIs' certificate "
                 f"{ctx.paths.api_cert} ({_issuer(ctx)}; "
                 f"{', '.join(tls.certificate_names(ctx.site))})",
                 WriteFile(ctx.paths.api_cert, ctx.api_pem, mode=0o600, owner="root")),
            *[step(ctx, name, "certificate:internal", f"install {path} (the controller's "
                   f"certificate of the internal CA: nova's metadata API for other hosts)",
                   WriteFile(path, text, mode=0o600, owner="root"))
              for path, text in _internal_certificate(ctx).items()],
            *config_steps(ctx, name, config, mode=CONFIG_MODE),
            *program_steps(ctx, name, programs(ctx), {**config, **certificate},
                           {"haproxy": probe}, 30)]
