"""MariaDB: the site's own instance (own data dir, socket, port), and one database
per OpenStack service."""

from __future__ import annotations

import shlex
from pathlib import Path

from onestack.core.digest import digest
from onestack.core.step import Step
from onestack.drivers import mysql
from onestack.drivers.probes import TcpProbe
from onestack.drivers.supervisor import Program
from onestack.model.site import Role
from onestack.services.base import (
    Check,
    ServiceContext,
    config_steps,
    placed,
    program_steps,
    site_member_step,
    step,
)
from onestack.steps.actions import CallOnce, EnsureDirs, RunOnce
from onestack.steps.context import HostContext

name = "mariadb"
kind = "infra"
hosts = placed("mariadb")
PACKAGES = ("mariadb-server", "mariadb-client")

# service database name -> database user (secret "db.<user>")
DATABASES: dict[str, str] = {
    "keystone": "keystone", "glance": "glance", "placement": "placement",
    "nova_api": "nova", "nova": "nova", "nova_cell0": "nova", "neutron": "neutron",
}


def datadir(ctx: ServiceContext) -> Path:
    return ctx.paths.data / "mariadb"


def socket_path(ctx: ServiceContext) -> Path:
    return ctx.paths.run / "mysqld" / "mysqld.sock"


def url(ctx: ServiceContext, database: str) -> str:
    """SQLAlchemy URL of a service database, over TCP to the site instance."""
    user = DATABASES[database]
    password = ctx.secret(f"db.{user}")
    return (f"mysql+pymysql://{user}:{password}@{ctx.address}:{ctx.ports.infra('mariadb')}/"
            f"{database}?charset=utf8mb4")


def _my_cnf(ctx: ServiceContext) -> str:
    return f"""[mysqld]
datadir = {datadir(ctx)}
socket = {socket_path(ctx)}
pid-file = {ctx.paths.run / 'mysqld' / 'mysqld.pid'}
port = {ctx.ports.infra('mariadb')}
bind-address = {ctx.address}
max_connections = 1000
innodb_buffer_pool_size = 256M
innodb_flush_log_at_trx_commit = 1
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
skip-name-resolve
"""


def _config(ctx: ServiceContext) -> dict[Path, str]:
    return {ctx.etc_infra(name) / "my.cnf": _my_cnf(ctx)}


def programs(ctx: ServiceContext) -> list[Program]:
    conf = ctx.etc_infra(name) / "my.cnf"
    return [Program("mariadb", ["/usr/sbin/mariadbd", f"--defaults-file={conf}", "--user=mysql"],
                    stopwaitsecs=60)]


def checks(ctx: ServiceContext) -> list[Check]:
    return [Check("mariadb", TcpProbe(ctx.address, ctx.ports.infra("mariadb")))]


def client_hosts(ctx: ServiceContext) -> tuple[str, ...]:
    """Where the services connect to the database from: the controllers' addresses
    (the database users exist for those hosts only, never for any host)."""
    return tuple(sorted({str(h.address) for h in ctx.site.hosts
                         if Role.CONTROLLER in h.roles} | {ctx.address}))


def _create_databases(ctx: ServiceContext) -> CallOnce:
    sock = socket_path(ctx)
    wanted = {db: (user, ctx.secret(f"db.{user}")) for db, user in DATABASES.items()}
    clients = client_hosts(ctx)

    def run(hc: HostContext) -> None:
        for db, (user, password) in wanted.items():
            mysql.ensure_database(hc.host, sock, db, user, password, clients)

    # The password digests are inputs: new secrets mean the users must be updated.
    inputs = digest(repr((sorted((db, user, digest(pw)) for db, (user, pw) in wanted.items()),
                          clients)))
    return CallOnce("create databases", run, inputs=inputs)


def steps(ctx: ServiceContext) -> list[Step]:
    data = datadir(ctx)
    # Every interpolated path is quoted: $ONESTACK_HOME may hold spaces or shell syntax.
    init = (f"test -d {shlex.quote(f'{data}/mysql')} || /usr/bin/mariadb-install-db "
            f"--user=mysql {shlex.quote(f'--datadir={data}')} "
            "--auth-root-authentication-method=socket --skip-test-db")
    config = _config(ctx)
    return [
        site_member_step(ctx, name, "mysql"),
        step(ctx, name, "dirs", "create data and socket directories",
             EnsureDirs(((data, "mysql", 0o750), (ctx.paths.run / "mysqld", "mysql", 0o755)))),
        *config_steps(ctx, name, config, mode=0o644),
        step(ctx, name, "initdb", f"initialise data directory {data}",
             RunOnce(("sh", "-c", init), inputs=str(data))),
        *program_steps(ctx, name, programs(ctx), config,
                       {"mariadb": TcpProbe(ctx.address, ctx.ports.infra("mariadb"))}, 60),
        step(ctx, name, "databases", "create service databases and users",
             _create_databases(ctx)),
    ]
