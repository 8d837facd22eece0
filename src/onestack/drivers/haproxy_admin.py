"""HAProxy's runtime API over its admin socket: move traffic between API instances.

The socket is on HAProxy's host: asked directly on the machine onestack runs on, and
through the host's connection (a small Python client run there) on any other."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

from onestack.core.host import HostConnection
from onestack.drivers.host import LocalHost
from onestack.errors import CommandError, OnestackError

# The runtime API's client on another host: the command on stdin, the answer out.
REMOTE_CLIENT = """import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read())
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    sys.stdout.buffer.write(chunk)
"""


@dataclass
class HaproxyError(OnestackError):
    """The HAProxy runtime API refused a command or did not answer."""

    command: str
    reason: str

    def __str__(self) -> str:
        return f"haproxy: {self.command}: {self.reason}"


class HaproxyAdmin:
    """Commands on one HAProxy instance's admin socket."""

    def __init__(self, socket_path: Path, host: HostConnection | None = None) -> None:
        self.socket_path = socket_path
        self.host = None if isinstance(host, LocalHost) else host

    def command(self, text: str) -> str:
        answer = self._here(text) if self.host is None else self._there(self.host, text)
        if answer.startswith(("Unknown", "No such", "Require")):
            raise HaproxyError(text, answer.strip())
        return answer

    def _there(self, host: HostConnection, text: str) -> str:
        try:
            return host.run(["python3", "-c", REMOTE_CLIENT, str(self.socket_path)],
                            input=text + "\n", timeout=15)
        except CommandError as exc:
            reason = exc.output.strip().splitlines()[-1:] or [f"exit {exc.returncode}"]
            raise HaproxyError(text, f"{host.name}:{self.socket_path}: {reason[0]}") from None

    def _here(self, text: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(str(self.socket_path))
                s.sendall(text.encode() + b"\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise HaproxyError(text, f"{self.socket_path}: {exc.strerror or exc}") from None
        return b"".join(chunks).decode(errors="replace")

    def server_stats(self, backend: str) -> dict[str, dict[str, str]]:
        """Server name -> its ``show stat`` fields (status, scur, ...)."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows: dict[str, dict[str, str]] = {}
        for line in lines[1:]:
            fields = dict(zip(header, line.split(","), strict=False))
            if fields.get("pxname") == backend and fields.get("svname") not in ("FRONTEND",
                                                                               "BACKEND"):
                rows[fields["svname"]] = fields
        return rows

    def set_state(self, backend: str, server: str, state: str) -> None:
        """``ready``, ``drain`` or ``maint``."""
        self.command(f"set server {backend}/{server} state {state}")

    def wait_up(self, backend: str, server: str, timeout: float = 30) -> None:
        """Wait until HAProxy's own health check sees the server UP."""
        deadline = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < deadline:
            status = self.server_stats(backend).get(server, {}).get("status", "?")
            if status.startswith("UP"):
                return
            time.sleep(0.2)
        raise HaproxyError(f"wait for {backend}/{server}", f"still {status} after {timeout}s")

    def wait_drained(self, backend: str, server: str, timeout: float = 60) -> int:
        """Wait until a draining server has no sessions left; return sessions remaining."""
        deadline = time.monotonic() + timeout
        current = 0
        while time.monotonic() < deadline:
            current = int(self.server_stats(backend).get(server, {}).get("scur", "0") or 0)
            if current == 0:
                return 0
            time.sleep(0.2)
        return current
