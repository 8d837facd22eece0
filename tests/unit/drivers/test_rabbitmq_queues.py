"""Queue depths from rabbitmqctl, and waiting until nova's queues have drained."""

from __future__ import annotations

from collections.abc import Callable

from onestack.drivers import rabbitmq

# `rabbitmqctl -q list_queues name messages messages_unacknowledged consumers` on a lab
# site (RabbitMQ 3.10.8, Debian 12), trimmed.
LISTING = """name\tmessages\tmessages_unacknowledged\tconsumers
scheduler.aio\t0\t0\t1
conductor\t3\t1\t1
compute-alt\t0\t0\t1
compute.aio\t2\t0\t0
reply_7d2c4e1f0b9a4c1e8f3a5b6c7d8e9f01\t0\t0\t1
"""


def test_depth_counts_waiting_and_unacknowledged_messages() -> None:
    depths = rabbitmq.queue_depths(LISTING)
    assert depths["conductor"] == rabbitmq.QueueDepth(4, 1)
    assert depths["compute.aio"] == rabbitmq.QueueDepth(2, 0)
    assert "name" not in depths and len(depths) == 5


def _listings(*rows: str) -> Callable[[], str]:
    outputs = iter(rows)
    last = [""]

    def list_queues() -> str:
        last[0] = next(outputs, last[0])
        return last[0]

    return list_queues


def test_waits_until_empty_twice_in_a_row() -> None:
    busy, empty = "conductor\t2\t0\t1\n", "conductor\t0\t0\t1\n"
    calls = _listings(busy, empty, busy, empty, empty)
    left = rabbitmq.wait_until_empty(calls, ["conductor"], timeout=10, interval=0)
    assert left == {}
    assert calls() == empty  # it read all five listings: one empty reading is not enough


def test_a_queue_nobody_consumes_is_reported_not_waited_for() -> None:
    left = rabbitmq.wait_until_empty(lambda: LISTING, ["compute.aio", "scheduler.aio"],
                                     timeout=10, interval=0)
    assert left == {"compute.aio": 2}


def test_gives_up_after_the_timeout_and_says_what_is_left() -> None:
    left = rabbitmq.wait_until_empty(lambda: LISTING, ["conductor", "nova-missing"],
                                     timeout=0, interval=0)
    assert left == {"conductor": 4}
