"""Changes to a host's Open vSwitch database: its bridges and the chassis settings
ovn-controller reads. Each probes the database (read-only), so a bridge or a setting
removed behind onestack's back shows up in the plan and is put back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from onestack.core.digest import digest
from onestack.drivers import ovsdb
from onestack.steps.context import HostContext

Settings = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class EnsureBridges:
    """Bridges that must exist with exact column values (``datapath_type=netdev``:
    the userspace datapath, as no kernel module may be assumed)."""

    db: str  # e.g. unix:<site run dir>/openvswitch/db.sock
    bridges: tuple[tuple[str, Settings], ...]
    kind: str = "bridges"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.db, self.bridges]))

    def _columns(self) -> set[str]:
        return {column for _, settings in self.bridges for column, _ in settings}

    def probe(self, ctx: HostContext) -> Any:
        return ovsdb.bridges(ctx.host, self.db, self._columns())

    def needed(self, fact: Any, done: str | None) -> bool:
        if not isinstance(fact, dict):
            return True  # the database did not answer: decided when the step runs
        return any(name not in fact or any(fact[name].get(k) != v for k, v in settings)
                   for name, settings in self.bridges)

    def apply(self, ctx: HostContext) -> None:
        ctx.host.run(ovsdb.ensure_bridges(self.db, {n: dict(s) for n, s in self.bridges}),
                     timeout=90)


@dataclass(frozen=True)
class EnsureExternalIds:
    """Keys of the Open_vSwitch row's ``external_ids`` with exact values (keys of
    others are left alone): how a chassis tells ovn-controller where the southbound
    database is, its name, tunnel address and bridges."""

    db: str
    ids: Settings
    kind: str = "ovsdb-settings"

    def fingerprint(self) -> str:
        return digest(json.dumps([self.db, self.ids]))

    def probe(self, ctx: HostContext) -> Any:
        return ovsdb.external_ids(ctx.host, self.db)

    def needed(self, fact: Any, done: str | None) -> bool:
        if not isinstance(fact, dict):
            return True
        return any(fact.get(k) != v for k, v in self.ids)

    def apply(self, ctx: HostContext) -> None:
        ctx.host.run(ovsdb.set_external_ids(self.db, dict(self.ids)), timeout=30)


@dataclass(frozen=True)
class EnsureGuestFilter:
    """The site's nftables table on a chassis: what guests send to the host's own
    addresses through the site's bridges is dropped, except replies to the host's
    own connections (it reaches floating IPs on br-ex). Loaded whole (``nft -f``,
    one transaction); another site's or the operator's tables are not touched."""

    table: str  # an nftables table of family inet, the site's own
    ruleset: str  # ``nft -f`` input that (re)defines exactly that table
    kind: str = "host-filter"

    def fingerprint(self) -> str:
        return digest(f"{self.table}|{self.ruleset}")

    def probe(self, ctx: HostContext) -> Any:
        out = ctx.host.run(("nft", "list", "table", "inet", self.table), check=False)
        return "hook input" in out

    def needed(self, fact: Any, done: str | None) -> bool:
        return not fact or done is None

    def apply(self, ctx: HostContext) -> None:
        ctx.host.run(("nft", "-f", "-"), input=self.ruleset, timeout=30)
