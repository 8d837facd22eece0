"""Health probes: a real request against a listening service."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from onestack.core.host import HostConnection
from onestack.drivers.host import LocalHost
from onestack.errors import CommandError


@dataclass(frozen=True)
class HttpProbe:
    """Healthy when an HTTP GET answers with one of the expected statuses."""

    url: str
    ok_statuses: tuple[int, ...] = (200, 300)
    cafile: str = ""  # the CA an https URL's certificate must chain to

    def check(self, timeout: float = 3.0) -> tuple[bool, str]:
        context = ssl.create_default_context(cafile=self.cafile) if self.cafile else None
        try:
            with urllib.request.urlopen(self.url, timeout=timeout,  # noqa: S310
                                        context=context) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            return False, f"GET {self.url}: {getattr(exc, 'reason', exc)}"
        return status in self.ok_statuses, f"GET {self.url} -> {status}"


@dataclass(frozen=True)
class TcpProbe:
    """Healthy when a TCP connection is accepted."""

    host: str
    port: int

    def check(self, timeout: float = 2.0) -> tuple[bool, str]:
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                return True, f"tcp {self.host}:{self.port} accepts"
        except OSError as exc:
            return False, f"tcp {self.host}:{self.port}: {exc.strerror or exc}"


@dataclass(frozen=True)
class UnixSocketProbe:
    """Healthy when a unix socket accepts a connection and answers ``request`` with a
    reply starting with ``expect`` (on this machine)."""

    path: Path
    request: bytes
    expect: bytes

    def check(self, timeout: float = 2.0) -> tuple[bool, str]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.path))
                sock.sendall(self.request)
                reply = sock.recv(256)
        except OSError as exc:
            return False, f"unix {self.path}: {exc.strerror or exc}"
        if reply.startswith(self.expect):
            return True, f"unix {self.path} answers"
        return False, f"unix {self.path}: unexpected reply {reply[:40]!r}"


@dataclass(frozen=True)
class CommandProbe:
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

    def through(self, host: HostConnection) -> CommandProbe:
        """The same probe, run on ``host`` through its connection."""
        return self if isinstance(host, LocalHost) else replace(self, via=host)

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
