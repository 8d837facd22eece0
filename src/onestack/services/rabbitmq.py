"""RabbitMQ: the site's own node (own name, port, data dir) and the OpenStack user."""

from __future__ import annotations

from pathlib import Path

from onestack.core.digest import digest
from onestack.core.step import Step
from onestack.drivers.probes import TcpProbe
from onestack.drivers.supervisor import Program
from onestack.errors import CommandError
from onestack.services.base import Check, ServiceContext, config_steps, program_steps, step
from onestack.steps.actions import CallOnce, EnsureDirs
from onestack.steps.context import HostContext

name = "rabbitmq"
kind = "infra"
PACKAGES = ("rabbitmq-server",)
USER = "openstack"


def node_name(ctx: ServiceContext) -> str:
    return f"onestack-{ctx.site.name}@localhost"


def transport_url(ctx: ServiceContext) -> str:
    password = ctx.secret("rabbitmq.openstack")
    return f"rabbit://{USER}:{password}@127.0.0.1:{ctx.ports.infra('rabbitmq')}/"


def _base(ctx: ServiceContext) -> Path:
    return ctx.paths.data / "rabbitmq"


def environment(ctx: ServiceContext) -> dict[str, str]:
    base = _base(ctx)
    return {
        "RABBITMQ_NODENAME": node_name(ctx),
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(ctx.ports.infra("rabbitmq")),
        "RABBITMQ_DIST_PORT": str(ctx.ports.infra("rabbitmq-dist")),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(ctx.paths.log / "rabbitmq"),
        "RABBITMQ_CONFIG_FILE": str(ctx.etc_infra(name) / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(ctx.etc_infra(name) / "enabled_plugins"),
        "RABBITMQ_LOGS": "-",
    }


def _config(ctx: ServiceContext) -> dict[Path, str]:
    return {
        ctx.etc_infra(name) / "rabbitmq.conf": ("loopback_users = none\n"
                                          "disk_free_limit.absolute = 200MB\n"
                                          "vm_memory_high_watermark.relative = 0.2\n"),
        ctx.etc_infra(name) / "enabled_plugins": "[].\n",
    }


def programs(ctx: ServiceContext) -> list[Program]:
    # The broker script itself, run as the rabbitmq user: the /usr/sbin wrapper
    # switches user with su, which puts the broker outside the supervisor's
    # process group, so stopping it would leave the broker running.
    env = {**environment(ctx), "HOME": "/var/lib/rabbitmq"}
    return [Program("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env,
                    user="rabbitmq", stopwaitsecs=60, startsecs=3)]


def checks(ctx: ServiceContext) -> list[Check]:
    return [Check("rabbitmq", TcpProbe("127.0.0.1", ctx.ports.infra("rabbitmq")))]


def rabbitmqctl(ctx: ServiceContext, *args: str) -> list[str]:
    return ["/usr/sbin/rabbitmqctl", "-n", node_name(ctx), *args]


def _ensure_user(ctx: ServiceContext) -> CallOnce:
    password = ctx.secret("rabbitmq.openstack")
    env = environment(ctx)
    listing = rabbitmqctl(ctx, "-q", "list_users")
    add = rabbitmqctl(ctx, "add_user", USER, password)
    change = rabbitmqctl(ctx, "change_password", USER, password)
    perms = rabbitmqctl(ctx, "set_permissions", "-p", "/", USER, ".*", ".*", ".*")

    def run(hc: HostContext) -> None:
        hc.host.run(rabbitmqctl(ctx, "await_startup"), env=env, timeout=120)
        users = hc.host.run(listing, env=env)
        try:
            hc.host.run(change if USER in users.split() else add, env=env)
        except CommandError as exc:  # the command line holds the password: do not show it
            raise CommandError(f"rabbitmqctl add_user/change_password {USER}", exc.returncode,
                               exc.output.replace(password, "***")) from None
        hc.host.run(perms, env=env)

    return CallOnce("rabbitmq user", run, inputs=f"{USER}|{digest(password)}")


def steps(ctx: ServiceContext) -> list[Step]:
    config = _config(ctx)
    return [
        step(ctx, name, "dirs", "create data and log directories",
             EnsureDirs(((_base(ctx), "rabbitmq", 0o750),
                         (ctx.paths.log / "rabbitmq", "rabbitmq", 0o750)))),
        *config_steps(ctx, name, config, mode=0o644),
        *program_steps(ctx, name, programs(ctx), config,
                       {"rabbitmq": TcpProbe("127.0.0.1", ctx.ports.infra("rabbitmq"))}, 120),
        step(ctx, name, "user", f"create messaging user {USER}", _ensure_user(ctx)),
    ]
