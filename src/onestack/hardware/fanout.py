"""Run one action per node on a thread pool: BMC calls are I/O-bound.

A node that hangs never blocks the others: results are collected as they come,
and nodes not done by the overall deadline get a timeout result.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Protocol, TypeVar

R = TypeVar("R")


class Progress(Protocol):
    """Told about each finished node (e.g. to draw a progress bar)."""

    def __call__(self, done: int, total: int, node: str) -> None: ...


def for_each_node(tasks: dict[str, Callable[[], R]], workers: int, deadline_s: float,
                  on_timeout: Callable[[str], R], progress: Progress | None = None
                  ) -> dict[str, R]:
    """Run ``tasks[node]()`` concurrently; return results keyed by node, in input order."""
    if not tasks:
        return {}
    results: dict[str, R] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(tasks))),
                              thread_name_prefix="bmc")
    futures: dict[Future[R], str] = {pool.submit(fn): node for node, fn in tasks.items()}
    try:
        # as_completed waits on all futures at once; calling wait() per result
        # would cost O(n) each time, O(n^2) for a fleet.
        for future in as_completed(futures, timeout=deadline_s):
            node = futures[future]
            results[node] = future.result()
            if progress is not None:
                progress(len(results), len(tasks), node)
    except TimeoutError:
        pass
    finally:
        # Threads still stuck on a BMC finish on their own (every request has a
        # timeout); we do not wait for them.
        pool.shutdown(wait=False, cancel_futures=True)
    for node in tasks:
        if node not in results:
            results[node] = on_timeout(node)
    return {node: results[node] for node in tasks}
