"""OpenStack APIs as uWSGI applications (the ``pyuwsgi`` wheel), one per color."""

from __future__ import annotations

from pathlib import Path

from onestack.drivers.supervisor import Program
from onestack.services.base import ServiceContext


def ini(ctx: ServiceContext, service: str, module: str, color: str | None = None,
        processes: int = 2, extra: dict[str, str] | None = None,
        listen: str | None = None) -> str:
    """The uWSGI ini of one API instance (``listen``: an address:port of its own
    instead of the color's backend behind HAProxy)."""
    color = color or ctx.color(service)
    lines = {
        "http-socket": listen or f"{ctx.address}:{ctx.ports.backend(service, color)}",
        "module": module,
        "master": "true",
        "processes": str(processes),
        "threads": "1",
        "enable-threads": "true",
        "lazy-apps": "true",
        "need-app": "true",
        "die-on-term": "true",
        "vacuum": "true",
        "buffer-size": "65535",
        "http-keepalive": "false",
        "add-header": "Connection: close",
        "thunder-lock": "true",
        # A worker gets 5 s to finish on stop: HAProxy has drained the instance
        # first, and 2026.2's nova-api workers otherwise hang until SIGKILL.
        "worker-reload-mercy": "5",
        "procname-prefix": f"{service}-{color}-",
        **(extra or {}),
    }
    return "[uwsgi]\n" + "".join(f"{k} = {v}\n" for k, v in lines.items())


def ini_path(ctx: ServiceContext, service: str, color: str = "blue") -> Path:
    return ctx.etc(service) / f"{service}-api-{color}.ini"


def program(ctx: ServiceContext, service: str, color: str | None = None) -> Program:
    """The supervised uWSGI process of an API instance.

    ``color`` defaults to the live instance's. The service finds its configuration
    through ``OS_<SERVICE>_CONFIG_DIR``. It is set in the process environment, not
    with uWSGI's ``env`` option: pyuwsgi starts Python before it reads its ini, so
    ``os.environ`` would never see it.
    """
    color = color or ctx.color(service)
    env = config_environment(ctx, service)
    command = [ctx.bin("uwsgi"), "--ini", str(ini_path(ctx, service, color))]
    if service in FRESH_TMPDIR:
        env["TMPDIR"] = str(ctx.paths.data / service / f"api-{color}-tmp")
        command = ["/bin/sh", "-c", _FRESH_TMPDIR_SCRIPT, "sh", *command]
    return Program(f"{service}-api" if color == "blue" else f"{service}-api-{color}",
                   command, environment=env, user=service, stopsignal="TERM", startsecs=1)


def config_environment(ctx: ServiceContext, service: str) -> dict[str, str]:
    """How a service's WSGI application finds its configuration (see :func:`program`)."""
    return {f"OS_{service.upper()}_CONFIG_DIR": str(ctx.etc(service))}


# APIs that keep per-start state in temp files named after their uWSGI master's PID,
# which is the same at every start in the program's PID namespace (ADR 0010): neutron
# (2026.2) records its start time in $TMPDIR/neutron_start_time<ppid> and derives its
# OVN hash-ring node from it, so a restarted API reused the last start's node and
# failed on its own row (DBDuplicateEntry). Each gets a temp folder of its own,
# emptied at every start (under its data folder, which its user owns).
FRESH_TMPDIR = frozenset({"neutron"})
_FRESH_TMPDIR_SCRIPT = ('mkdir -p "${TMPDIR:?}" && find "$TMPDIR" -mindepth 1 -delete '
                        '&& exec "$@"')
