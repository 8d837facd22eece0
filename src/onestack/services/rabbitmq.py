"""RabbitMQ: the site's own node (own name, port, data dir) and the OpenStack user."""

from __future__ import annotations

from pathlib import Path

from onestack.core.digest import digest
from onestack.core.step import Step
from onestack.drivers.probes import TcpProbe
from onestack.drivers.supervisor import Program
from onestack.errors import CommandError
from onestack.model.site import Host, Site
from onestack.services.base import (
    Check,
    ServiceContext,
    config_steps,
    host_tls_files,
    placed,
    program_steps,
    site_member_step,
    step,
    tls_steps,
)
from onestack.steps.actions import CallOnce, EnsureDirs, WriteFile
from onestack.steps.context import HostContext

name = "rabbitmq"
kind = "infra"
hosts = placed("rabbitmq")
PACKAGES = ("rabbitmq-server",)
USER = "openstack"
DEFAULT_USER = "guest"


def remote_clients(site: Site) -> list[Host]:
    """Hosts other than the controller that reach the broker: the other computes
    (nova-compute). With any, the broker speaks TLS only (ADR 0025)."""
    return [h for h in site.computes if h.name != site.controller.name]


def uses_tls(ctx: ServiceContext) -> bool:
    return bool(remote_clients(ctx.site))


def tls_dir(ctx: ServiceContext) -> Path:
    return ctx.etc_infra(name) / "tls"


def _tls_files(ctx: ServiceContext) -> dict[Path, str]:
    """The controller's certificate and key (the internal CA's) as the broker reads
    them, and the internal CA (none when no other host reaches it)."""
    if not uses_tls(ctx):
        return {}
    return host_tls_files(ctx, ctx.controller, tls_dir(ctx))


def client_settings(ctx: ServiceContext) -> dict[str, dict[str, str]]:
    """``[oslo_messaging_rabbit]`` of every service that uses the broker: TLS, checked
    against the internal CA, when other hosts reach it; nothing to add otherwise."""
    if not uses_tls(ctx):
        return {}
    return {"oslo_messaging_rabbit": {"ssl": "true",
                                      "ssl_ca_file": str(ctx.paths.internal_ca_cert)}}


def node_name(ctx: ServiceContext) -> str:
    return f"onestack-{ctx.site.name}@localhost"


def transport_url(ctx: ServiceContext) -> str:
    password = ctx.secret("rabbitmq.openstack")
    return f"rabbit://{USER}:{password}@{ctx.address}:{ctx.ports.infra('rabbitmq')}/"


def _base(ctx: ServiceContext) -> Path:
    return ctx.paths.data / "rabbitmq"


def _log_base(ctx: ServiceContext) -> Path:
    """The broker's own log folder (crash dumps; its log goes to supervisord): under its
    data folder, since the broker's user cannot enter the site's log folder."""
    return _base(ctx) / "log"


def cookie_path(ctx: ServiceContext) -> Path:
    """The site's own Erlang cookie: ``$HOME/.erlang.cookie`` of the broker and the CLI."""
    return _base(ctx) / ".erlang.cookie"


def environment(ctx: ServiceContext) -> dict[str, str]:
    """What the broker and ``rabbitmqctl`` share: node, ports, the site's own epmd
    (loopback only) and, through ``HOME``, the site's own cookie."""
    base = _base(ctx)
    # AMQP on the controller's address; over TLS only (rabbitmq.conf's listeners)
    # when other hosts reach it.
    plain = {} if uses_tls(ctx) else {"RABBITMQ_NODE_IP_ADDRESS": ctx.address,
                                      "RABBITMQ_NODE_PORT": str(ctx.ports.infra("rabbitmq"))}
    return {
        "HOME": str(base),
        "ERL_EPMD_PORT": str(ctx.ports.infra("rabbitmq-epmd")),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODENAME": node_name(ctx),
        **plain,
        "RABBITMQ_DIST_PORT": str(ctx.ports.infra("rabbitmq-dist")),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(_log_base(ctx)),
        "RABBITMQ_CONFIG_FILE": str(ctx.etc_infra(name) / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(ctx.etc_infra(name) / "enabled_plugins"),
        "RABBITMQ_LOGS": "-",
    }


# The broker runs in a PID namespace of its own (ADR 0010) over the host's /proc: its
# default memory strategy (rss) reads /proc/<its own pid>, which is another process's
# there, or none (a lab host: the broker failed to start). Erlang's allocators know.
MEMORY_STRATEGY = "vm_memory_calculation_strategy = allocated\n"


def _config(ctx: ServiceContext) -> dict[Path, str]:
    return {
        ctx.etc_infra(name) / "rabbitmq.conf": ("disk_free_limit.absolute = 200MB\n"
                                                "vm_memory_high_watermark.relative = 0.2\n"
                                                + MEMORY_STRATEGY + _tls_config(ctx)),
        ctx.etc_infra(name) / "enabled_plugins": "[].\n",
    }


def _tls_config(ctx: ServiceContext) -> str:
    """No plain AMQP listener; TLS on the controller's address with its certificate.
    Clients authenticate with their password (no client certificate asked)."""
    if not uses_tls(ctx):
        return ""
    folder = tls_dir(ctx)
    return (f"listeners.tcp = none\n"
            f"listeners.ssl.default = {ctx.address}:{ctx.ports.infra('rabbitmq')}\n"
            f"ssl_options.cacertfile = {folder / 'ca.pem'}\n"
            f"ssl_options.certfile = {folder / 'cert.pem'}\n"
            f"ssl_options.keyfile = {folder / 'key.pem'}\n"
            "ssl_options.verify = verify_none\n"
            "ssl_options.fail_if_no_peer_cert = false\n"
            "ssl_options.versions.1 = tlsv1.3\n"
            "ssl_options.versions.2 = tlsv1.2\n")


def programs(ctx: ServiceContext) -> list[Program]:
    # The broker script itself, run as the rabbitmq user (the /usr/sbin wrapper
    # switches user with su). RUNNING_UNDER_SYSTEMD makes the script exec the Erlang
    # VM, so the supervised process is the broker itself, which stops gracefully on
    # SIGTERM; otherwise a shell sits in between and its death orphans the VM.
    # The distribution listens on loopback only.
    env = {**environment(ctx), "RUNNING_UNDER_SYSTEMD": "true",
           "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}"}
    return [Program("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env,
                    user="rabbitmq", stopwaitsecs=60, startsecs=3)]


def checks(ctx: ServiceContext) -> list[Check]:
    return [Check("rabbitmq", TcpProbe(ctx.address, ctx.ports.infra("rabbitmq")))]


def rabbitmqctl(ctx: ServiceContext, *args: str) -> list[str]:
    """The CLI itself, not /usr/sbin's wrapper: that one switches to the rabbitmq user
    with ``su``, which resets ``HOME`` (so the site's cookie is not found) and splices
    every argument into a shell string."""
    return ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", node_name(ctx), *args]


def _ensure_user(ctx: ServiceContext) -> CallOnce:
    """The OpenStack user with its password (given on stdin, never on a command line),
    and no ``guest``: RabbitMQ creates it with administrator rights on a new node."""
    password = ctx.secret("rabbitmq.openstack")
    env = environment(ctx)
    listing = rabbitmqctl(ctx, "-q", "list_users")
    add = rabbitmqctl(ctx, "add_user", USER)
    change = rabbitmqctl(ctx, "change_password", USER)
    perms = rabbitmqctl(ctx, "set_permissions", "-p", "/", USER, ".*", ".*", ".*")

    def run(hc: HostContext) -> None:
        hc.host.run(rabbitmqctl(ctx, "await_startup"), env=env, timeout=120)
        users = [line.split()[0] for line in hc.host.run(listing, env=env).splitlines()
                 if line.strip()]
        try:
            hc.host.run(change if USER in users else add, env=env, input=password + "\n")
        except CommandError as exc:  # never show the password, should it be echoed
            raise CommandError(f"rabbitmqctl add_user/change_password {USER}", exc.returncode,
                               exc.output.replace(password, "***")) from None
        hc.host.run(perms, env=env)
        if DEFAULT_USER in users:
            hc.host.run(rabbitmqctl(ctx, "delete_user", DEFAULT_USER), env=env)

    return CallOnce("rabbitmq user", run, inputs=f"{USER}|{digest(password)}|no-guest")


def steps(ctx: ServiceContext) -> list[Step]:
    config, tls = _config(ctx), _tls_files(ctx)
    return [
        site_member_step(ctx, name, "rabbitmq"),
        step(ctx, name, "dirs", "create data and log directories",
             EnsureDirs(((_base(ctx), "rabbitmq", 0o750),
                         (_log_base(ctx), "rabbitmq", 0o750)))),
        *config_steps(ctx, name, config, mode=0o644),
        step(ctx, name, "cookie", "write the node's own Erlang cookie",
             WriteFile(cookie_path(ctx), ctx.secret("rabbitmq.cookie"), mode=0o400,
                       owner="rabbitmq")),
        *tls_steps(ctx, name, ctx.controller, tls, "rabbitmq"),
        *program_steps(ctx, name, programs(ctx), {**config, **tls},
                       {"rabbitmq": TcpProbe(ctx.address, ctx.ports.infra("rabbitmq"))}, 120),
        step(ctx, name, "user", f"create messaging user {USER}", _ensure_user(ctx)),
    ]
