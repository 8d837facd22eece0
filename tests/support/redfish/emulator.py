"""Start and stop the fleet emulator (a real sushy-tools process) for tests and benchmarks."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.redfish.fleet import FakeBmc, write_fleet

SCRIPT = Path(__file__).with_name("fleet_emulator.py")
PORT_RANGE = (18000, 19999)


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, low: int = PORT_RANGE[0], high: int = PORT_RANGE[1]) -> list[int]:
    """``count`` consecutive free loopback ports inside our allotted range."""
    for _ in range(200):
        start = random.randrange(low, high - count)
        ports = list(range(start, start + count))
        if all(_free(p) for p in ports):
            return ports
    raise RuntimeError(f"no block of {count} free ports in {low}-{high}")


@contextmanager
def running_fleet(bmcs: list[FakeBmc], workdir: Path, power_delay_s: float = 0.5,
                  extra_args: list[str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """Run the emulator with one endpoint per BMC until the block exits."""
    fleet = write_fleet(workdir / "fleet.json", bmcs, power_delay_s)
    args = extra_args or ["--listen-each"]
    log = (workdir / "emulator.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[3])}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--fleet", str(fleet), *args],
                            stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        _wait_ready(proc, workdir / "emulator.log")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_ready(proc: subprocess.Popen[str], log: Path, timeout_s: float = 30.0) -> None:
    assert proc.stdout is not None
    ends_at = time.monotonic() + timeout_s
    while time.monotonic() < ends_at:
        line = proc.stdout.readline()
        if line.startswith("READY"):
            return
        if proc.poll() is not None:
            break
    raise RuntimeError(f"emulator did not start: {log.read_text()[-2000:]}")
