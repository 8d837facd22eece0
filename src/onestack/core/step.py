"""Steps and plans: what the engine applies, as data.

A step pairs an operator-facing summary with an :class:`Action`. Planning is two
pure halves around one read-only probe: services build their candidate steps
from the site (pure); the engine asks each action to ``probe`` the host (read-only
facts); :func:`make_plan` keeps the steps whose action is ``needed`` given those
facts (pure, testable as data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from onestack.core.digest import digest


class ApplyContext(Protocol):
    """What an action may use while it runs (see steps.context)."""


class Action(Protocol):
    """One change on a host. ``probe`` reads facts; ``needed`` decides; ``apply`` acts."""

    kind: str

    def fingerprint(self) -> str:
        """Digest of everything that defines the change (no secrets in clear)."""
        ...

    def probe(self, ctx: Any) -> Any:
        """Read-only look at the present state, returned as plain data."""
        ...

    def needed(self, fact: Any, done: str | None) -> bool:
        """Pure: given the probe's fact and the recorded fingerprint, is work needed?"""
        ...

    def apply(self, ctx: Any) -> None:
        """Make the change. Raise an OnestackError on failure."""
        ...


@dataclass(frozen=True)
class Step:
    """One named, journaled unit of work on one host.

    ``fanout``: consecutive steps with the same non-empty fan-out are independent
    across lanes: the runner runs each lane's share of them in order, all lanes at
    once. A lane is the step's host unless ``lane`` names another (several services
    deployed side by side on one host). A step without a fan-out waits for everything
    before it (and is waited for).
    """

    id: str
    summary: str
    service: str
    host: str
    action: Action = field(compare=False)
    fanout: str = ""
    lane: str = ""

    @property
    def runs_in(self) -> str:
        """The lane it runs in within its fan-out: ``lane``, else its host."""
        return self.lane or self.host

    def fingerprint(self) -> str:
        return digest(f"{self.id}|{self.action.kind}|{self.action.fingerprint()}")


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    needed: bool


@dataclass(frozen=True)
class Plan:
    """The ordered steps of an operation, each marked needed or already done."""

    operation: str
    steps: tuple[PlannedStep, ...]

    @property
    def changes(self) -> list[Step]:
        return [p.step for p in self.steps if p.needed]

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "changes": len(self.changes),
            "steps": [
                {"id": p.step.id, "service": p.step.service, "host": p.step.host,
                 "summary": p.step.summary, "kind": p.step.action.kind,
                 "fanout": p.step.fanout, "lane": p.step.runs_in, "needed": p.needed}
                for p in self.steps
            ],
        }


def make_plan(operation: str, steps: list[Step], facts: Mapping[str, Any],
              done: Mapping[str, str]) -> Plan:
    """Pure: mark each step needed or not from probed facts and recorded completions.

    The plan stays data. While it runs, the runner asks again the steps it skipped
    whose action has ``recheck(ctx)`` (process states), once an earlier step of the
    run has changed something (see ``engine.runner``).
    """
    _check_unique(steps)
    planned = []
    for step in steps:
        recorded = done.get(step.id)
        recorded_ok = recorded if recorded == step.fingerprint() else None
        planned.append(PlannedStep(step, step.action.needed(facts.get(step.id), recorded_ok)))
    return Plan(operation, tuple(planned))


def batches(steps: list[Step]) -> list[list[Step]]:
    """Plan order cut where steps must wait: a run of steps sharing one fan-out is one
    batch (independent across hosts); every other step is a batch of its own."""
    out: list[list[Step]] = []
    for step in steps:
        if out and step.fanout and out[-1][-1].fanout == step.fanout:
            out[-1].append(step)
        else:
            out.append([step])
    return out


def _check_unique(steps: list[Step]) -> None:
    seen: set[str] = set()
    for step in steps:
        if step.id in seen:
            raise ValueError(f"duplicate step id {step.id}")
        seen.add(step.id)
