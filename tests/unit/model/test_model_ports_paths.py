"""Ports and paths: pure arithmetic the rest of the deploy relies on."""

from __future__ import annotations

from pathlib import Path

from onestack.model.paths import SitePaths
from onestack.model.ports import (
    API_PORTS,
    EPHEMERAL_START,
    INFRA_PORTS,
    MAX_PORT_OFFSET,
    Ports,
)


def test_offset_shifts_every_port() -> None:
    base, shifted = Ports(0).all_listening(), Ports(1000).all_listening()
    assert shifted.keys() == base.keys()
    assert all(shifted[k] == base[k] + 1000 for k in base)


def test_frontends_are_upstream_ports_and_colors_differ() -> None:
    ports = Ports()
    assert ports.frontend("keystone") == 5000
    assert ports.frontend("nova") == 8774
    for api in API_PORTS:
        assert ports.backend(api, "blue") != ports.backend(api, "green")


def test_all_listening_has_no_collisions() -> None:
    ports = Ports(7).all_listening()
    assert len(set(ports.values())) == len(ports) == 2 * len(API_PORTS) + len(INFRA_PORTS)


def test_no_port_of_any_allowed_offset_reaches_the_ephemeral_range() -> None:
    ports = Ports(MAX_PORT_OFFSET)
    every = [*ports.all_listening().values(), *ports.backends(
        {n: "green" for n in API_PORTS}).values()]
    assert max(every) < EPHEMERAL_START


def test_backends_follow_the_given_colours() -> None:
    assert Ports(5).backends({"glance": "green", "nova": "blue"}) == {
        "glance API (green)": 19297, "nova API (blue)": 28779}


def test_site_paths_layout() -> None:
    p = SitePaths(Path("/h"), "lab")
    assert p.site == Path("/h/sites/lab")
    assert p.secrets_file == Path("/h/sites/lab/secrets")
    assert p.state_db == Path("/h/sites/lab/state.db")
    assert p.venv("2026.1") == Path("/h/releases/2026.1/venv")
    assert p.etc("2026.1") == Path("/h/sites/lab/etc/2026.1")
    assert p.clouds_yaml == Path("/h/sites/lab/clouds.yaml")
