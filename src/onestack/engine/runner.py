"""Apply a plan step by step, journaling each step before and after it runs."""

from __future__ import annotations

import fnmatch
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from onestack.core.progress import Progress
from onestack.core.step import Plan, Step
from onestack.errors import OnestackError, StepFailed
from onestack.state.journal import Journal


def apply_plan(plan: Plan, ctx: Any, journal: Journal, progress: Progress) -> int:
    """Run every needed step in order. Returns the run id.

    A failing step is recorded with its error and raised; the steps already done
    stay recorded, so running the same operation again resumes after them.
    """
    for stale in journal.mark_interrupted():
        progress.message(f"run {stale.id} ({stale.operation}) was interrupted; resuming")
    run_id = journal.start_run(plan.operation)
    total, index = len(plan.changes), 0
    try:
        for planned in plan.steps:
            if not planned.needed:
                if not (index and _needed_now(planned.step, ctx)):
                    continue
                total += 1
            index += 1
            _apply_step(planned.step, index, total, ctx, journal, run_id, progress)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        journal.finish_run(run_id, status, str(exc)[:2000])
        raise
    journal.finish_run(run_id, "done")
    return run_id


@dataclass
class InjectedFault(OnestackError):
    """A failure injected on purpose (tests only: ONESTACK_FAULT=fail:<step>)."""

    step: str

    def __str__(self) -> str:
        return f"injected failure at {self.step}"


def inject_fault(step_id: str) -> None:
    """Test-only fault injection, named by ``ONESTACK_FAULT``.

    ``fail:<pattern>`` raises at the first step matching the glob; ``kill:<pattern>``
    SIGKILLs onestack itself there, after the step is journaled as started.
    """
    spec = os.environ.get("ONESTACK_FAULT", "")
    kind, _, pattern = spec.partition(":")
    if not pattern or not fnmatch.fnmatchcase(step_id, pattern):
        return
    if kind == "fail":
        raise InjectedFault(step_id)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)


def _needed_now(step: Step, ctx: Any) -> bool:
    """Re-decide a step the plan skipped, for actions that can (``recheck(ctx)``).

    The plan's facts are read before the run; a step that changes processes can
    undo one of them (a program the plan found running is stopped by loading
    definitions). Such steps are asked again once earlier steps have run.
    """
    recheck = getattr(step.action, "recheck", None)
    return bool(recheck(ctx)) if callable(recheck) else False


def _apply_step(step: Step, index: int, total: int, ctx: Any, journal: Journal,
                run_id: int, progress: Progress) -> None:
    journal.step_started(run_id, step.id, step.service, step.summary)
    progress.step_started(step, index, total)
    t0 = time.monotonic()
    try:
        inject_fault(step.id)
        step.action.apply(ctx)
    except OnestackError as exc:
        progress.step_failed(step, time.monotonic() - t0, str(exc))
        journal.step_failed(run_id, step.id, str(exc))
        raise
    except KeyboardInterrupt:
        progress.step_failed(step, time.monotonic() - t0, "interrupted")
        journal.step_failed(run_id, step.id, "interrupted")
        raise
    except Exception as exc:  # a bug or a foreign error: still journaled, still named
        progress.step_failed(step, time.monotonic() - t0, repr(exc))
        journal.step_failed(run_id, step.id, repr(exc))
        raise StepFailed(step.id, repr(exc)) from exc
    journal.step_finished(run_id, step.id, step.fingerprint())
    progress.step_done(step, time.monotonic() - t0)
