"""Keystone: identity, tokens (fernet) and the service catalog."""

from __future__ import annotations

from pathlib import Path

from onestack.core.step import Step
from onestack.drivers.openstack import CatalogEntry
from onestack.drivers.probes import HttpProbe
from onestack.drivers.supervisor import Program
from onestack.services import mariadb, oslo, uwsgi
from onestack.services.base import (
    Check,
    ServiceContext,
    account_steps,
    api_probes,
    as_service,
    config_steps,
    placed,
    program_steps,
    step,
)
from onestack.steps.actions import EnsureDirs, RunOnce

name = "keystone"
kind = "openstack"
hosts = placed("keystone-api")
PACKAGE = "keystone"
API_MODULE = "keystone.wsgi.api:application"


def _conf(ctx: ServiceContext) -> str:
    data = ctx.paths.data / name
    return oslo.render_ini({
        "DEFAULT": {"debug": "false", "use_stderr": "true"},
        "database": {"connection": mariadb.url(ctx, "keystone"), "max_retries": "-1"},
        "token": {"provider": "fernet", "expiration": "14400"},
        "fernet_tokens": {"key_repository": str(data / "fernet-keys")},
        # Receipts (multi-factor auth) are signed with the token keys, as upstream's
        # defaults intend; left unset, keystone looks in /etc/keystone, outside the site.
        "fernet_receipts": {"key_repository": str(data / "fernet-keys")},
        "credential": {"key_repository": str(data / "credential-keys")},
        "cache": oslo.cache(ctx),
        "oslo_messaging_notifications": {"driver": "noop"},
        "oslo_middleware": oslo.behind_proxy(),
    })


def config(ctx: ServiceContext) -> dict[Path, str]:
    etc = ctx.etc(name)
    return {etc / "keystone.conf": _conf(ctx),
            uwsgi.ini_path(ctx, name, ctx.color(name)):
                uwsgi.ini(ctx, name, API_MODULE)}


def programs(ctx: ServiceContext) -> list[Program]:
    return [uwsgi.program(ctx, name)]


def checks(ctx: ServiceContext) -> list[Check]:
    return [Check("keystone-api", api_probes(ctx, name)[0]),
            Check("keystone (haproxy)", HttpProbe(oslo.keystone_url(ctx) + "/v3",
                                                  cafile=ctx.cafile))]


def catalog_entry(ctx: ServiceContext) -> CatalogEntry:
    return CatalogEntry("keystone", "identity", oslo.keystone_url(ctx) + "/v3", None, None)


def _manage(ctx: ServiceContext, *args: str) -> tuple[str, ...]:
    return as_service(ctx, name, (ctx.bin("keystone-manage"), "--config-file",
                                  str(ctx.etc(name) / "keystone.conf"), *args))


def _bootstrap(ctx: ServiceContext) -> RunOnce:
    url = oslo.keystone_url(ctx) + "/v3"
    argv = _manage(ctx, "bootstrap", "--bootstrap-username", "admin",
                   "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
                   "--bootstrap-service-name", "keystone", "--bootstrap-region-id",
                   ctx.site.region, "--bootstrap-admin-url", url, "--bootstrap-internal-url",
                   url, "--bootstrap-public-url", url)
    # The admin password goes through the environment, never the command line.
    return RunOnce(argv, env=(("OS_BOOTSTRAP_PASSWORD", ctx.secret("keystone.admin")),))


def configure(ctx: ServiceContext) -> list[Step]:
    """Configuration files of this release."""
    return config_steps(ctx, name, config(ctx))


def upgrade_check(ctx: ServiceContext) -> tuple[str, ...]:
    return _manage(ctx, "doctor")


def expand(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    """Schema changes the old code tolerates (rolling upgrade: expand, then migrate)."""
    return [("db-expand", _manage(ctx, "db_sync", "--expand")),
            ("db-migrate", _manage(ctx, "db_sync", "--migrate"))]


def contract(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    """Schema changes only the new code tolerates: after every instance is upgraded."""
    return [("db-contract", _manage(ctx, "db_sync", "--contract"))]


def steps(ctx: ServiceContext) -> list[Step]:
    data = ctx.paths.data / name
    conf = config(ctx)
    return [
        *account_steps(ctx, name, groups=oslo.CACHE_GROUPS),
        step(ctx, name, "dirs", "create key repositories",
             EnsureDirs(((data, name, 0o700), (data / "fernet-keys", name, 0o700),
                         (data / "credential-keys", name, 0o700)))),
        *configure(ctx),
        step(ctx, name, "db-sync", "migrate the keystone database",
             RunOnce(_manage(ctx, "db_sync"), inputs=ctx.series)),
        step(ctx, name, "fernet-setup", "create fernet token keys",
             RunOnce(_manage(ctx, "fernet_setup", "--keystone-user", name,
                             "--keystone-group", name))),
        step(ctx, name, "credential-setup", "create credential keys",
             RunOnce(_manage(ctx, "credential_setup", "--keystone-user", name,
                             "--keystone-group", name))),
        step(ctx, name, "bootstrap", "bootstrap admin user, region and identity endpoints",
             _bootstrap(ctx)),
        *program_steps(ctx, name, programs(ctx), conf,
                       {"keystone-api": api_probes(ctx, name)}),
    ]

