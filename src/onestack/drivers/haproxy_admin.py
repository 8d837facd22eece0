"""HAProxy's runtime API over its admin socket: move traffic between API instances."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

from onestack.errors import OnestackError


@dataclass
class HaproxyError(OnestackError):
    """The HAProxy runtime API refused a command or did not answer."""

    command: str
    reason: str

    def __str__(self) -> str:
        return f"haproxy: {self.command}: {self.reason}"


class HaproxyAdmin:
    """Commands on one HAProxy instance's admin socket."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    def command(self, text: str) -> str:
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
        answer = b"".join(chunks).decode(errors="replace")
        if answer.startswith(("Unknown", "No such", "Require")):
            raise HaproxyError(text, answer.strip())
        return answer

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
