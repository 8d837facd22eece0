"""One hung BMC never holds back the others."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from hw_builders import r650

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


def test_discovery_progress_counts_nodes_settled_without_a_bmc_call(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from onestack.drivers.secrets import SecretStore
    from onestack.hardware import discovery
    from onestack.model.hardware import Node

    nodes = [Node(name=f"n{i}", bmc=f"https://10.0.0.{i}", credentials="bmc" if i else "none")
             for i in range(42)]
    store = SecretStore(tmp_path / "secrets")
    store.set("bmc.username", "u")
    store.set("bmc.password", "p")
    monkeypatch.setattr(discovery, "_read", lambda login, _s: r650(node=login.node.name))
    seen: list[tuple[int, int]] = []
    found = discovery.discover_nodes(nodes, store, workers=4,
                                     progress=lambda done, total, _n: seen.append((done, total)))
    assert [i.status.value for i in found].count("no-credentials") == 1
    assert max(seen) == (42, 42)
    assert {total for _, total in seen} == {42}
