"""HAProxy's runtime API, asked on this machine and through another host's connection:
the same answers, the same errors (a socket that answers as HAProxy's does)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.drivers.haproxy_admin import HaproxyAdmin, HaproxyError
from support.hosts import OtherHost

STAT = ("# pxname,svname,status,scur\nnova,FRONTEND,OPEN,0\nnova,nova-blue,UP,2\n"
        "nova,nova-green,MAINT,0\nnova,BACKEND,UP,2\n")


@pytest.fixture
def admin_socket(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    path, heard = tmp_path / "haproxy.sock", []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                text = conn.recv(4096).decode().strip()
                heard.append(text)
                conn.sendall((STAT if text == "show stat" else
                              "" if text.startswith("set server nova/") else
                              "No such backend.\n").encode())

    threading.Thread(target=serve, daemon=True).start()
    yield path, heard
    server.close()


@pytest.mark.parametrize("through", [None, OtherHost()], ids=["here", "other host"])
def test_stats_and_states_through_either_path(admin_socket: tuple[Path, list[str]],
                                              through: OtherHost | None) -> None:
    path, heard = admin_socket
    admin = HaproxyAdmin(path, through)  # type: ignore[arg-type]
    assert {n: r["status"] for n, r in admin.server_stats("nova").items()} == {
        "nova-blue": "UP", "nova-green": "MAINT"}
    admin.set_state("nova", "nova-green", "ready")
    with pytest.raises(HaproxyError, match="No such backend"):
        admin.set_state("glance", "glance-green", "ready")
    assert heard == ["show stat", "set server nova/nova-green state ready",
                     "set server glance/glance-green state ready"]


def test_a_missing_socket_on_another_host_names_the_host(tmp_path: Path) -> None:
    admin = HaproxyAdmin(tmp_path / "gone.sock", OtherHost())  # type: ignore[arg-type]
    with pytest.raises(HaproxyError) as info:
        admin.command("show stat")
    assert f"ctl2:{tmp_path / 'gone.sock'}" in str(info.value)
    assert "FileNotFoundError" in str(info.value)
