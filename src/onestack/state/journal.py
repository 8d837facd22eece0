"""The durable journal: every run and every step, written before and after it runs.

SQLite in ``state.db`` with ``synchronous=FULL``: a crash (even SIGKILL) at any
point leaves a record of what started and what finished, so the next run resumes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.errors import StateFileError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  operation TEXT NOT NULL, pid INTEGER NOT NULL, started REAL NOT NULL,
  finished REAL, status TEXT NOT NULL, detail TEXT
);
CREATE TABLE IF NOT EXISTS run_steps (
  run_id INTEGER NOT NULL, step_id TEXT NOT NULL, service TEXT, summary TEXT,
  status TEXT NOT NULL, started REAL NOT NULL, finished REAL, error TEXT,
  PRIMARY KEY (run_id, step_id)
);
CREATE TABLE IF NOT EXISTS completed_steps (
  step_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS site_facts (
  key TEXT PRIMARY KEY, value TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class RunRecord:
    id: int
    operation: str
    pid: int
    started: float
    finished: float | None
    status: str
    detail: str | None


class Journal:
    """Runs, steps and completed-step fingerprints of one site."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self.db = self._open(path)
        except sqlite3.DatabaseError as exc:
            raise StateFileError(str(path), None, f"not a usable onestack journal: {exc}") \
                from None
        os.chmod(path, 0o600)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        self.db.close()

    def start_run(self, operation: str) -> int:
        cur = self.db.execute(
            "INSERT INTO runs (operation, pid, started, status) VALUES (?, ?, ?, 'running')",
            (operation, os.getpid(), time.time()))
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, detail: str | None = None) -> None:
        self.db.execute("UPDATE runs SET finished=?, status=?, detail=? WHERE id=?",
                        (time.time(), status, detail, run_id))

    def step_started(self, run_id: int, step_id: str, service: str, summary: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO run_steps (run_id, step_id, service, summary, status, started)"
            " VALUES (?, ?, ?, ?, 'started', ?)", (run_id, step_id, service, summary, time.time()))

    def step_finished(self, run_id: int, step_id: str, fingerprint: str) -> None:
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("UPDATE run_steps SET status='done', finished=? "
                            "WHERE run_id=? AND step_id=?", (now, run_id, step_id))
            self.db.execute("INSERT OR REPLACE INTO completed_steps VALUES (?, ?, ?)",
                            (step_id, fingerprint, now))

    def record_completed(self, step_id: str, fingerprint: str) -> None:
        """Adopt a step as done (its effect was achieved by another operation)."""
        self.db.execute("INSERT OR REPLACE INTO completed_steps VALUES (?, ?, ?)",
                        (step_id, fingerprint, time.time()))

    def step_failed(self, run_id: int, step_id: str, error: str) -> None:
        self.db.execute("UPDATE run_steps SET status='failed', finished=?, error=? "
                        "WHERE run_id=? AND step_id=?", (time.time(), error, run_id, step_id))

    def completed(self) -> dict[str, str]:
        """Step id -> fingerprint of its last successful run."""
        rows = self.db.execute("SELECT step_id, fingerprint FROM completed_steps")
        return {str(a): str(b) for a, b in rows}

    def forget(self, prefix: str = "") -> None:
        """Drop completion records (so the next run redoes those steps)."""
        self.db.execute("DELETE FROM completed_steps WHERE step_id LIKE ?", (prefix + "%",))

    def runs(self, limit: int = 20) -> list[RunRecord]:
        rows = self.db.execute("SELECT id, operation, pid, started, finished, status, detail "
                               "FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        return [RunRecord(*row) for row in rows]

    def steps_of(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT step_id, service, summary, status, started, finished, "
                               "error FROM run_steps WHERE run_id=? ORDER BY started", (run_id,))
        keys = ["step", "service", "summary", "status", "started", "finished", "error"]
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def mark_interrupted(self) -> list[RunRecord]:
        """Runs left 'running' by a process that no longer exists become 'interrupted'."""
        stale = [r for r in self.runs(100) if r.status == "running" and not process_alive(r.pid)]
        for run in stale:
            self.finish_run(run.id, "interrupted", "the onestack process died during the run")
        return stale

    def set_fact(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO site_facts VALUES (?, ?)",
                        (key, json.dumps(value)))

    def fact(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM site_facts WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (our own pid counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
