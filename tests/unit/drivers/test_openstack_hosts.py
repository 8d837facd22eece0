"""A compute host leaving the cloud, against a recording stand-in for openstacksdk."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from onestack.drivers import openstack


class _Compute:
    def __init__(self, servers: list[str], status: str = "enabled") -> None:
        self._servers = servers
        self.service = SimpleNamespace(status=status)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def services(self, **query: Any) -> list[Any]:
        self.calls.append(("services", query))
        return [self.service]

    def disable_service(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("disable", kwargs))
        self.service.status = "disabled"

    def servers(self, **query: Any) -> list[Any]:
        self.calls.append(("servers", query))
        return [SimpleNamespace(name=n, id=f"id-{n}") for n in self._servers]

    def delete_service(self, service: Any) -> None:
        self.calls.append(("delete", {}))


def test_servers_are_listed_by_compute_host_across_projects() -> None:
    compute = _Compute(["web1"])
    listed = openstack.disable_compute(SimpleNamespace(compute=compute), "cmp3", "leaving")
    assert listed == ["web1 (id-web1)"]
    assert ("servers", {"all_projects": True, "compute_host": "cmp3"}) in compute.calls
    assert compute.service.status == "disabled"


def test_the_refusal_names_the_host_and_its_servers() -> None:
    error = openstack.HostHasServersError("cmp3", [f"s{i} (id{i})" for i in range(12)])
    text = str(error)
    assert "cmp3" in text and "12 server(s)" in text and "s0 (id0)" in text
    assert "s11" not in text and text.count(" (id") == 10


@pytest.mark.parametrize("servers", [[], ["web1"]])
def test_delete_removes_the_record_only(servers: list[str]) -> None:
    compute = _Compute(servers)
    assert openstack.delete_compute(SimpleNamespace(compute=compute), "cmp3")
    assert [c for c, _ in compute.calls] == ["services", "delete"]
