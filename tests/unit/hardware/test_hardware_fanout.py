"""One hung BMC never holds back the others."""

from __future__ import annotations

import threading
import time

from onestack.hardware.fanout import for_each_node


def test_hung_node_times_out_while_others_finish() -> None:
    release = threading.Event()
    seen: list[tuple[int, int, str]] = []

    def hung() -> str:
        release.wait(10)
        return "late"

    tasks = {"a": lambda: "ok-a", "hung": hung, "b": lambda: "ok-b"}
    started = time.monotonic()
    results = for_each_node(tasks, workers=3, deadline_s=0.5,
                            on_timeout=lambda node: f"timeout-{node}",
                            progress=lambda done, total, node: seen.append((done, total, node)))
    release.set()
    assert time.monotonic() - started < 2
    assert results == {"a": "ok-a", "hung": "timeout-hung", "b": "ok-b"}
    assert list(results) == ["a", "hung", "b"]
    assert sorted(n for _, _, n in seen) == ["a", "b"]


def test_runs_concurrently() -> None:
    tasks = {f"n{i}": (lambda: time.sleep(0.2) or "done") for i in range(20)}
    started = time.monotonic()
    results = for_each_node(tasks, workers=20, deadline_s=5, on_timeout=lambda n: "timeout")
    assert time.monotonic() - started < 1.5
    assert set(results.values()) == {"done"}


def test_no_tasks() -> None:
    assert for_each_node({}, 4, 1, on_timeout=lambda n: n) == {}
