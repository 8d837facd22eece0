"""Health probes: a real request against a listening service."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class HttpProbe:
    """Healthy when an HTTP GET answers with one of the expected statuses."""

    url: str
    ok_statuses: tuple[int, ...] = (200, 300)

    def check(self, timeout: float = 3.0) -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(self.url, timeout=timeout) as resp:  # noqa: S310
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
