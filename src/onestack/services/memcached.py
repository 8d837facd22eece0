"""memcached: token and API caches, on a unix socket only (ADR 0021).

memcached has no authentication a Python client of OpenStack speaks (SASL needs its
binary protocol), and keystone's and nova's oslo.cache entries are plain pickles: so no
TCP listener, and the socket is for the members of its group only.
"""

from __future__ import annotations

from pathlib import Path

from onestack.core.step import Step
from onestack.drivers.probes import UnixSocketProbe
from onestack.drivers.supervisor import Program
from onestack.services.base import (
    Check,
    ServiceContext,
    placed,
    program_steps,
    site_member_step,
    step,
)
from onestack.steps.actions import EnsureDirs

name = "memcached"
kind = "infra"
hosts = placed("memcached")
PACKAGES = ("memcached",)
# Debian's memcached package creates the user; its group is the socket's, and the
# services that cache (every API, keystone's and nova's oslo.cache) are its members.
USER = "memcache"
CLIENT_GROUP = "memcache"
SOCKET_MODE = "0770"  # memcached's -a: the owner's group, nobody else


def run_dir(ctx: ServiceContext) -> Path:
    return ctx.paths.run / name


def socket_path(ctx: ServiceContext) -> Path:
    return run_dir(ctx) / "memcached.sock"


def servers(ctx: ServiceContext) -> str:
    """The ``memcache_servers`` / ``memcached_servers`` value of every service
    (python-memcached's form of a unix socket)."""
    return f"unix:{socket_path(ctx)}"


def programs(ctx: ServiceContext) -> list[Program]:
    # Started as its user (with that user's groups, the site's included), not as root
    # with ``-u``: memcached then drops every supplementary group.
    return [Program("memcached", ["/usr/bin/memcached", "-s", str(socket_path(ctx)),
                                  "-a", SOCKET_MODE, "-m", "128", "-c", "4096"], user=USER)]


def probe(ctx: ServiceContext) -> UnixSocketProbe:
    """memcached answers ``version`` on its socket."""
    return UnixSocketProbe(socket_path(ctx), b"version\r\n", b"VERSION")


def checks(ctx: ServiceContext) -> list[Check]:
    return [Check("memcached", probe(ctx))]


def steps(ctx: ServiceContext) -> list[Step]:
    # The socket's folder is memcached's, open to its group only: the socket inside
    # is made by memcached (as its user) each time it starts.
    folder = step(ctx, name, "dirs", f"create memcached's socket folder {run_dir(ctx)}",
                  EnsureDirs(((run_dir(ctx), f"{USER}:{CLIENT_GROUP}", 0o750),)))
    return [site_member_step(ctx, name, USER), folder,
            *program_steps(ctx, name, programs(ctx), {}, {"memcached": probe(ctx)}, 30)]
