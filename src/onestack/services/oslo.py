"""Configuration pieces every OpenStack service shares (oslo.config INI)."""

from __future__ import annotations

from onestack.services import memcached, rabbitmq
from onestack.services.base import ServiceContext
from onestack.steps.content_actions import CloudLogin

Ini = dict[str, dict[str, str]]
# The groups of a service that uses the site's caches (memcached's socket is theirs).
CACHE_GROUPS = (memcached.CLIENT_GROUP,)


def render_ini(sections: Ini) -> str:
    """oslo.config INI text, sections and keys in the given order."""
    out = []
    for section, values in sections.items():
        out.append(f"[{section}]")
        out.extend(f"{key} = {value}" for key, value in values.items())
        out.append("")
    return "\n".join(out)


def merged(*parts: Ini) -> Ini:
    """Sections merged key by key, later parts winning (section order: first seen)."""
    out: Ini = {}
    for part in parts:
        for section, values in part.items():
            out[section] = {**out.get(section, {}), **values}
    return out


def admin_login(ctx: ServiceContext) -> CloudLogin:
    """How onestack's own steps reach the cloud: the site's admin, through HAProxy."""
    return CloudLogin(keystone_url(ctx) + "/v3", ctx.secret("keystone.admin"), ctx.site.region,
                      ctx.cafile)


def keystone_url(ctx: ServiceContext, internal: bool = True) -> str:
    return ctx.api_url("keystone")


def service_auth(ctx: ServiceContext, user: str) -> dict[str, str]:
    """Password auth of a service user in the service project."""
    return {
        "auth_type": "password",
        "auth_url": keystone_url(ctx) + "/v3",
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "project_name": "service",
        "username": user,
        "password": ctx.secret(f"keystone.{user}"),
        "region_name": ctx.site.region,
        "cafile": ctx.cafile,
    }


def authtoken(ctx: ServiceContext, user: str) -> dict[str, str]:
    """The ``[keystone_authtoken]`` section of an API service."""
    return {
        "www_authenticate_uri": keystone_url(ctx),
        "memcached_servers": memcached.servers(ctx),
        # Only the services reach memcached's socket (ADR 0021); keystonemiddleware's
        # own entries are encrypted and signed besides.
        "memcache_security_strategy": "ENCRYPT",
        "memcache_secret_key": ctx.secret("memcache.secret"),
        "service_token_roles_required": "true",
        **service_auth(ctx, user),
    }


def common_default(ctx: ServiceContext, service: str) -> dict[str, str]:
    return {
        "debug": "false",
        "transport_url": rabbitmq.transport_url(ctx),
        "log_dir": "",
        "use_stderr": "true",
        # oslo.service waits 60 s by default for in-flight work on SIGTERM; the lab
        # stops services in order and wants them gone in seconds.
        "graceful_shutdown_timeout": "5",
    }


def behind_proxy() -> dict[str, str]:
    """``[oslo_middleware]`` of an API behind HAProxy: links it returns use the scheme
    the client used (https), which HAProxy sends as X-Forwarded-Proto."""
    return {"enable_proxy_headers_parsing": "true"}


def cache(ctx: ServiceContext) -> dict[str, str]:
    return {"enabled": "true", "backend": "oslo_cache.memcache_pool",
            "memcache_servers": memcached.servers(ctx)}


def lock_path(ctx: ServiceContext, service: str) -> dict[str, str]:
    return {"lock_path": str(ctx.paths.data / service / "locks")}
