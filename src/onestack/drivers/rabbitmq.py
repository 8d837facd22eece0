"""RabbitMQ's queues, as ``rabbitmqctl list_queues`` reports them."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

LIST_QUEUES = ("-q", "list_queues", "name", "messages", "messages_unacknowledged", "consumers")


@dataclass(frozen=True)
class QueueDepth:
    """Messages in a queue (waiting, or delivered and not yet acknowledged)."""

    messages: int
    consumers: int


def queue_depths(listing: str) -> dict[str, QueueDepth]:
    """Queue name -> its depth, from ``rabbitmqctl`` run with ``LIST_QUEUES``.

    The header and any line that is not a name and three counts are ignored."""
    depths = {}
    for line in listing.splitlines():
        fields = line.split("\t")
        if len(fields) == 4 and all(f.isdigit() for f in fields[1:]):
            ready, unacked, consumers = (int(f) for f in fields[1:])
            depths[fields[0]] = QueueDepth(ready + unacked, consumers)
    return depths


def wait_until_empty(list_queues: Callable[[], str], queues: Collection[str],
                     timeout: float = 30, interval: float = 0.5) -> dict[str, int]:
    """Wait until none of ``queues`` holds a message its consumers could take.

    Empty means empty twice in a row, ``interval`` apart, so a message handed on
    from one queue to the next is not missed. A queue with messages but no consumer
    cannot drain and is not waited for. Returns the queues left with messages
    (empty when all drained); a queue that does not exist counts as empty."""
    deadline = time.monotonic() + timeout
    empty_once = False
    while True:
        depths = {q: d for q, d in queue_depths(list_queues()).items() if q in queues}
        draining = any(d.messages and d.consumers for d in depths.values())
        if not draining and empty_once or time.monotonic() > deadline:
            return {q: d.messages for q, d in sorted(depths.items()) if d.messages}
        empty_once = not draining
        time.sleep(interval)
