"""The site's hardware inventory, kept in its ``state.db`` (SQLite).

Only the ``hardware_*`` tables belong to this module; other parts of onestack
keep their own tables in the same file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from onestack.model.hardware import NodeInventory

SCHEMA = """
CREATE TABLE IF NOT EXISTS hardware_inventory (
    node TEXT PRIMARY KEY,
    discovered_at TEXT NOT NULL,
    status TEXT NOT NULL,
    inventory TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hardware_firmware_status (
    node TEXT NOT NULL,
    component TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (node, component)
);
"""


class InventoryStore:
    """Latest inventory per node, and the outcome of firmware updates."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _create_private(self) -> None:
        """Create the database file 0600 before SQLite does (it would use the umask)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self._create_private()
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.executescript(SCHEMA)
            with db:
                yield db
        finally:
            db.close()

    def save(self, inventories: list[NodeInventory]) -> None:
        """Store the latest inventory of each node (replacing older ones)."""
        rows = [(i.node, i.discovered_at.isoformat(), i.status.value, i.model_dump_json())
                for i in inventories]
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO hardware_inventory VALUES (?, ?, ?, ?)", rows)

    def load(self, nodes: list[str] | None = None) -> list[NodeInventory]:
        """Stored inventories (all, or the named nodes), ordered by node name."""
        with self._db() as db:
            rows = db.execute("SELECT node, inventory FROM hardware_inventory ORDER BY node")
            found = [NodeInventory.model_validate_json(text) for name, text in rows
                     if nodes is None or name in nodes]
        return found

    def mark_firmware(self, node: str, component: str, status: str, detail: str = "") -> None:
        """Record how a firmware update of one component ended (ok, failed, timeout)."""
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO hardware_firmware_status VALUES (?, ?, ?, ?, ?)",
                       (node, component, status, detail, datetime.now(UTC).isoformat()))

    def firmware_marks(self) -> dict[tuple[str, str], tuple[str, str]]:
        """``(node, component) -> (status, detail)`` of the last firmware updates."""
        with self._db() as db:
            rows = db.execute("SELECT node, component, status, detail FROM "
                              "hardware_firmware_status")
            return {(n, c): (s, d or "") for n, c, s, d in rows}
