"""Hostile site files: refused quickly, with file, line and field, never a traceback."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from onestack.errors import SiteFileError
from onestack.model import loader
from onestack.model.loader import parse_site
from onestack.model.site import Site

HEAD = 'name: lab\nrelease: "2026.1"\n'
HOSTS = "hosts:\n  - name: aio\n"


def _error(text: str) -> SiteFileError:
    with pytest.raises(SiteFileError) as info:
        parse_site(text, "/etc/site.yaml")
    return info.value


@pytest.mark.parametrize(("text", "line", "field"), [
    # issue 12.9: a newline in a value would become a new INI section in every config.
    (HEAD + 'region: "RegionOne\\n[database]\\nconnection = x"\n' + HOSTS, 3, "region"),
    (HEAD + 'hosts:\n  - name: aio\n    failure_domain: "rack1\\n[DEFAULT]"\n', 5,
     "hosts.0.failure_domain"),
    (HEAD + 'architecture: "a b"\n' + HOSTS, 3, "architecture"),
    (HEAD + "region: " + "r" * 65 + "\n" + HOSTS, 3, "region"),
    ('name: lab\nrelease: "2026.1\\n"\n' + HOSTS, 2, "release"),
    ("name: " + "a" * 33 + '\nrelease: "2026.1"\n' + HOSTS, 1, "name"),
    (HEAD + HOSTS + "nodes:\n  - {name: n1, bmc: \"https://x\\n\", credentials: c}\n", 6,
     "nodes.0.bmc"),
    (HEAD + HOSTS + "nodes:\n  - {name: n1, bmc: 'https://x', credentials: 'a b'}\n", 6,
     "nodes.0.credentials"),
])
def test_strings_have_patterns_and_length_caps(text: str, line: int, field: str) -> None:
    err = _error(text)
    assert (err.line, err.field_path) == (line, field)


@pytest.mark.parametrize("value", ["true", "false", "1.0", "100.5", '"100"'])
def test_port_offset_must_be_a_plain_integer(value: str) -> None:
    # issue 12.13: `port_offset: true` was taken as 1.
    err = _error(HEAD + f"port_offset: {value}\n" + HOSTS)
    assert (err.line, err.field_path) == (3, "port_offset")


@pytest.mark.parametrize(("text", "line", "words"), [
    ('a: &x ["lol", "lol"]\nb: &y [*x, *x]\nc: [*y, *y]\n', 1, "aliases"),
    (HEAD + "hosts:\n  - &h {name: aio}\n", 4, "aliases"),
    (HEAD + "hosts: !!set {a: null}\n", 3, "tags"),
    (HEAD + "!!map x: 1\n" + HOSTS, 3, "tag"),
    (HEAD + "? [a]\n: 1\n" + HOSTS, 3, "plain value"),
    (HEAD + "port_offset: " + "9" * 5000 + "\n" + HOSTS, 3, "not a valid int"),
    ("a:\n" + "".join(" " * i + "a:\n" for i in range(1, 40)), 17, "levels deep"),
    ("[" * 100_000, 1, "not valid YAML"),
    (HEAD + HOSTS + "---\n" + HEAD, 5, "more than one YAML document"),
    ("name: a\x00\n", 1, "not valid YAML"),
])
def test_unsafe_yaml_is_refused_with_a_line(text: str, line: int, words: str) -> None:
    err = _error(text)
    assert err.line == line
    assert words in err.problem


def test_huge_or_unprintable_keys_are_shown_short_and_escaped() -> None:
    err = _error(HEAD + HOSTS + '"' + "k\\e[31m" * 1000 + '": 1\n')
    shown = str(err)
    assert "\x1b" not in shown
    assert len(err.field_path) <= 80


@pytest.mark.parametrize("text", [
    HEAD + "hosts: [" + "a," * 200_000 + "]\n",
    HEAD + "hosts: [" + "{name: a}," * 60_000 + "]\n",
    "x: [" + ("[" + "1," * 9_999 + "],") * 30 + "]\n",
    HEAD + "nodes: [" + ("{" + ", ".join(f"k{i}: {i}" for i in range(60)) + "},") * 1000
    + "]\n",
])
def test_large_inputs_are_refused_in_bounded_time(text: str) -> None:
    # issue 12.8: 300k hosts ran for minutes (quadratic duplicate check, no caps).
    assert len(text) <= loader.MAX_BYTES
    t0 = time.monotonic()
    _error(text)
    assert time.monotonic() - t0 < 20  # seconds; ~5 on a busy 2-core machine


def test_text_over_the_size_cap_is_refused_before_parsing() -> None:
    err = _error("#" * (loader.MAX_BYTES + 1))
    assert (err.line, err.field_path) == (None, "(file)")


def test_duplicate_host_check_is_linear() -> None:
    # The validator reads only .name and .address: plain objects keep the test fast.
    hosts: list[Any] = [SimpleNamespace(name=f"h{i}", address=f"10.{i >> 16}.{i >> 8 & 255}."
                                        f"{i & 255}") for i in range(300_000)]
    hosts.append(SimpleNamespace(name="h7", address="10.200.0.1"))
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="duplicate host names: h7"):
        Site._unique_hosts(hosts)  # type: ignore[call-arg]
    hosts[-1] = SimpleNamespace(name="hx", address="10.0.0.7")
    with pytest.raises(ValueError, match="duplicate host addresses: 10.0.0.7"):
        Site._unique_hosts(hosts)  # type: ignore[call-arg]
    assert time.monotonic() - t0 < 5


def test_duplicate_node_names_are_refused() -> None:
    err = _error(HEAD + HOSTS + "nodes:\n  - {name: n1, bmc: 'https://a', credentials: c}\n"
                 "  - {name: n1, bmc: 'https://b', credentials: c}\n")
    assert (err.line, err.field_path) == (7, "nodes.1.name")
    assert "duplicate node name 'n1' (already nodes.0.name)" in err.problem


def test_unknown_release_names_file_line_and_field() -> None:
    # issue 12.12: an unknown release was found only after the lock and secrets existed.
    with pytest.raises(SiteFileError) as info:
        parse_site("name: lab\nhosts: [{name: a}]\nrelease: '2099.1'\n", "s.yaml",
                   releases=["2026.1", "2026.2"])
    err = info.value
    assert (err.path, err.line, err.field_path) == ("s.yaml", 3, "release")
    assert "unknown release bundle 2099.1 (known: 2026.1, 2026.2)" in err.problem
