"""The checks behind the network probes, in the standard library only: run here as
functions, and on another host of the site as this module's source handed to its
python3 (``drivers.probes``), so both places judge a component the same way."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request


def http_check(url: str, ok_statuses: list[int], cafile: str,
               timeout: float) -> tuple[bool, str]:
    """Healthy when an HTTP GET answers with one of ``ok_statuses``."""
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        with urllib.request.urlopen(url, timeout=timeout,  # noqa: S310
                                    context=context) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return False, f"GET {url}: {getattr(exc, 'reason', exc)}"
    return status in ok_statuses, f"GET {url} -> {status}"


def tcp_check(host: str, port: int, timeout: float) -> tuple[bool, str]:
    """Healthy when a TCP connection is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"tcp {host}:{port} accepts"
    except OSError as exc:
        return False, f"tcp {host}:{port}: {exc.strerror or exc}"


def unix_check(path: str, request: bytes, expect: bytes, timeout: float) -> tuple[bool, str]:
    """Healthy when a unix socket answers ``request`` with a reply starting ``expect``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(request)
            reply = sock.recv(256)
    except OSError as exc:
        return False, f"unix {path}: {exc.strerror or exc}"
    if reply.startswith(expect):
        return True, f"unix {path} answers"
    return False, f"unix {path}: unexpected reply {reply[:40]!r}"
