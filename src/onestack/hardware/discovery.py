"""Concurrent discovery of every node's hardware through its BMC."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from onestack.drivers.redfish import BmcLogin, Deadline, failed_inventory, read_node
from onestack.drivers.secrets import SecretStore
from onestack.hardware.access import SecretsSnapshot, Timeouts, login_for
from onestack.hardware.fanout import Progress, for_each_node
from onestack.model.hardware import DiscoveryStatus, Node, NodeInventory

DEFAULT_WORKERS = 256


def _read(login: BmcLogin, deadline_s: float) -> NodeInventory:
    return read_node(login, Deadline(deadline_s))


def _counting_ready(progress: Progress | None, ready: int, selected: int) -> Progress | None:
    """Progress over every selected node: nodes settled without a BMC call count as done."""
    if progress is None or not ready:
        return progress

    def report(done: int, total: int, node: str) -> None:
        progress(done + ready, selected, node)

    return report


def discover_nodes(nodes: list[Node], secrets: SecretStore, timeouts: Timeouts | None = None,
                   workers: int = DEFAULT_WORKERS, progress: Progress | None = None
                   ) -> list[NodeInventory]:
    """Read every node's BMC concurrently; each node gets its own status and reason.

    A node's reads stop at its deadline (what was read is kept, marked partial);
    a node still stuck after its deadline plus one request timeout is reported
    as timed out without waiting for it.
    """
    timeouts = timeouts or Timeouts()
    tasks: dict[str, Callable[[], NodeInventory]] = {}
    ready: dict[str, NodeInventory] = {}
    snapshot = SecretsSnapshot(secrets)
    for node in nodes:
        login = login_for(node, snapshot, timeouts)
        if isinstance(login, NodeInventory):
            ready[node.name] = login
        else:
            tasks[node.name] = partial(_read, login, timeouts.node_deadline_s)
    by_name = {n.name: n for n in nodes}
    # Many nodes share the pool, so a node's deadline counts from when it starts;
    # the overall limit allows for the queue ahead of the last node.
    waves = -(-len(tasks) // max(1, workers)) if tasks else 0
    overall = waves * (timeouts.node_deadline_s + timeouts.request_s) + 5.0

    def timed_out(name: str) -> NodeInventory:
        return failed_inventory(by_name[name], DiscoveryStatus.TIMEOUT,
                                f"no result within {overall:g}s")

    results = for_each_node(tasks, workers, overall, timed_out,
                            _counting_ready(progress, len(ready), len(nodes)))
    return [ready.get(n.name) or results[n.name] for n in nodes]
