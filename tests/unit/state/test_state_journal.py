"""The durable journal: runs, steps, completions, interrupted runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from onestack.state.journal import Journal


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_file_created_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "site" / "state.db"
    Journal(path).close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_run_and_step_lifecycle(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.db")
    run = journal.start_run("up")
    journal.step_started(run, "a/one", "a", "first")
    journal.step_finished(run, "a/one", "fp1")
    journal.step_started(run, "a/two", "a", "second")
    journal.step_failed(run, "a/two", "boom")
    journal.finish_run(run, "failed", "boom")

    assert journal.completed() == {("", "a/one"): "fp1"}
    steps = journal.steps_of(run)
    assert [(s["step"], s["status"], s["error"]) for s in steps] == [
        ("a/one", "done", None), ("a/two", "failed", "boom")]
    record = journal.runs()[0]
    assert (record.id, record.operation, record.status, record.detail) == (run, "up", "failed",
                                                                           "boom")
    assert record.finished is not None


def test_completions_survive_reopen_and_latest_wins(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    journal = Journal(path)
    run = journal.start_run("up")
    for fp in ("old", "new"):
        journal.step_started(run, "a/one", "a", "first")
        journal.step_finished(run, "a/one", fp)
    journal.close()
    assert Journal(path).completed() == {("", "a/one"): "new"}


def test_forget_by_prefix(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.db")
    run = journal.start_run("up")
    for step in ("nova/a", "nova/b", "glance/a"):
        journal.step_started(run, step, "x", "x")
        journal.step_finished(run, step, "fp")
    journal.forget("nova/")
    assert journal.completed() == {("", "glance/a"): "fp"}


def test_mark_interrupted_only_for_dead_pids(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.db")
    alive = journal.start_run("up")  # this process: alive
    dead = journal.start_run("up")
    journal.db.execute("UPDATE runs SET pid=? WHERE id=?", (_dead_pid(), dead))

    stale = journal.mark_interrupted()

    assert [r.id for r in stale] == [dead]
    status = {r.id: r.status for r in journal.runs()}
    assert status == {alive: "running", dead: "interrupted"}
    assert journal.mark_interrupted() == []


def test_facts_round_trip(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.db")
    assert journal.fact("release", "none") == "none"
    journal.set_fact("release", "2026.1")
    journal.set_fact("ports", {"keystone": 5000})
    assert journal.fact("release") == "2026.1"
    assert journal.fact("ports") == {"keystone": 5000}
