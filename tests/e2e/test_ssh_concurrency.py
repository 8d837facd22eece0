"""One SSH host used by many threads at once, as the deploy plan's parallel lanes do.

A lab host (its own sshd, MaxSessions at its default of 10) gets, all at the same
moment and through ONE fresh SshHost: two uploads of a 300 MiB file, several small
file writes and more concurrent commands than sshd allows channels on a connection.
Everything must finish within a deadline, both uploads must arrive intact, every
small file must have its content and mode, and the host must have been reached over
one SSH connection. Its own home, bridge and network (ostk-sshc0, 198.18.92.0/24),
all removed afterwards whatever happened.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from onestack.drivers.labhosts import Lab
from onestack.drivers.ssh_host import SshHost, SshTarget

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root"),
    pytest.mark.usefixtures("network_tools"),
]

HOME = Path(os.environ.get("ONESTACK_E2E_SSHC_HOME", "/var/tmp/onestack-e2e-sshc"))
BRIDGE = os.environ.get("ONESTACK_TEST_SSHC_BRIDGE", "ostk-sshc0")
NETWORK = os.environ.get("ONESTACK_TEST_SSHC_NETWORK", "198.18.92.0/24")
BIG_MIB = 300  # two of them: more than paramiko's former 512 MiB between key renewals
DEADLINE = 120.0  # seconds for everything at once; it takes well under a minute
SLEEPERS = 12  # more than sshd's MaxSessions (10) channels on one connection
WRITES = 6
REMOTE = Path("/var/lib/onestack/sshc")  # the lab host's own, not this machine's

Job = Callable[[], object]


@pytest.fixture(scope="module")
def lab1() -> Iterator[SshTarget]:
    if (HOME / "lab" / "lab.json").exists():  # a run killed before its teardown
        Lab.open(HOME / "lab").delete()
    shutil.rmtree(HOME, ignore_errors=True)
    lab = Lab.open(HOME / "lab", BRIDGE, NETWORK)
    try:
        lab.create(1)
        spec = lab.spec.host(1)
        yield SshTarget(spec.name, spec.address, lab.spec.key_file, lab.spec.known_hosts,
                        connect_timeout=5)
    finally:  # no namespace, bridge, veth or process stays
        lab.delete()
        shutil.rmtree(HOME, ignore_errors=True)


@pytest.fixture(scope="module")
def big_file(lab1: SshTarget) -> tuple[Path, str]:
    """A file of random bytes on this machine and its sha256."""
    path, sha = HOME / "big.bin", hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(BIG_MIB):
            chunk = os.urandom(1 << 20)
            sha.update(chunk)
            out.write(chunk)
    return path, sha.hexdigest()


def _run_at_once(jobs: dict[str, Job], deadline: float) -> dict[str, object]:
    """Start every job in its own thread at the same moment; their results (or the
    exceptions they raised). Jobs still running at the deadline fail the test; their
    daemon threads cannot keep the test process alive."""
    results: dict[str, object] = {}
    start = threading.Barrier(len(jobs))

    def runner(name: str, job: Job) -> None:
        start.wait()
        try:
            results[name] = job()
        except Exception as exc:  # noqa: BLE001  reported with the job's name below
            results[name] = exc

    threads = [threading.Thread(target=runner, args=item, daemon=True, name=item[0])
               for item in jobs.items()]
    for thread in threads:
        thread.start()
    end = time.monotonic() + deadline
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    hung = sorted(t.name for t in threads if t.is_alive())
    assert not hung, f"still running after {deadline:.0f}s (hung): {hung}"
    return results


def _jobs(host: SshHost, big: Path) -> dict[str, Job]:
    jobs: dict[str, Job] = {
        f"put-{x}": lambda x=x: host.put_file(big, REMOTE / f"big-{x}.bin", mode=0o640)
        for x in "ab"}
    for i in range(WRITES):
        jobs[f"write-{i}"] = lambda i=i: host.write_file(
            REMOTE / f"small-{i}.conf", f"password = sekrit-{i}\n", mode=0o640)
    for i in range(SLEEPERS):
        jobs[f"sleep-{i}"] = lambda i=i: host.run(["sh", "-c", f"sleep 2; echo slept-{i}"])
    return jobs


def test_many_threads_share_one_host_without_hanging(lab1: SshTarget,
                                                     big_file: tuple[Path, str]) -> None:
    big, sha = big_file
    host = SshHost(lab1)  # not connected yet: every thread asks for the session at once
    try:
        began = time.monotonic()
        results = _run_at_once(_jobs(host, big), DEADLINE)
        took = time.monotonic() - began
        failed = [f"{n}: {type(r).__name__}: {r}" for n, r in sorted(results.items())
                  if isinstance(r, Exception)]
        assert not failed, "\n".join(failed)
        print(f"\nall {len(results)} jobs at once took {took:.1f}s")
        for i in range(SLEEPERS):
            assert results[f"sleep-{i}"] == f"slept-{i}\n"
        for x in "ab":
            assert host.file_digest(REMOTE / f"big-{x}.bin") == sha
            assert host.file_mode(REMOTE / f"big-{x}.bin") == 0o640
        for i in range(WRITES):
            assert host.read_file(REMOTE / f"small-{i}.conf") == f"password = sekrit-{i}\n"
            assert host.file_mode(REMOTE / f"small-{i}.conf") == 0o640
        assert host.list_dir(REMOTE, ".*.tmp") == []
        connections = host.run(["ss", "-Htn", "state", "established", "sport = :22"])
        assert len(connections.splitlines()) == 1, connections  # one session, not a race's
    finally:
        host.close()
