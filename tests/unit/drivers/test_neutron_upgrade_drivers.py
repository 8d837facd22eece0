"""What an upgrade asks of neutron through the drivers: its OVN hash ring judged, its
metadata ports written again, and a cloud that does not answer asked only once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from onestack.drivers import openstack
from onestack.drivers.mysql import HashRingProbe
from onestack.drivers.probes import AllOf, TcpProbe

RING = HashRingProbe(Path("/nonexistent"), "neutron", "mechanism_driver", 15, 120)


def test_a_ring_of_live_workers_is_healthy() -> None:
    ok, detail = RING.judge([("aio-blue", 3), ("aio-green", 14)])
    assert ok and "2 live worker(s) (aio-blue, aio-green)" in detail


def test_a_worker_that_stopped_touching_but_still_counts_is_named() -> None:
    """An API instance stopped without leaving the ring: neutron hashes events to it
    for up to 120 s after its last touch, and they are lost."""
    ok, detail = RING.judge([("aio-green", 2), ("aio-blue", 80)])
    assert not ok and "aio-blue (80s)" in detail


def test_workers_neutron_no_longer_counts_are_ignored() -> None:
    assert RING.judge([("aio-green", 2), ("aio-blue", 4000)])[0]


def test_an_empty_ring_is_unhealthy() -> None:
    ok, detail = RING.judge([])
    assert not ok and "no live worker" in detail


def test_a_database_that_does_not_answer_is_unhealthy() -> None:
    ok, detail = RING.check(timeout=1)
    assert not ok and detail


def test_all_of_stops_at_the_first_failing_probe() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert AllOf((TcpProbe("127.0.0.1", port),)).check()[0]
        ok, detail = AllOf((TcpProbe("127.0.0.1", port), RING)).check(timeout=1)
    assert not ok and detail.startswith(f"tcp 127.0.0.1:{port} accepts; ")


@dataclass
class FakePort:
    id: str
    name: str


@dataclass
class FakeNetwork:
    ports_of: dict[str, list[FakePort]]
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def ports(self, device_owner: str) -> list[FakePort]:
        return self.ports_of.get(device_owner, [])

    def update_port(self, port: str, **attrs: Any) -> None:
        self.updates.append((port, attrs))


@dataclass
class FakeConn:
    network: FakeNetwork


def test_metadata_ports_are_updated_by_id_with_their_own_name() -> None:
    """By id and with the name sent, so openstacksdk makes the request (a resource
    with nothing changed would send nothing) and ML2/OVN writes the row again."""
    net = FakeNetwork({openstack.METADATA_PORT_OWNER: [FakePort("p1", ""),
                                                       FakePort("p2", "meta")],
                       "compute:nova": [FakePort("vm", "vm")]})
    done = openstack.rewrite_ports(FakeConn(net), openstack.METADATA_PORT_OWNER)
    assert done == ["p1", "p2"]
    assert net.updates == [("p1", {"name": ""}), ("p2", {"name": "meta"})]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTP address that accepts connections and never answers (HAProxy holding a
    request for an API without an instance)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v3"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    listener.close()


def test_an_api_that_does_not_answer_costs_one_wait(silent_server: str) -> None:
    openstack._not_answering.clear()
    started = time.monotonic()
    assert not openstack.answers(silent_server, timeout=1.0)
    first = time.monotonic() - started
    assert not openstack.answers(silent_server, timeout=1.0)
    assert not openstack.answers(silent_server, timeout=1.0)
    assert 0.9 < first < 3 and time.monotonic() - started < first + 0.5


def test_an_api_that_answers_with_an_error_status_answers() -> None:
    import http.server

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the library's name)
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert openstack.answers(f"http://127.0.0.1:{server.server_port}/v3")
    finally:
        server.shutdown()
        server.server_close()
