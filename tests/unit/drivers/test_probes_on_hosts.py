"""A network probe asked on another host of the site (bound with ``through``) judges
as it does here: the same checks, run there by that host's python3."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.drivers.host import LocalHost
from onestack.drivers.probes import HttpProbe, TcpProbe, UnixSocketProbe
from support.hosts import OtherHost


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_http_and_tcp_verdicts_are_the_same_here_and_there(web: int) -> None:
    there = OtherHost()
    for probe in (HttpProbe(f"http://127.0.0.1:{web}/"), HttpProbe(f"http://127.0.0.1:{web}/x"),
                  TcpProbe("127.0.0.1", web)):
        ok, detail = probe.check()
        remote_ok, remote_detail = probe.through(there).check()  # type: ignore[arg-type]
        assert (remote_ok, remote_detail) == (ok, f"{detail} (from ctl2)")
    assert [c[:2] for c in there.commands] == [["python3", "-c"]] * 3
    closed = TcpProbe("127.0.0.1", 1).through(there).check()  # type: ignore[arg-type]
    assert closed[0] is False and "refused" in closed[1].lower()


def test_a_unix_socket_answers_there(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(64)
            conn.sendall(b"\xffVERSION 1.6\r\n")

    threading.Thread(target=answer, daemon=True).start()
    probe = UnixSocketProbe(path, b"version\r\n", b"\xffVERSION")
    try:
        assert probe.through(OtherHost()).check() == (  # type: ignore[arg-type]
            True, f"unix {path} answers (from ctl2)")
    finally:
        server.close()
    assert probe.through(LocalHost()) is probe  # here: asked directly
