"""Finding a program's processes by its marker, with real processes on this machine."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.core.progress import SilentProgress
from onestack.drivers import processes
from onestack.drivers.host import LocalHost
from onestack.drivers.supervisor import count_unexpected_exits, program_marker
from onestack.model.paths import SitePaths
from onestack.steps.actions import remove_leftovers
from onestack.steps.context import HostContext


@pytest.fixture
def orphans(tmp_path: Path) -> Iterator[tuple[str, list[int]]]:
    """Two detached processes carrying a program's marker, as a crash leaves them."""
    marker = program_marker(SitePaths(tmp_path, "lab").log, "keystone-api")
    env = {**os.environ, processes.MARKER_VARIABLE: marker}
    procs = [subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
             for _ in range(2)]
    try:
        yield marker, [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


class _Supervisor:
    def __init__(self, states: dict[str, dict[str, Any]]) -> None:
        self._states = states

    def states(self) -> dict[str, dict[str, Any]]:
        return self._states


def _ctx(tmp_path: Path, states: dict[str, dict[str, Any]]) -> HostContext:
    return HostContext(LocalHost("aio"), SitePaths(tmp_path, "lab"),
                       _Supervisor(states), SilentProgress())  # type: ignore[arg-type]


def test_marked_processes_are_found_by_marker_only(orphans: tuple[str, list[int]]) -> None:
    marker, pids = orphans
    host = LocalHost()
    assert processes.marked_pids(host, marker) == set(pids)
    assert processes.marked_pids(host, marker + "-other") == set()
    # A marker is matched whole: a prefix of it is another program.
    assert processes.marked_pids(host, marker[:-1]) == set()


def test_processes_outside_the_supervised_tree_are_orphans(
        orphans: tuple[str, list[int]]) -> None:
    marker, pids = orphans
    split = processes.program_processes(LocalHost(), marker, supervised_pid=pids[0])
    assert split.supervised == (pids[0],)
    assert split.outside == (pids[1],)


def test_leftovers_are_killed_before_a_start(tmp_path: Path,
                                             orphans: tuple[str, list[int]]) -> None:
    _, pids = orphans
    remove_leftovers(_ctx(tmp_path, {"keystone-api": {"statename": "FATAL", "pid": 0}}),
                     "keystone-api")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(processes.running_here(p) for p in pids):
        time.sleep(0.05)
    assert not any(processes.running_here(p) for p in pids)


def test_a_running_programs_own_tree_is_left_alone(tmp_path: Path,
                                                   orphans: tuple[str, list[int]]) -> None:
    _, pids = orphans
    states = {"keystone-api": {"statename": "RUNNING", "pid": pids[0]}}
    remove_leftovers(_ctx(tmp_path, states), "keystone-api")
    time.sleep(0.2)
    assert processes.running_here(pids[0]) and not processes.running_here(pids[1])


def test_descendants_follow_parent_links() -> None:
    parent_of = {1: 0, 10: 1, 11: 10, 12: 11, 20: 1}
    assert processes.descendants(parent_of, 10) == {10, 11, 12}


LOG = """\
2026-12-02 05:52:09,210 INFO spawned: 'nova-conductor' with pid 8032
2026-12-02 05:52:10,100 WARN exited: keystone-api (terminated by SIGKILL; not expected)
2026-12-02 06:10:00,000 WARN exited: rabbitmq (exit status 0; not expected)
2026-12-02 06:10:05,000 WARN exited: rabbitmq (exit status 0; not expected)
2026-12-02 06:10:06,000 INFO exited: nova-api (exit status 0; expected)
"""


def test_unexpected_exits_are_counted_since_a_time() -> None:
    since = time.mktime(time.strptime("2026-12-02 06:00:00", "%Y-%m-%d %H:%M:%S"))
    assert count_unexpected_exits(LOG, since) == {"rabbitmq": 2}
    assert count_unexpected_exits(LOG, since - 3600) == {"keystone-api": 1, "rabbitmq": 2}


def test_a_resumed_command_waits_for_the_interrupted_runs_copy(tmp_path: Path) -> None:
    """A killed `up` leaves its migration running; the resumed step must not race it."""
    import json

    from onestack.core.digest import digest
    from onestack.steps.actions import RunOnce

    marker_file = tmp_path / "ran"
    action = RunOnce(("sh", "-c", f"test -e {marker_file} || touch {marker_file}"))
    marker = f"{SitePaths(tmp_path, 'lab').site}:{digest(json.dumps(action.argv))[:16]}"
    earlier = subprocess.Popen(["sleep", "1.5"], start_new_session=True,
                               env={**os.environ, processes.COMMAND_VARIABLE: marker})
    t0 = time.monotonic()
    try:
        action.apply(_ctx(tmp_path, {}))
        waited = time.monotonic() - t0
    finally:
        earlier.kill()
        earlier.wait()
    assert waited >= 1.0 and marker_file.exists()


def test_the_main_process_is_below_the_wrapper_and_tini() -> None:
    # supervisord 1 -> unshare 10 -> tini 11 -> uwsgi master 12 -> workers 13, 14
    parent_of = {10: 1, 11: 10, 12: 11, 13: 12, 14: 12}
    assert processes.main_pid(parent_of, 10) == 12
    assert processes.main_pid(parent_of, 99) == 99  # no chain (not wrapped): itself
    assert processes.main_pid(parent_of, None) is None


def test_flapping_is_crashing_again_and_again_not_having_crashed() -> None:
    from onestack.health.status import flapping

    assert flapping(5, 4)  # a respawn loop: RUNNING, a few seconds each time
    assert flapping(3, 0)  # crashed and not running (BACKOFF)
    assert not flapping(5, 120)  # crashed often, steady for two minutes since
    assert not flapping(2, 1)


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace needs root")
def test_a_process_of_another_host_on_this_machine_is_not_this_hosts(tmp_path: Path) -> None:
    # issue 19: a lab host (its own mount namespace) runs the same site's programs with
    # the same markers; the controller counted them as its own leftovers.
    marker = program_marker(SitePaths(tmp_path, "lab").log, "ovsdb-server")
    env = {**os.environ, processes.MARKER_VARIABLE: marker}
    here = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
    there = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "60"],
                             env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{there.pid}/exe").endswith("unshare") \
                and time.monotonic() < deadline:
            time.sleep(0.05)  # until unshare has become sleep in its namespace
        assert processes.marked_pids(LocalHost(), marker) == {here.pid}
    finally:
        for proc in (here, there):
            proc.kill()
            proc.wait()
