"""Placement: resource providers and allocations."""

from __future__ import annotations

from pathlib import Path

from onestack.core.step import Step
from onestack.drivers.openstack import CatalogEntry
from onestack.drivers.supervisor import Program
from onestack.services import mariadb, oslo, uwsgi
from onestack.services.base import (
    Check,
    ServiceContext,
    account_steps,
    api_catalog_entry,
    api_probes,
    as_service,
    config_steps,
    placed,
    program_steps,
    step,
)
from onestack.steps.actions import RunOnce

name = "placement"
kind = "openstack"
hosts = placed("placement-api")
PACKAGE = "openstack-placement"
API_MODULE = "placement.wsgi.api:application"


def _conf(ctx: ServiceContext) -> str:
    return oslo.render_ini({
        "DEFAULT": {"debug": "false", "use_stderr": "true"},
        "placement_database": {"connection": mariadb.url(ctx, "placement"),
                               "max_retries": "-1"},
        "api": {"auth_strategy": "keystone"},
        "keystone_authtoken": oslo.authtoken(ctx, "placement"),
        "oslo_policy": {"enforce_new_defaults": "true", "enforce_scope": "true"},
        "oslo_middleware": oslo.behind_proxy(),
    })


def config(ctx: ServiceContext) -> dict[Path, str]:
    etc = ctx.etc(name)
    return {etc / "placement.conf": _conf(ctx),
            uwsgi.ini_path(ctx, name, ctx.color(name)):
                uwsgi.ini(ctx, name, API_MODULE)}


def programs(ctx: ServiceContext) -> list[Program]:
    return [uwsgi.program(ctx, name)]


def checks(ctx: ServiceContext) -> list[Check]:
    return [Check("placement-api", api_probes(ctx, name)[0])]


def catalog_entry(ctx: ServiceContext) -> CatalogEntry:
    return api_catalog_entry(ctx, name, "placement")


def _manage(ctx: ServiceContext, *args: str) -> tuple[str, ...]:
    return as_service(ctx, name, (ctx.bin("placement-manage"), "--config-file",
                                  str(ctx.etc(name) / "placement.conf"), *args))


def configure(ctx: ServiceContext) -> list[Step]:
    """Configuration files of this release."""
    return config_steps(ctx, name, config(ctx))


def upgrade_check(ctx: ServiceContext) -> tuple[str, ...]:
    return as_service(ctx, name, (ctx.bin("placement-status"), "--config-file",
                                  str(ctx.etc(name) / "placement.conf"), "upgrade", "check"))


def expand(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    """placement's migrations only add, so the old code runs on the new schema."""
    return [("db-sync", _manage(ctx, "db", "sync"))]


def contract(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    return [("online-data-migrations", _manage(ctx, "db", "online_data_migrations"))]


def steps(ctx: ServiceContext) -> list[Step]:
    conf = config(ctx)
    return [
        *account_steps(ctx, name, groups=oslo.CACHE_GROUPS),
        *configure(ctx),
        step(ctx, name, "db-sync", "migrate the placement database",
             RunOnce(_manage(ctx, "db", "sync"), inputs=ctx.series)),
        *program_steps(ctx, name, programs(ctx), conf,
                       {"placement-api": api_probes(ctx, name)}),
    ]
