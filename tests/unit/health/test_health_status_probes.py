"""``status`` asks each probe where it must run: on the host it names (``runs_on``),
else on its program's host, each through that host's connection (issue 19: lab2's
libvirtd was asked on the controller; issue 22: a controller reached over SSH)."""

from __future__ import annotations

from typing import Any

from onestack.drivers.host import LocalHost
from onestack.drivers.probes import AllOf, CommandProbe, TcpProbe
from onestack.health.status import _on_its_host


class Remote:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, argv: Any, **kwargs: Any) -> str:
        return f"asked on {self.name}\n"


HOSTS: dict[str, Any] = {"ctl1": LocalHost("ctl1"), "lab2": Remote("lab2"),
                         "ctl2": Remote("ctl2")}


def test_a_remote_hosts_probe_runs_through_its_connection() -> None:
    probe = CommandProbe(("true",), "asked on lab2", runs_on="lab2")
    bound = _on_its_host(probe, HOSTS["lab2"], HOSTS.get)
    assert bound.check() == (True, "true: asked on lab2")


def test_probes_are_bound_to_the_host_they_name_else_to_their_programs() -> None:
    here = CommandProbe(("true",), "x", runs_on="ctl1")
    there = CommandProbe(("true",), "x", runs_on="lab2")
    bound = _on_its_host(AllOf((here, there)), HOSTS["lab2"], HOSTS.get)
    assert isinstance(bound, AllOf)
    assert bound.probes[0] is here and bound.probes[1].via is HOSTS["lab2"]  # type: ignore[attr-defined]
    # A probe naming no host runs where its program does: a controller over SSH.
    tcp = _on_its_host(TcpProbe("127.0.0.1", 11211), HOSTS["ctl2"], HOSTS.get)
    assert tcp.via is HOSTS["ctl2"]  # type: ignore[attr-defined]
    assert _on_its_host(TcpProbe("127.0.0.1", 1), HOSTS["ctl1"], HOSTS.get) == \
        TcpProbe("127.0.0.1", 1)
