"""memcached: token and API caches."""

from __future__ import annotations

from onestack.core.step import Step
from onestack.drivers.probes import TcpProbe
from onestack.drivers.supervisor import Program
from onestack.services.base import Check, ServiceContext, on_controller, program_steps

name = "memcached"
kind = "infra"
hosts = on_controller  # the control plane
PACKAGES = ("memcached",)


def servers(ctx: ServiceContext) -> str:
    return f"{ctx.address}:{ctx.ports.infra('memcached')}"


def programs(ctx: ServiceContext) -> list[Program]:
    return [Program("memcached", ["/usr/bin/memcached", "-u", "memcache", "-l", ctx.address,
                                  "-p", str(ctx.ports.infra("memcached")), "-m", "128",
                                  "-c", "4096"])]


def checks(ctx: ServiceContext) -> list[Check]:
    return [Check("memcached", TcpProbe(ctx.address, ctx.ports.infra("memcached")))]


def steps(ctx: ServiceContext) -> list[Step]:
    probe = TcpProbe(ctx.address, ctx.ports.infra("memcached"))
    return program_steps(ctx, name, programs(ctx), {}, {"memcached": probe}, 30)
