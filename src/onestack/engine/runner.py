"""Apply a plan step by step, journaling each step before and after it runs."""

from __future__ import annotations

import fnmatch
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from onestack.core.activity import activity_of
from onestack.core.progress import Progress
from onestack.core.step import Plan, PlannedStep, Step, batches
from onestack.errors import HostConnectionLostError, HostStepsFailed, OnestackError, StepFailed
from onestack.state.journal import Journal

_T = TypeVar("_T")


def context_of(ctx: Any, step: Step) -> Any:
    """The context of the host a step runs on: ``ctx`` maps host names to contexts
    (a single context serves every step, as in single-host operations)."""
    return ctx[step.host] if isinstance(ctx, Mapping) else ctx


def per_host(work: Mapping[str, Callable[[], _T]]) -> dict[str, _T | BaseException]:
    """Run each host's work at once, one thread per host (ADR 0009): its result or
    the exception that ended it, by host. A single host runs in this thread."""
    if len(work) <= 1:
        return {host: _outcome(job) for host, job in work.items()}
    with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix="host") as pool:
        futures = {host: pool.submit(_outcome, job) for host, job in work.items()}
        return {host: future.result() for host, future in futures.items()}


def _outcome(job: Callable[[], _T]) -> _T | BaseException:
    try:
        return job()
    except Exception as exc:  # reported by host, raised by the caller
        return exc


@dataclass
class _Run:
    """One run of a plan: its journal record, progress numbering and contexts."""

    ctx: Any
    journal: Journal
    run_id: int
    progress: Progress
    total: int
    index: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def steps(self, planned: list[PlannedStep]) -> None:
        """A host's share of a batch, in order; the first failure ends it."""
        for p in planned:
            with self.lock:
                if not p.needed:
                    if not (self.index and _needed_now(p.step, context_of(self.ctx, p.step))):
                        continue
                    self.total += 1
                self.index += 1
                index, total = self.index, self.total
            _apply_step(p.step, index, total, context_of(self.ctx, p.step), self.journal,
                        self.run_id, self.progress)

    def batch(self, planned: list[PlannedStep]) -> None:
        """Steps independent across lanes (hosts, or services side by side on one
        host): each lane's in order, every lane at once."""
        by_host: dict[str, list[PlannedStep]] = {}
        for p in planned:
            by_host.setdefault(p.step.runs_in, []).append(p)
        if len(by_host) == 1:
            self.steps(planned)  # in this thread: Ctrl-C and errors as they always were
            return
        outcomes = per_host({host: partial(self.steps, share)
                             for host, share in by_host.items()})
        failed = {h: o for h, o in outcomes.items() if isinstance(o, BaseException)}
        if failed:
            raise HostStepsFailed(sorted(failed), "; ".join(
                f"{h}: {o}" for h, o in sorted(failed.items()))) from next(iter(failed.values()))


def apply_plan(plan: Plan, ctx: Any, journal: Journal, progress: Progress) -> int:
    """Run every needed step in plan order. Returns the run id.

    ``ctx``: the context of each host by name (or one context for every step).
    Steps of one fan-out (``Step.fanout``) run on all their hosts at once, each host's
    in order; a failure stops that host's remaining steps, the other hosts finish
    theirs, then the run fails naming the host. A failing step is recorded with its
    error and raised; the steps already done stay recorded, so running the same
    operation again resumes after them.
    """
    for stale in journal.mark_interrupted():
        progress.message(f"run {stale.id} ({stale.operation}) was interrupted; resuming")
    run_id = journal.start_run(plan.operation)
    run = _Run(ctx, journal, run_id, progress, len(plan.changes))
    planned = {p.step.id: p for p in plan.steps}
    try:
        for group in batches([p.step for p in plan.steps]):
            run.batch([planned[s.id] for s in group])
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


# A step whose host's SSH session broke under it is applied once more, on a new
# session, as `up` run again would resume it (steps are made to be applied again).
LOST_RETRIES = 1
LOST_PAUSE = 3.0  # seconds before the new session


def _apply_once_more_if_lost(step: Step, ctx: Any, progress: Progress) -> None:
    for attempt in range(LOST_RETRIES + 1):
        try:
            step.action.apply(ctx)
            return
        except HostConnectionLostError as exc:
            if attempt == LOST_RETRIES:
                raise
            progress.message(f"{step.host}: {exc.reason}; {step.summary}: once more on a "
                             "new connection")
            time.sleep(LOST_PAUSE)


# A step still running after this long says so, and what it waits for, then again
# at each further interval (a hung host is seen, not guessed).
STILL_RUNNING_EVERY = 30.0


@contextmanager
def _reporting_while_long(step: Step, progress: Progress) -> Iterator[None]:
    """Around a step's work in this thread: every ``STILL_RUNNING_EVERY`` seconds, a
    progress line naming the step and what this thread waits for (``core.activity``)."""
    worker, finished, t0 = threading.get_ident(), threading.Event(), time.monotonic()

    def report() -> None:
        while not finished.wait(STILL_RUNNING_EVERY):
            what = activity_of(worker)
            progress.message(f"{step.host}: {step.summary}: still running after "
                             f"{time.monotonic() - t0:.0f}s"
                             + (f", waiting for {what}" if what else ""))

    reporter = threading.Thread(target=report, name=f"report {step.id}", daemon=True)
    reporter.start()
    try:
        yield
    finally:
        finished.set()
        reporter.join()


def _apply_step(step: Step, index: int, total: int, ctx: Any, journal: Journal,
                run_id: int, progress: Progress) -> None:
    journal.step_started(run_id, step.id, step.service, step.summary, step.host)
    progress.step_started(step, index, total)
    t0 = time.monotonic()
    try:
        inject_fault(step.id)
        with _reporting_while_long(step, progress):
            _apply_once_more_if_lost(step, ctx, progress)
    except OnestackError as exc:
        progress.step_failed(step, time.monotonic() - t0, str(exc))
        journal.step_failed(run_id, step.id, str(exc), step.host)
        raise
    except KeyboardInterrupt:
        progress.step_failed(step, time.monotonic() - t0, "interrupted")
        journal.step_failed(run_id, step.id, "interrupted", step.host)
        raise
    except Exception as exc:  # a bug or a foreign error: still journaled, still named
        progress.step_failed(step, time.monotonic() - t0, repr(exc))
        journal.step_failed(run_id, step.id, repr(exc), step.host)
        raise StepFailed(step.id, repr(exc)) from exc
    journal.step_finished(run_id, step.id, step.fingerprint(), step.host)
    progress.step_done(step, time.monotonic() - t0)
