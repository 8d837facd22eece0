"""Glance: images, stored as files in the site's data directory."""

from __future__ import annotations

from pathlib import Path

from onestack.core.step import Step
from onestack.drivers.openstack import CatalogEntry
from onestack.drivers.supervisor import Program
from onestack.services import mariadb, oslo, rabbitmq, uwsgi
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
from onestack.steps.actions import EnsureDirs, RunOnce

name = "glance"
kind = "openstack"
hosts = placed("glance-api")
PACKAGE = "glance"
API_MODULE = "glance.wsgi.api:application"


def _stores(ctx: ServiceContext) -> dict[str, Path]:
    data = ctx.paths.data / name
    return {"images": data / "images", "staging": data / "staging", "tasks": data / "tasks"}


def _conf(ctx: ServiceContext) -> str:
    stores = _stores(ctx)
    return oslo.render_ini(oslo.merged({
        "DEFAULT": {**oslo.common_default(ctx, name), "enabled_backends": "fs:file",
                    "bind_host": ctx.address, "bind_port": str(ctx.backend_port(name)),
                    "workers": "1"},
        "database": {"connection": mariadb.url(ctx, "glance"), "max_retries": "-1"},
        "keystone_authtoken": oslo.authtoken(ctx, "glance"),
        "paste_deploy": {"flavor": "keystone", "config_file": str(paste_ini(ctx))},
        "glance_store": {"default_backend": "fs"},
        "fs": {"filesystem_store_datadir": str(stores["images"])},
        "os_glance_staging_store": {"filesystem_store_datadir": str(stores["staging"])},
        "os_glance_tasks_store": {"filesystem_store_datadir": str(stores["tasks"])},
        "oslo_concurrency": oslo.lock_path(ctx, name),
        "oslo_messaging_notifications": {"driver": "noop"},
        "oslo_middleware": oslo.behind_proxy(),
    }, rabbitmq.client_settings(ctx)))


def paste_ini(ctx: ServiceContext) -> Path:
    """glance's own paste pipeline, shipped in the (immutable) release environment."""
    return ctx.venv / "etc" / "glance" / "glance-api-paste.ini"


def config(ctx: ServiceContext) -> dict[Path, str]:
    etc = ctx.etc(name)
    extra = {"http-chunked-input": "true", "http-raw-body": "true",
             "chunked-input-limit": "10000000", "http-auto-chunked": "true"}
    return {etc / "glance-api.conf": _conf(ctx),
            uwsgi.ini_path(ctx, name, ctx.color(name)):
                uwsgi.ini(ctx, name, API_MODULE, extra=extra)}


def programs(ctx: ServiceContext) -> list[Program]:
    return [uwsgi.program(ctx, name)]


def checks(ctx: ServiceContext) -> list[Check]:
    return [Check("glance-api", api_probes(ctx, name)[0])]


def catalog_entry(ctx: ServiceContext) -> CatalogEntry:
    return api_catalog_entry(ctx, name, "image")


def _manage(ctx: ServiceContext, *args: str) -> tuple[str, ...]:
    return as_service(ctx, name, (ctx.bin("glance-manage"), "--config-dir",
                                  str(ctx.etc(name)), *args))


def configure(ctx: ServiceContext) -> list[Step]:
    """Configuration files of this release."""
    return config_steps(ctx, name, config(ctx))


def upgrade_check(ctx: ServiceContext) -> tuple[str, ...]:
    # glance-status 33.0.0 reads [DEFAULT] enabled_backends without registering it
    # (NoSuchOptError); importing glance.common.config first registers it.
    run = ("import sys, glance.common.config; from glance.cmd.status import main; "
           "sys.exit(main())")
    return as_service(ctx, name, (ctx.bin("python"), "-c", run, "--config-dir",
                                  str(ctx.etc(name)), "upgrade", "check"))


def expand(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    """glance's zero-downtime migration: expand, then migrate data."""
    return [("db-expand", _manage(ctx, "db", "expand")),
            ("db-migrate", _manage(ctx, "db", "migrate"))]


def contract(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    return [("db-contract", _manage(ctx, "db", "contract"))]


def steps(ctx: ServiceContext) -> list[Step]:
    conf = config(ctx)
    dirs = tuple((p, name, 0o750) for p in _stores(ctx).values())
    manage = _manage(ctx)
    return [
        *account_steps(ctx, name, groups=oslo.CACHE_GROUPS),
        step(ctx, name, "dirs", "create image store directories",
             EnsureDirs(((ctx.paths.data / name, name, 0o750),
                         (ctx.paths.data / name / "locks", name, 0o750), *dirs))),
        *configure(ctx),
        step(ctx, name, "db-sync", "migrate the glance database",
             RunOnce((*manage, "db_sync"), inputs=ctx.series)),
        *program_steps(ctx, name, programs(ctx), conf,
                       {"glance-api": api_probes(ctx, name)}),
    ]
