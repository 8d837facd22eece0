"""The durable journal: every run and every step, written before and after it runs.

SQLite in ``state.db`` with ``synchronous=FULL``: a crash (even SIGKILL) at any
point leaves a record of what started and what finished, so the next run resumes.
Steps are keyed by (host, step id): the same step on two hosts is two completions.
A journal from before that key is migrated when opened, its rows given to the host
that ran every step then (the site's controller, ADR 0011).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.core.step import Step
from onestack.errors import StateFileError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  operation TEXT NOT NULL, pid INTEGER NOT NULL, started REAL NOT NULL,
  finished REAL, status TEXT NOT NULL, detail TEXT
);
CREATE TABLE IF NOT EXISTS run_steps (
  run_id INTEGER NOT NULL, host TEXT NOT NULL, step_id TEXT NOT NULL, service TEXT,
  summary TEXT, status TEXT NOT NULL, started REAL NOT NULL, finished REAL, error TEXT,
  PRIMARY KEY (run_id, host, step_id)
);
CREATE TABLE IF NOT EXISTS completed_steps (
  host TEXT NOT NULL, step_id TEXT NOT NULL, fingerprint TEXT NOT NULL, at REAL NOT NULL,
  PRIMARY KEY (host, step_id)
);
CREATE TABLE IF NOT EXISTS site_facts (
  key TEXT PRIMARY KEY, value TEXT NOT NULL
);
"""

# Tables keyed by step id alone (before steps were per host): how each becomes keyed
# by (host, step id), the host being given as the only parameter.
_MIGRATIONS = {
    "run_steps": "INSERT INTO run_steps SELECT run_id, ?, step_id, service, summary, "
                 "status, started, finished, error FROM old_run_steps",
    "completed_steps": "INSERT INTO completed_steps SELECT ?, step_id, fingerprint, at "
                       "FROM old_completed_steps",
}



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

    def __init__(self, path: Path, legacy_host: str = "") -> None:
        """``legacy_host``: the host the rows of a journal from before per-host keys
        belong to (the site's controller, which ran every step then)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection shared by the runner's threads (one per host), one at a time.
        self._lock = threading.RLock()
        try:
            self.db = self._open(path, legacy_host)
        except sqlite3.DatabaseError as exc:
            raise StateFileError(str(path), None, f"not a usable onestack journal: {exc}") \
                from None
        os.chmod(path, 0o600)

    @staticmethod
    def _open(path: Path, legacy_host: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            _migrate(db, legacy_host)
            db.executescript(SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _exec(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self.db.execute(sql, tuple(params))

    def close(self) -> None:
        self.db.close()

    def start_run(self, operation: str) -> int:
        cur = self._exec(
            "INSERT INTO runs (operation, pid, started, status) VALUES (?, ?, ?, 'running')",
            (operation, os.getpid(), time.time()))
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, detail: str | None = None) -> None:
        self._exec("UPDATE runs SET finished=?, status=?, detail=? WHERE id=?",
                        (time.time(), status, detail, run_id))

    def step_started(self, run_id: int, step_id: str, service: str, summary: str,
                     host: str = "") -> None:
        self._exec("INSERT OR REPLACE INTO run_steps (run_id, host, step_id, service, "
                   "summary, status, started) VALUES (?, ?, ?, ?, ?, 'started', ?)",
                   (run_id, host, step_id, service, summary, time.time()))

    def step_finished(self, run_id: int, step_id: str, fingerprint: str,
                      host: str = "") -> None:
        now = time.time()
        with self._lock, self.db:
            self.db.execute("BEGIN")
            self.db.execute("UPDATE run_steps SET status='done', finished=? "
                            "WHERE run_id=? AND host=? AND step_id=?",
                            (now, run_id, host, step_id))
            self.db.execute("INSERT OR REPLACE INTO completed_steps VALUES (?, ?, ?, ?)",
                            (host, step_id, fingerprint, now))

    def record_completed(self, step_id: str, fingerprint: str, host: str = "") -> None:
        """Adopt a step as done (its effect was achieved by another operation)."""
        self._exec("INSERT OR REPLACE INTO completed_steps VALUES (?, ?, ?, ?)",
                   (host, step_id, fingerprint, time.time()))

    def step_failed(self, run_id: int, step_id: str, error: str, host: str = "") -> None:
        self._exec("UPDATE run_steps SET status='failed', finished=?, error=? "
                   "WHERE run_id=? AND host=? AND step_id=?",
                   (time.time(), error, run_id, host, step_id))

    def completed(self) -> dict[tuple[str, str], str]:
        """(host, step id) -> fingerprint of its last successful run."""
        rows = self._exec("SELECT host, step_id, fingerprint FROM completed_steps")
        return {(str(h), str(i)): str(f) for h, i, f in rows}

    def done_for(self, steps: Iterable[Step]) -> dict[str, str]:
        """Step id -> recorded fingerprint, for these steps on their own hosts (what
        ``make_plan`` takes: ids are unique within a plan)."""
        recorded = self.completed()
        return {s.id: recorded[(s.host, s.id)] for s in steps if (s.host, s.id) in recorded}

    def forget(self, prefix: str = "") -> None:
        """Drop completion records on every host (so the next run redoes those steps)."""
        self._exec("DELETE FROM completed_steps WHERE step_id LIKE ?", (prefix + "%",))

    def forget_host(self, host: str) -> None:
        """Drop every completion record of a host that left the site."""
        self._exec("DELETE FROM completed_steps WHERE host = ?", (host,))

    def runs(self, limit: int = 20) -> list[RunRecord]:
        rows = self._exec("SELECT id, operation, pid, started, finished, status, detail "
                               "FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        return [RunRecord(*row) for row in rows]

    def steps_of(self, run_id: int) -> list[dict[str, Any]]:
        rows = self._exec("SELECT step_id, host, service, summary, status, started, "
                          "finished, error FROM run_steps WHERE run_id=? ORDER BY started",
                          (run_id,))
        keys = ["step", "host", "service", "summary", "status", "started", "finished",
                "error"]
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def mark_interrupted(self) -> list[RunRecord]:
        """Runs left 'running' by a process that no longer exists become 'interrupted'."""
        stale = [r for r in self.runs(100) if r.status == "running" and not process_alive(r.pid)]
        for run in stale:
            self.finish_run(run.id, "interrupted", "the onestack process died during the run")
        return stale

    def set_fact(self, key: str, value: Any) -> None:
        self._exec("INSERT OR REPLACE INTO site_facts VALUES (?, ?)",
                        (key, json.dumps(value)))

    def fact(self, key: str, default: Any = None) -> Any:
        row = self._exec("SELECT value FROM site_facts WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default


def _migrate(db: sqlite3.Connection, legacy_host: str) -> None:
    """Key a journal's step tables by (host, step id), in one transaction: a journal
    written before is read by this code as if it had been written by it."""
    old = [table for table in _MIGRATIONS if _columns(db, table)
           and "host" not in _columns(db, table)]
    if not old:
        return
    with db:
        db.execute("BEGIN IMMEDIATE")
        for table in old:
            db.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
        for statement in SCHEMA.split(";"):  # executescript would commit first
            if statement.strip():
                db.execute(statement)
        for table in old:
            db.execute(_MIGRATIONS[table], (legacy_host,))
            db.execute(f"DROP TABLE old_{table}")


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")]


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
