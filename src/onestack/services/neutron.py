"""Neutron: ML2 networking. Three processes: the WSGI API, the RPC server and the
periodic workers. With the OVN back end (``services.ovn``) ML2/OVN drives the data
path (DHCP, routers, floating IPs and security groups in OVN's flows); with none, the
API and database only (ports never bind)."""

from __future__ import annotations

from pathlib import Path

from onestack.core.step import Step
from onestack.drivers.openstack import CatalogEntry
from onestack.drivers.supervisor import Program
from onestack.services import mariadb, oslo, ovn, ovs, uwsgi
from onestack.services.base import (
    Check,
    ServiceContext,
    account_steps,
    api_catalog_entry,
    api_probes,
    as_service,
    config_steps,
    on_controller,
    program_steps,
    step,
)
from onestack.steps.actions import EnsureDirs, RunOnce

name = "neutron"
kind = "openstack"
hosts = on_controller  # the control plane
PACKAGE = "neutron"
API_MODULE = "neutron.wsgi.api:application"


def _conf(ctx: ServiceContext) -> str:
    return oslo.render_ini(oslo.merged({
        "DEFAULT": {**oslo.common_default(ctx, name), "core_plugin": "ml2",
                    "service_plugins": "", "auth_strategy": "keystone",
                    "notify_nova_on_port_status_changes": "false",
                    "notify_nova_on_port_data_changes": "false",
                    "api_workers": "1", "rpc_workers": "1", "rpc_state_report_workers": "1",
                    "state_path": str(ctx.paths.data / name),
                    "api_paste_config": str(ctx.venv / "etc" / "neutron" / "api-paste.ini")},
        "database": {"connection": mariadb.url(ctx, "neutron"), "max_retries": "-1"},
        "keystone_authtoken": oslo.authtoken(ctx, "neutron"),
        "nova": oslo.service_auth(ctx, "nova"),
        "oslo_concurrency": oslo.lock_path(ctx, name),
        "oslo_messaging_notifications": {"driver": "noop"},
        "agent": {"report_interval": "30"},
    }, _back_end_settings(ctx)))


def _back_end_settings(ctx: ServiceContext) -> oslo.Ini:
    """OVN's L3 plugin, and nova told when ports go up (nova-compute waits for it
    before it starts a guest)."""
    if not ovs.in_use(ctx.site):
        return {}
    notify = {"notify_nova_on_port_status_changes": "true",
              "notify_nova_on_port_data_changes": "true",
              # ML2/OVN registers each server process in its hash ring under
              # (host, worker): during a blue/green upgrade both releases' APIs run
              # on one host, and the newer one's start failed on the older one's rows
              # (DBDuplicateEntry on ovn_hash_ring). Each color is a host of its own.
              "host": f"{ctx.host}-{ctx.color(name)}"}
    return oslo.merged(ovn.neutron_settings(ctx), {"DEFAULT": notify})


def _ml2_conf(ctx: ServiceContext) -> str:
    if ovs.in_use(ctx.site):
        return oslo.render_ini(ovn.ml2_settings(ctx))
    return oslo.render_ini({
        "ml2": {"type_drivers": "flat,vlan,vxlan", "tenant_network_types": "vxlan",
                "mechanism_drivers": "openvswitch", "extension_drivers": "port_security"},
        "ml2_type_flat": {"flat_networks": "physnet1"},
        "ml2_type_vxlan": {"vni_ranges": "1:10000"},
    })


def _conf_args(ctx: ServiceContext) -> tuple[str, ...]:
    etc = ctx.etc(name)
    return ("--config-file", str(etc / "neutron.conf"),
            "--config-file", str(etc / "plugins" / "ml2" / "ml2_conf.ini"))


def config(ctx: ServiceContext) -> dict[Path, str]:
    etc = ctx.etc(name)
    return {etc / "neutron.conf": _conf(ctx),
            etc / "plugins" / "ml2" / "ml2_conf.ini": _ml2_conf(ctx),
            uwsgi.ini_path(ctx, name, ctx.color(name)):
                uwsgi.ini(ctx, name, API_MODULE, processes=1,
                                                 extra={"start-time": "%t"})}


def programs(ctx: ServiceContext) -> list[Program]:
    conf = _conf_args(ctx)
    return [uwsgi.program(ctx, name),
            Program("neutron-rpc-server", [ctx.bin("neutron-rpc-server"), *conf], user=name),
            Program("neutron-periodic-workers", [ctx.bin("neutron-periodic-workers"), *conf],
                    user=name)]


def checks(ctx: ServiceContext) -> list[Check]:
    return [Check("neutron-api", api_probes(ctx, name)[0])]


def catalog_entry(ctx: ServiceContext) -> CatalogEntry:
    return api_catalog_entry(ctx, name, "network")


def configure(ctx: ServiceContext) -> list[Step]:
    """Configuration files of this release."""
    return config_steps(ctx, name, config(ctx))


def upgrade_check(ctx: ServiceContext) -> tuple[str, ...]:
    return as_service(ctx, name, (ctx.bin("neutron-status"), *_conf_args(ctx), "upgrade",
                                  "check"))


def expand(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    return [("db-expand", as_service(ctx, name, (ctx.bin("neutron-db-manage"),
                                                 *_conf_args(ctx), "upgrade", "--expand")))]


def contract(ctx: ServiceContext) -> list[tuple[str, tuple[str, ...]]]:
    return [("db-contract", as_service(ctx, name, (ctx.bin("neutron-db-manage"),
                                                   *_conf_args(ctx), "upgrade",
                                                   "--contract")))]


def steps(ctx: ServiceContext) -> list[Step]:
    conf = config(ctx)
    manage = as_service(ctx, name, (ctx.bin("neutron-db-manage"), *_conf_args(ctx)))
    return [
        *account_steps(ctx, name),
        step(ctx, name, "dirs", "create state directories",
             EnsureDirs(((ctx.paths.data / name, name, 0o750),
                         (ctx.paths.data / name / "locks", name, 0o750)))),
        *configure(ctx),
        step(ctx, name, "db-sync", "migrate the neutron database",
             RunOnce((*manage, "upgrade", "heads"), inputs=ctx.series)),
        *program_steps(ctx, name, programs(ctx), conf,
                       {"neutron-api": api_probes(ctx, name)}),
    ]
