"""apply_plan with fake actions: journaling, failure, resume, interruption; the site lock."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from onestack.core.step import Step, make_plan
from onestack.engine.lock import site_lock
from onestack.engine.runner import apply_plan
from onestack.errors import (
    CommandError,
    HostConnectionLostError,
    OnestackError,
    SiteLockedError,
    StepFailed,
)
from onestack.state.journal import Journal


@dataclass(frozen=True)
class FakeAction:
    """Records applies in a shared log; raises ``fail`` when set."""

    name: str
    log: list[str] = field(compare=False)
    fail: BaseException | None = field(default=None, compare=False)
    kind: str = "fake"

    def fingerprint(self) -> str:
        return self.name

    def probe(self, ctx: Any) -> Any:
        return None

    def needed(self, fact: Any, done: str | None) -> bool:
        return done is None

    def apply(self, ctx: Any) -> None:
        self.log.append(self.name)
        if self.fail is not None:
            raise self.fail


class RecordingProgress:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def step_started(self, step: Step, index: int, total: int) -> None:
        self.events.append(("started", f"{step.id} {index}/{total}"))

    def step_done(self, step: Step, seconds: float) -> None:
        self.events.append(("done", step.id))

    def step_failed(self, step: Step, seconds: float, error: str) -> None:
        self.events.append(("failed", step.id))

    def message(self, text: str) -> None:
        self.events.append(("message", text))


def _steps(log: list[str], failing: dict[str, BaseException] | None = None) -> list[Step]:
    failing = failing or {}
    return [Step(f"s/{n}", f"step {n}", "s", "aio", FakeAction(n, log, failing.get(n)))
            for n in ("a", "b", "c")]


def _run(journal: Journal, steps: list[Step], progress: RecordingProgress | None = None) -> int:
    plan = make_plan("up", steps, {}, journal.done_for(steps))
    return apply_plan(plan, None, journal, progress or RecordingProgress())


def test_all_steps_applied_and_journaled(tmp_path: Path) -> None:
    journal, log, progress = Journal(tmp_path / "state.db"), [], RecordingProgress()
    run = _run(journal, _steps(log), progress)
    assert log == ["a", "b", "c"]
    assert [s["status"] for s in journal.steps_of(run)] == ["done"] * 3
    assert journal.runs()[0].status == "done"
    assert {step for _, step in journal.completed()} == {"s/a", "s/b", "s/c"}
    assert progress.events[:2] == [("started", "s/a 1/3"), ("done", "s/a")]


def test_step_is_journaled_as_started_before_it_runs(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.db")
    seen: list[list[dict[str, Any]]] = []

    @dataclass(frozen=True)
    class Peek(FakeAction):
        def apply(self, ctx: Any) -> None:
            seen.append(journal.steps_of(journal.runs()[0].id))

    apply_plan(make_plan("up", [Step("s/peek", "peek", "s", "aio", Peek("p", []))], {}, {}),
               None, journal, RecordingProgress())
    assert [(s["step"], s["status"]) for s in seen[0]] == [("s/peek", "started")]
    assert ("aio", "s/peek") in journal.completed()


def test_failing_step_recorded_and_resume_skips_done_steps(tmp_path: Path) -> None:
    journal, log = Journal(tmp_path / "state.db"), []
    boom = CommandError("manage db", 2, "no database")
    with pytest.raises(CommandError):
        _run(journal, _steps(log, {"b": boom}))
    failed_run = journal.runs()[0]
    assert failed_run.status == "failed" and "no database" in (failed_run.detail or "")
    steps = {s["step"]: s for s in journal.steps_of(failed_run.id)}
    assert steps["s/b"]["status"] == "failed" and "no database" in steps["s/b"]["error"]
    assert "s/c" not in steps
    assert {step for _, step in journal.completed()} == {"s/a"}

    log.clear()
    _run(journal, _steps(log))  # the fault is gone: run again
    assert log == ["b", "c"]
    assert journal.runs()[0].status == "done"


def test_foreign_exception_becomes_step_failed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.db")
    with pytest.raises(StepFailed) as info:
        _run(journal, _steps([], {"a": KeyError("x")}))
    assert isinstance(info.value, OnestackError)
    assert info.value.step == "s/a"
    assert "KeyError" in str(info.value)
    assert journal.steps_of(journal.runs()[0].id)[0]["status"] == "failed"


def test_keyboard_interrupt_marks_run_interrupted(tmp_path: Path) -> None:
    journal, log = Journal(tmp_path / "state.db"), []
    with pytest.raises(KeyboardInterrupt):
        _run(journal, _steps(log, {"b": KeyboardInterrupt()}))
    run = journal.runs()[0]
    assert run.status == "interrupted"
    assert journal.steps_of(run.id)[1]["error"] == "interrupted"
    log.clear()
    _run(journal, _steps(log))
    assert log == ["b", "c"]


def test_stale_run_of_dead_process_reported_on_next_apply(tmp_path: Path) -> None:
    import subprocess

    journal = Journal(tmp_path / "state.db")
    stale = journal.start_run("up")
    proc = subprocess.Popen(["true"])
    proc.wait()
    journal.db.execute("UPDATE runs SET pid=? WHERE id=?", (proc.pid, stale))
    progress = RecordingProgress()
    _run(journal, _steps([]), progress)
    assert progress.events[0] == ("message", f"run {stale} (up) was interrupted; resuming")
    assert {r.id: r.status for r in journal.runs()}[stale] == "interrupted"


def test_site_lock_second_holder_is_refused(tmp_path: Path) -> None:
    with site_lock(tmp_path, "lab", "up"):
        with pytest.raises(SiteLockedError) as info:
            with site_lock(tmp_path, "lab", "down"):
                pytest.fail("second holder got the lock")
        assert info.value.site == "lab"
        assert "up (pid " in info.value.holder
        assert "locked by another operation (up (pid" in str(info.value)
    with site_lock(tmp_path, "lab", "down"):  # released on exit
        assert (tmp_path / "lock").read_text().startswith("down (pid")


@dataclass(frozen=True)
class ProcessAction:
    """Needed while ``world[name]`` is not "running"; an earlier step may stop it."""

    name: str
    world: dict[str, str] = field(compare=False)
    stops: tuple[str, ...] = ()
    can_recheck: bool = True
    kind: str = "process"

    def recheck(self, ctx: Any) -> bool:
        return self.can_recheck and self.needed(self.probe(ctx), None)

    def fingerprint(self) -> str:
        return self.name

    def probe(self, ctx: Any) -> Any:
        return self.world.get(self.name)

    def needed(self, fact: Any, done: str | None) -> bool:
        return fact != "running"

    def apply(self, ctx: Any) -> None:
        self.world[self.name] = "running"
        for other in self.stops:
            self.world[other] = "stopped"


def test_skipped_process_step_runs_when_an_earlier_step_stopped_it(tmp_path: Path) -> None:
    world = {"a": "stopped", "b": "running", "c": "running"}
    steps = [Step("s/a", "a", "s", "aio", ProcessAction("a", world, stops=("b", "c"))),
             Step("s/b", "b", "s", "aio", ProcessAction("b", world)),
             Step("s/c", "c", "s", "aio", ProcessAction("c", world, can_recheck=False))]
    journal = Journal(tmp_path / "state.db")
    plan = make_plan("up", steps, {s.id: s.action.probe(None) for s in steps},
                     journal.done_for(steps))
    assert [s.id for s in plan.changes] == ["s/a"]
    progress = RecordingProgress()
    apply_plan(plan, None, journal, progress)
    # b asked to be probed again and ran; c did not ask, so the plan's word stands
    assert world == {"a": "running", "b": "running", "c": "stopped"}
    assert ("started", "s/b 2/2") in progress.events


def test_nothing_is_rechecked_when_no_step_ran(tmp_path: Path) -> None:
    world = {"b": "stopped"}
    step = Step("s/b", "b", "s", "aio", ProcessAction("b", world))
    journal = Journal(tmp_path / "state.db")
    apply_plan(make_plan("up", [step], {"s/b": "running"}, {}), None, journal,
               RecordingProgress())
    assert world == {"b": "stopped"}  # the plan said nothing to do: nothing done


@dataclass(frozen=True)
class LosesConnection(FakeAction):
    """Its host's session breaks under the first ``losses`` applies."""

    losses: list[int] = field(default_factory=lambda: [1], compare=False)

    def apply(self, ctx: Any) -> None:
        self.log.append(self.name)
        if self.losses[0] > 0:
            self.losses[0] -= 1
            raise HostConnectionLostError("lab3", "198.18.50.13:22",
                                          "connection lost (SSHException: dropped)")


def test_a_step_whose_connection_broke_is_applied_once_more(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 19: a lost connection is retried, and says so, before the run fails.
    monkeypatch.setattr("onestack.engine.runner.LOST_PAUSE", 0)
    log: list[str] = []
    progress = RecordingProgress()
    step = Step("s/a", "step a", "s", "lab3", LosesConnection("a", log))
    assert _run(Journal(tmp_path / "state.db"), [step], progress) == 1
    assert log == ["a", "a"]
    assert ("message", "lab3: connection lost (SSHException: dropped); step a: once more "
            "on a new connection") in progress.events
    log.clear()
    twice = Step("s/b", "step b", "s", "lab3", LosesConnection("b", log, losses=[2]))
    with pytest.raises(HostConnectionLostError):
        _run(Journal(tmp_path / "other.db"), [twice])
    assert log == ["b", "b"]  # once more only


@dataclass(frozen=True)
class RunsACommand(FakeAction):
    """Runs a real command on this machine (LocalHost), which takes a while."""

    def apply(self, ctx: Any) -> None:
        from onestack.drivers.host import LocalHost
        self.log.append(self.name)
        LocalHost("lab2").run(["sleep", "0.5"])


def test_a_long_step_says_what_it_waits_for_while_it_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 19: a step that waits on a host reports it instead of hanging silently.
    monkeypatch.setattr("onestack.engine.runner.STILL_RUNNING_EVERY", 0.2)
    progress = RecordingProgress()
    log: list[str] = []
    step = Step("s/a", "install libvirt", "s", "lab2", RunsACommand("a", log))
    _run(Journal(tmp_path / "state.db"), [step], progress)
    said = [text for kind, text in progress.events if kind == "message"]
    assert said, progress.events
    assert re.fullmatch(r"lab2: install libvirt: still running after [01]s, waiting for "
                        r"`sleep 0\.5` on lab2", said[0]), said
    assert progress.events[-1] == ("done", "s/a")  # nothing said after it ended
    quick: list[str] = []
    quiet = RecordingProgress()
    _run(Journal(tmp_path / "quick.db"), _steps(quick), quiet)
    assert not [e for e in quiet.events if e[0] == "message"]
