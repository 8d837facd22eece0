"""Guests reached through a dial (issue 22: from a remote controller's bridge, over its
SSH connection): every way of reaching a guest uses the dial it is given."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from onestack.drivers.guest_ssh import GuestAccess, direct, http_text
from onestack.errors import GuestSshError


@pytest.fixture
def server() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                if conn.recv(1024).startswith(b"GET"):
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                                 b"hello from the guest\n")

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


class Recorder:
    """A dial that reaches the test server wherever it is asked to go (as a tunnel
    reaches what only its host sees), and records where."""

    def __init__(self, port: int) -> None:
        self.port, self.asked = port, []  # type: ignore[var-annotated]

    def __call__(self, address: str, port: int, timeout: float) -> Any:
        self.asked.append((address, port))
        return direct("127.0.0.1", self.port, timeout)


def refuse(address: str, port: int, timeout: float) -> Any:
    raise OSError(f"through ctl1: ChannelException: (2, 'Connect failed') {address}")


def test_every_way_in_goes_through_the_dial(server: int) -> None:
    dial = Recorder(server)
    access = GuestAccess(dial)
    assert access.http_text("198.19.0.77", 80) == "hello from the guest\n"
    assert access.tcp_connects("198.19.0.77", 22, 3)
    assert not access.ssh_answers("198.19.0.77")  # the test server is no SSH server
    assert dial.asked == [("198.19.0.77", 80), ("198.19.0.77", 22), ("198.19.0.77", 22)]


def test_a_refused_tunnel_is_no_answer_not_a_crash() -> None:
    access = GuestAccess(refuse)
    assert not access.tcp_connects("198.19.0.77", 22, 3)
    assert not access.ssh_answers("198.19.0.77")
    with pytest.raises(GuestSshError, match="Connect failed"):
        http_text("198.19.0.77", 80, dial=refuse)
