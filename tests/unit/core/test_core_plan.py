"""make_plan and Plan, tested as data: {steps, facts, done} -> needed / not needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from onestack.core.digest import digest
from onestack.core.step import Plan, Step, batches, make_plan
from onestack.steps.actions import RunOnce, StartProgram, WriteFile

CONF = Path("/etc/x.conf")


def _steps(series: str = "2026.1") -> list[Step]:
    return [
        Step("svc/config", "write x.conf", "svc", "aio", WriteFile(CONF, "a = 1\n", 0o640)),
        Step("svc/db-sync", "migrate", "svc", "aio", RunOnce(("manage", "db"), inputs=series)),
        Step("svc/start", "start svc", "svc", "aio", StartProgram("svc", digest("a = 1\n"))),
    ]


def _done(steps: list[Step]) -> dict[str, str]:
    return {s.id: s.fingerprint() for s in steps}


CONVERGED = {"svc/config": [digest("a = 1\n"), 0o640], "svc/db-sync": None,
             "svc/start": ["RUNNING", True]}

CASES: list[tuple[str, dict[str, Any], bool, list[bool]]] = [
    # name, facts, done recorded for the present steps?, expected needed per step
    ("fresh host", {}, False, [True, True, True]),
    ("converged", CONVERGED, True, [False, False, False]),
    ("config edited by hand", {**CONVERGED, "svc/config": ["other", 0o640]}, True,
     [True, False, False]),
    ("config mode drifted", {**CONVERGED, "svc/config": [digest("a = 1\n"), 0o644]}, True,
     [True, False, False]),
    ("process crashed", {**CONVERGED, "svc/start": ["FATAL", False]}, True,
     [False, False, True]),
    ("running but unhealthy", {**CONVERGED, "svc/start": ["RUNNING", False]}, True,
     [False, False, True]),
    ("files present, journal lost", CONVERGED, False, [False, True, True]),
]


@pytest.mark.parametrize(("name", "facts", "recorded", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_plan_cases(name: str, facts: dict[str, Any], recorded: bool,
                    expected: list[bool]) -> None:
    steps = _steps()
    plan = make_plan("up", steps, facts, _done(steps) if recorded else {})
    assert [p.needed for p in plan.steps] == expected
    assert plan.is_empty == (not any(expected))
    assert [s.id for s in plan.changes] == [s.id for s, n in zip(steps, expected, strict=True) if n]


def test_changed_fingerprint_makes_run_once_needed_again() -> None:
    old = _steps("2026.1")
    new = _steps("2026.2")
    plan = make_plan("up", new, CONVERGED, _done(old))
    needed = {p.step.id: p.needed for p in plan.steps}
    assert needed == {"svc/config": False, "svc/db-sync": True, "svc/start": False}


def test_fingerprint_depends_on_id_and_action() -> None:
    a = Step("x/a", "s", "x", "aio", RunOnce(("true",)))
    assert a.fingerprint() == Step("x/a", "other summary", "x", "h2",
                                   RunOnce(("true",))).fingerprint()
    assert a.fingerprint() != Step("x/b", "s", "x", "aio", RunOnce(("true",))).fingerprint()
    assert a.fingerprint() != Step("x/a", "s", "x", "aio", RunOnce(("false",))).fingerprint()


def test_duplicate_ids_rejected() -> None:
    steps = _steps()
    with pytest.raises(ValueError, match="duplicate step id svc/config"):
        make_plan("up", [*steps, steps[0]], {}, {})


def test_to_dict_lists_every_step() -> None:
    steps = _steps()
    data = make_plan("up", steps, CONVERGED, _done(steps[:2])).to_dict()
    assert data["operation"] == "up"
    assert data["changes"] == 1
    assert [s["id"] for s in data["steps"]] == ["svc/config", "svc/db-sync", "svc/start"]
    assert data["steps"][2] == {"id": "svc/start", "service": "svc", "host": "aio",
                                "summary": "start svc", "kind": "process", "fanout": "",
                                "lane": "aio", "needed": True}


def test_batches_group_consecutive_steps_of_one_fanout() -> None:
    def at(step_id: str, host: str, fanout: str = "") -> Step:
        return Step(step_id, step_id, "svc", host, RunOnce(("true",)), fanout)

    steps = [at("a", "h1", "base"), at("b", "h2", "base"), at("c", "h1"),
             at("d", "h2", "x"), at("e", "h3", "x"), at("f", "h1", "base"), at("g", "h1")]
    assert [[s.id for s in b] for b in batches(steps)] == \
        [["a", "b"], ["c"], ["d", "e"], ["f"], ["g"]]


def test_empty_plan() -> None:
    plan = make_plan("up", [], {}, {})
    assert plan.is_empty and plan.changes == [] and plan.to_dict()["steps"] == []
    assert isinstance(plan, Plan)
