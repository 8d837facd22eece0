"""End to end on a real HAProxy: a blue/green swap with a gap holds requests, loses none.

HAProxy runs onestack's own rendered configuration (hold.lua included) at the largest
port offset, in front of two small HTTP servers that say which colour answered. A
rollback's nova swap drains the live instance first, runs a conversion while no
instance takes traffic, then gives traffic to the other: every request sent
meanwhile must succeed (held, not refused); and when the conversion fails, traffic
goes back to the instance it came from.
"""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.core.progress import SilentProgress
from onestack.drivers.host import LocalHost
from onestack.drivers.probes import HttpProbe
from onestack.model.paths import SitePaths
from onestack.model.ports import MAX_PORT_OFFSET, Ports
from onestack.model.site import default_lab_site
from onestack.services import haproxy
from onestack.services.base import ServiceContext
from onestack.state.tls import site_tls
from onestack.steps.context import HostContext
from onestack.steps.upgrade_actions import SwapApi

pytestmark = pytest.mark.e2e
PORTS = Ports(MAX_PORT_OFFSET)


class Colour(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self.server.colour.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Running:
    """Both instances look RUNNING to the swap; onestack's supervisor is not involved."""

    def state(self, name: str) -> str:
        return "RUNNING"

    def stop(self, name: str) -> None:
        pass


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ServiceContext]:
    if not shutil.which("haproxy"):
        subprocess.run(["apt-get", "install", "-y", "-q", "haproxy"], check=True)
    site = default_lab_site().model_copy(update={"port_offset": MAX_PORT_OFFSET})
    paths = SitePaths(tmp_path, site.name)
    global CAFILE
    site_tls(paths, site, generate=True)  # what up makes
    CAFILE = str(paths.ca_cert)
    ctx = ServiceContext(site=site, series="2026.1", paths=paths,
                         secrets={"haproxy.stats": "hold-test-stats"},
                         venv=paths.venv("2026.1"), ports=PORTS)
    servers = []
    for colour in ("blue", "green"):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", PORTS.backend("keystone", colour)),
                                              Colour)
        srv.colour = colour  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    paths.run.mkdir(parents=True)
    haproxy.chroot_dir(ctx).mkdir()  # the workers' empty root (the deploy's EnsureDirs)
    haproxy.hold_script_path(ctx).parent.mkdir(parents=True)
    haproxy.hold_script_path(ctx).write_text(haproxy.HOLD_LUA)
    haproxy.config_path(ctx).write_text(haproxy.render(ctx))
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(haproxy.config_path(ctx))])
    try:
        deadline = time.monotonic() + 10
        while answer() != "blue":
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        yield ctx
    finally:
        proc.terminate()
        proc.wait()
        for srv in servers:
            srv.shutdown()
            srv.server_close()


CAFILE = ""  # the site CA of the fixture's HAProxy (its frontend speaks TLS)


def answer() -> str:
    url = f"https://127.0.0.1:{PORTS.frontend('keystone')}/v3"
    context = ssl.create_default_context(cafile=CAFILE)
    try:
        with urllib.request.urlopen(url, timeout=30, context=context) as resp:
            return str(resp.read().decode())
    except OSError as exc:
        return f"failed: {exc}"


def swap(ctx: ServiceContext, between: Any) -> SwapApi:
    return SwapApi("keystone", "keystone-api", "keystone-api-green", "keystone-blue",
                   "keystone-green",
                   HttpProbe(f"http://127.0.0.1:{PORTS.backend('keystone', 'green')}/v3"),
                   ctx.paths.run / "haproxy.sock", to_port=PORTS.backend("keystone", "green"),
                   between=between)


def under_load(action: SwapApi, ctx: ServiceContext) -> tuple[list[tuple[float, str]], Any]:
    """Apply ``action`` while a client sends requests; (latency, answer) of each."""
    results: list[tuple[float, str]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            got = answer()
            results.append((time.monotonic() - t0, got))
            time.sleep(0.05)

    worker = threading.Thread(target=client)
    worker.start()
    time.sleep(0.5)
    hctx = HostContext(LocalHost("aio"), ctx.paths, Running(), SilentProgress())  # type: ignore[arg-type]
    error = None
    try:
        action.apply(hctx)
    except RuntimeError as exc:
        error = exc
    time.sleep(0.5)
    stop.set()
    worker.join()
    return results, error


def test_a_gap_holds_requests_and_none_fails(proxy: ServiceContext) -> None:
    sent_in_gap: list[str] = []

    def convert(_: HostContext) -> None:
        # A request sent now waits at HAProxy until green takes traffic.
        threading.Thread(target=lambda: sent_in_gap.append(answer())).start()
        time.sleep(2)
        assert not sent_in_gap

    results, error = under_load(swap(proxy, convert), proxy)
    assert error is None
    answers = [a for _, a in results]
    assert not [a for a in answers if a not in ("blue", "green")], answers
    assert answers[0] == "blue" and answers[-1] == "green"
    assert sent_in_gap == ["green"]
    assert max(t for t, _ in results) > 1.5  # held through the gap, not refused


def test_a_failed_gap_gives_traffic_back(proxy: ServiceContext) -> None:
    def convert(_: HostContext) -> None:
        time.sleep(1)
        raise RuntimeError("conversion failed")

    results, error = under_load(swap(proxy, convert), proxy)
    assert isinstance(error, RuntimeError)
    answers = [a for _, a in results]
    assert set(answers) == {"blue"}, answers
