"""From the site file and its secrets to what is needed to log in to each BMC."""

from __future__ import annotations

from dataclasses import dataclass

from onestack.drivers.redfish import BmcLogin, failed_inventory
from onestack.drivers.secrets import SecretStore
from onestack.hardware.errors import UnknownNodesError
from onestack.model.hardware import DiscoveryStatus, Node, NodeInventory
from onestack.model.site import Site


@dataclass(frozen=True)
class Timeouts:
    """Time limits for talking to BMCs."""

    request_s: float = 10.0
    connect_s: float = 5.0
    node_deadline_s: float = 60.0


def select_nodes(site: Site, names: list[str] | None) -> list[Node]:
    """The named nodes (all when ``names`` is empty), in site-file order."""
    if not names:
        return list(site.nodes)
    known = {n.name for n in site.nodes}
    missing = [n for n in names if n not in known]
    if missing:
        raise UnknownNodesError(missing, sorted(known))
    wanted = set(names)
    return [n for n in site.nodes if n.name in wanted]


class SecretsSnapshot:
    """The site's secrets read once, for looking up many nodes' credentials.

    ``SecretStore.get`` re-reads the file on every call, which for a thousand
    nodes means thousands of YAML parses.
    """

    def __init__(self, store: SecretStore) -> None:
        self._values = store._read()  # one read; SecretStore has no public bulk read

    def get(self, name: str) -> str | None:
        return self._values.get(name)


def login_for(node: Node, secrets: SecretStore | SecretsSnapshot,
              timeouts: Timeouts) -> BmcLogin | NodeInventory:
    """A BMC login, or an inventory saying why there is none (missing credentials)."""
    username = secrets.get(f"{node.credentials}.username")
    password = secrets.get(f"{node.credentials}.password")
    if username is None or password is None:
        return failed_inventory(node, DiscoveryStatus.NO_CREDENTIALS,
                                f"secrets have no {node.credentials}.username/.password")
    return BmcLogin(node=node, username=username, password=password,
                    request_timeout_s=timeouts.request_s, connect_timeout_s=timeouts.connect_s)
