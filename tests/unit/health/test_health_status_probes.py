"""``status`` asks each probe where it must run: a remote host's probe goes through
that host's connection (issue 19: lab2's libvirtd was asked on the controller)."""

from __future__ import annotations

from typing import Any

from onestack.drivers.probes import AllOf, CommandProbe
from onestack.health.status import _on_its_host


class Remote:
    name = "lab2"

    def run(self, argv: Any, **kwargs: Any) -> str:
        return "asked on lab2\n"


def test_a_remote_hosts_probe_runs_through_its_connection() -> None:
    probe = CommandProbe(("true",), "asked on lab2", runs_on="lab2")
    bound = _on_its_host(probe, "lab2", Remote())  # type: ignore[arg-type]
    assert bound.check() == (True, "true: asked on lab2")


def test_probes_of_other_hosts_and_inside_all_of_are_bound_only_where_they_run() -> None:
    here = CommandProbe(("true",), "x", runs_on="ctl1")
    there = CommandProbe(("true",), "x", runs_on="lab2")
    bound = _on_its_host(AllOf((here, there)), "lab2", Remote())  # type: ignore[arg-type]
    assert isinstance(bound, AllOf)
    assert bound.probes[0] is here and bound.probes[1].via is not None  # type: ignore[attr-defined]
