"""Health probes: a real request against a listening service."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, Self

from onestack.core.host import HostConnection
from onestack.drivers import probe_checks
from onestack.drivers.host import LocalHost
from onestack.errors import CommandError


class RunsOnAHost:
    """A probe that can be bound to a host of the site (its ``via`` field): bound, it
    runs there through the host's connection; unbound, or bound to this machine, here."""

    def through(self, host: HostConnection) -> Self:
        """The same probe, run on ``host`` through its connection."""
        return self if isinstance(host, LocalHost) else replace(self, via=host)  # type: ignore[type-var]


def _there(host: HostConnection, check: str, kwargs: dict[str, Any],
           timeout: float) -> tuple[bool, str]:
    """A check of ``probe_checks`` run on another host by its python3 (the module's
    source and the arguments on stdin, the verdict back as JSON)."""
    request = json.dumps({"check": check, "kwargs": kwargs})
    try:
        out = host.run(["python3", "-c", _REMOTE_RUNNER], input=_CHECKS_SOURCE + "\n#--\n"
                       + request, timeout=timeout + 10)
        ok, detail = json.loads(out.strip().splitlines()[-1])
    except CommandError as exc:
        return False, f"{host.name}: {exc.output.strip()[-200:] or f'exit {exc.returncode}'}"
    except (ValueError, IndexError):
        return False, f"{host.name}: no verdict from the check"
    return bool(ok), f"{detail} (from {host.name})"


# Reads the checks' source and the request from stdin, runs the named check.
_REMOTE_RUNNER = """import json, sys
source, request = sys.stdin.read().split("\\n#--\\n", 1)
scope = {"__name__": "probe_checks"}
exec(compile(source, "probe_checks", "exec"), scope)
request = json.loads(request)
kwargs = request["kwargs"]
for key in ("request", "expect"):
    if key in kwargs:
        kwargs[key] = kwargs[key].encode("latin-1")
print(json.dumps(list(scope[request["check"]](**kwargs))))
"""
_CHECKS_SOURCE = inspect.getsource(probe_checks)


@dataclass(frozen=True)
class HttpProbe(RunsOnAHost):
    """Healthy when an HTTP GET answers with one of the expected statuses (asked on
    this machine, or on the host it is bound to: ``through``)."""

    url: str
    ok_statuses: tuple[int, ...] = (200, 300)
    cafile: str = ""  # the CA an https URL's certificate must chain to
    via: HostConnection | None = field(default=None, compare=False, repr=False)


    def check(self, timeout: float = 3.0) -> tuple[bool, str]:
        kwargs = {"url": self.url, "ok_statuses": list(self.ok_statuses),
                  "cafile": self.cafile, "timeout": timeout}
        if self.via is not None:
            return _there(self.via, "http_check", kwargs, timeout)
        return probe_checks.http_check(**kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TcpProbe(RunsOnAHost):
    """Healthy when a TCP connection is accepted (here, or on the bound host)."""

    host: str
    port: int
    via: HostConnection | None = field(default=None, compare=False, repr=False)


    def check(self, timeout: float = 2.0) -> tuple[bool, str]:
        if self.via is not None:
            return _there(self.via, "tcp_check", {"host": self.host, "port": self.port,
                                                  "timeout": timeout}, timeout)
        return probe_checks.tcp_check(self.host, self.port, timeout)


@dataclass(frozen=True)
class UnixSocketProbe(RunsOnAHost):
    """Healthy when a unix socket accepts a connection and answers ``request`` with a
    reply starting with ``expect`` (on this machine, or on the bound host)."""

    path: Path
    request: bytes
    expect: bytes
    via: HostConnection | None = field(default=None, compare=False, repr=False)


    def check(self, timeout: float = 2.0) -> tuple[bool, str]:
        if self.via is not None:
            return _there(self.via, "unix_check", {
                "path": str(self.path), "request": self.request.decode("latin-1"),
                "expect": self.expect.decode("latin-1"), "timeout": timeout}, timeout)
        return probe_checks.unix_check(str(self.path), self.request, self.expect, timeout)


@dataclass(frozen=True)
class CommandProbe(RunsOnAHost):
    """Healthy when a read-only command exits 0 and one line of its output starts with
    ``expect`` (a daemon's control socket or database answering, e.g. ``ovsdb-client
    list-dbs`` naming its database).

    ``runs_on`` names the site host the command must run on; the step that waits on
    the probe binds it to that host's connection (``through``), as for
    ``drivers.mysql.ServiceReportProbe``. Unbound, it runs on this machine."""

    argv: tuple[str, ...]
    expect: str
    env: tuple[tuple[str, str], ...] = ()
    runs_on: str = ""
    via: HostConnection | None = field(default=None, compare=False, repr=False)
    label: str = ""  # what the result names (default: the command's first words)


    def check(self, timeout: float = 3.0) -> tuple[bool, str]:
        host = self.via or LocalHost()
        shown = self.label or " ".join(self.argv[:3])
        try:
            out = host.run(self.argv, env=dict(self.env), timeout=max(timeout, 5))
        except CommandError as exc:
            return False, f"{shown}: {exc.output.strip()[-200:] or f'exit {exc.returncode}'}"
        found = [line.strip() for line in out.splitlines()
                 if line.strip().startswith(self.expect)]
        if found:
            return True, f"{shown}: {found[0][:120] if self.label else self.expect}"
        return False, f"{shown}: no {self.expect!r} in {out.strip()[-200:]!r}"


@dataclass(frozen=True)
class AllOf:
    """Healthy when every probe is, asked in order (the first is what the component
    listens on: ``status`` shows its address)."""

    probes: tuple[Probe, ...]

    def check(self, timeout: float = 3.0) -> tuple[bool, str]:
        details = []
        for probe in self.probes:
            ok, detail = probe.check(timeout)
            details.append(detail)
            if not ok:
                return False, "; ".join(details)
        return True, "; ".join(details)


class Probe(Protocol):
    """Anything that can tell, with a real request, whether a component is healthy."""

    def check(self, timeout: float = ...) -> tuple[bool, str]: ...


def wait_until_healthy(probe: Probe, timeout: float, interval: float = 0.25,
                       stop_if: Callable[[], bool] | None = None) -> tuple[bool, str]:
    """Poll a probe until it passes, ``stop_if`` says waiting is pointless, or the
    timeout expires; return the last result."""
    deadline = time.monotonic() + timeout
    ok, detail = probe.check()
    while not ok and time.monotonic() < deadline:
        if stop_if is not None and stop_if():
            return False, detail
        time.sleep(interval)
        ok, detail = probe.check()
    return ok, detail
