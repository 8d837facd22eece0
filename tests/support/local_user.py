"""What an unprivileged local user tries against a deployed site (issue 21).

Run as that user (``setpriv --reuid=nobody --regid=nogroup --clear-groups python3
local_user.py``) with a JSON list of attempts on stdin; prints one JSON object: per
attempt, ``"refused: <why>"`` or ``"GOT: <what>"``. Standard library only: it runs with
the system's Python, outside any environment of the site.

Attempts (each a list, first element the kind):
- ``["read", path]`` / ``["write", path]``: open a file for reading or for writing
  (without truncating: nothing is changed even if it opens);
- ``["unix", path]``: connect to a unix socket;
- ``["tcp", host, port]``: connect to a TCP port;
- ``["amqp", host, port, user, password]``: log into RabbitMQ (AMQP 0-9-1, PLAIN);
- ``["mkdir", path]``: create a folder (removed again if it was made);
- ``["run", argv...]``: a command, refused when it exits non-zero.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

TIMEOUT = 5.0


def _read(path: str) -> str:
    with open(path, "rb") as handle:
        return f"GOT: read {len(handle.read(64))} bytes of {path}"


def _write(path: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    os.close(fd)
    return f"GOT: opened {path} for writing"


def _unix(path: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(path)
    return f"GOT: connected to {path}"


def _tcp(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=TIMEOUT):
        return f"GOT: connected to {host}:{port}"


def _frame(payload: bytes) -> bytes:
    return struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce"


def _read_frame(sock: socket.socket) -> tuple[int, int]:
    """(class, method) of the next method frame; (0, 0) when the server closed."""
    header = sock.recv(7)
    if len(header) < 7:
        return 0, 0
    _, _, size = struct.unpack(">BHI", header)
    body = b""
    while len(body) < size + 1:
        chunk = sock.recv(size + 1 - len(body))
        if not chunk:
            return 0, 0
        body += chunk
    return struct.unpack(">HH", body[:4])


def _amqp(host: str, port: int, user: str, password: str) -> str:
    """Connection.Start -> Start-Ok (PLAIN); Tune means the login was accepted."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        if _read_frame(sock) != (10, 10):
            return "refused: no Connection.Start"
        response = f"\0{user}\0{password}".encode()
        payload = (struct.pack(">HH", 10, 11) + struct.pack(">I", 0)
                   + bytes([5]) + b"PLAIN" + struct.pack(">I", len(response)) + response
                   + bytes([5]) + b"en_US")
        sock.sendall(_frame(payload))
        answer = _read_frame(sock)
    if answer == (10, 30):
        return f"GOT: logged into AMQP at {host}:{port} as {user}"
    return f"refused: AMQP login as {user} (answer {answer})"


def _mkdir(path: str) -> str:
    os.mkdir(path)
    os.rmdir(path)
    return f"GOT: made {path}"


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        return f"refused: exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-160:]}"
    return f"GOT: {' '.join(argv[:2])}: {proc.stdout.strip()[:160]}"


def attempt(kind: str, args: list[Any]) -> str:
    actions: dict[str, Callable[..., str]] = {
        "read": _read, "write": _write, "unix": _unix, "tcp": _tcp, "amqp": _amqp,
        "mkdir": _mkdir}
    try:
        if kind == "run":
            return _run([str(a) for a in args])
        return str(actions[kind](*args))
    except OSError as exc:
        return f"refused: {type(exc).__name__}: {exc.strerror or exc}"


def main() -> None:
    attempts = json.load(sys.stdin)
    results = {json.dumps(a): attempt(a[0], a[1:]) for a in attempts}
    json.dump({"uid": os.getuid(), "groups": os.getgroups(), "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
