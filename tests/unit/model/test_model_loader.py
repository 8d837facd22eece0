"""parse_site: valid files load; bad ones name file, line and dotted field path."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from onestack.errors import SiteFileError
from onestack.model.loader import dump_site, parse_site
from onestack.model.site import Role, default_lab_site

VALID = """\
name: lab
release: "2026.1"
port_offset: 100
hosts:
  - name: aio
    address: 10.0.0.5
    roles: [controller, compute]
"""


def _error(text: str) -> SiteFileError:
    with pytest.raises(SiteFileError) as info:
        parse_site(text, "/etc/site.yaml")
    return info.value


def test_valid_file_gives_typed_site() -> None:
    site = parse_site(VALID, "site.yaml")
    assert site.name == "lab"
    assert site.release == "2026.1"
    assert site.port_offset == 100
    assert site.hosts[0].address == IPv4Address("10.0.0.5")
    assert site.hosts[0].roles == [Role.CONTROLLER, Role.COMPUTE]
    assert site.controller.name == "aio"


def test_default_lab_site_round_trips_through_dump() -> None:
    site = default_lab_site("lab2", "2026.2")
    assert parse_site(dump_site(site), "dumped.yaml") == site


def test_yaml_syntax_error_names_line() -> None:
    text = 'name: lab\nrelease: "2026.1"\nhosts:\n  - name: aio\n bad: x\n'
    err = _error(text)
    assert err.line == 5
    assert err.field_path == "(syntax)"
    assert str(err).startswith("/etc/site.yaml:5: (syntax): not valid YAML")


@pytest.mark.parametrize(("text", "line", "field", "words"), [
    ('name: lab\nrelease: "2026.1"\nhosts:\n  - name: aio\n    colour: blue\n',
     5, "hosts.0.colour", "Extra inputs are not permitted"),
    ('name: lab\nrelease: "2026.1"\nport_offset: lots\nhosts:\n  - name: aio\n',
     3, "port_offset", "valid integer"),
    ('name: lab\nrelease: "2026.1"\nport_offset: 30000\nhosts:\n  - name: aio\n',
     3, "port_offset", "less than or equal to 3000"),
    ('name: lab\nrelease: "2026.1"\nhosts:\n  - name: aio\n  - name: Bad_Name\n',
     5, "hosts.1.name", "should match pattern"),
    ('name: lab\nrelease: "2026.1"\nhosts:\n  - name: aio\n    address: 300.1.1.1\n',
     5, "hosts.0.address", "IPv4"),
    ('name: lab\nrelease: "2026.1"\nhosts:\n  - name: aio\n    roles: [controller, wizard]\n',
     5, "hosts.0.roles.1", "'controller'"),
    ('name: lab\nhosts:\n  - name: aio\n', 1, "release", "Field required"),
    ('name: lab\nrelease: "2026.1"\nhosts: []\n', 3, "hosts", "at least 1 item"),
])
def test_invalid_field_names_file_line_and_path(text: str, line: int, field: str,
                                                words: str) -> None:
    err = _error(text)
    assert (err.path, err.line, err.field_path) == ("/etc/site.yaml", line, field)
    assert words in err.problem
    assert str(err).startswith(f"/etc/site.yaml:{line}: {field}: ")


def test_duplicate_host_names_rejected() -> None:
    text = 'name: lab\nrelease: "2026.1"\nhosts:\n  - name: aio\n  - name: aio\n'
    err = _error(text)
    assert (err.line, err.field_path) == (5, "hosts.1.name")
    assert "duplicate host name 'aio' (already hosts.0.name)" in err.problem


def test_several_problems_are_counted() -> None:
    err = _error("name: lab\nhosts:\n  - name: aio\n    colour: x\n")
    assert "(and 1 more problems)" in err.problem


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- name: lab\n", "just text\n"])
def test_empty_or_non_mapping_file(text: str) -> None:
    err = _error(text)
    assert (err.line, err.field_path) == (1, "(top)")
    assert "expected a mapping" in err.problem


def test_duplicate_key_is_rejected() -> None:
    _error('name: lab\nname: other\nrelease: "2026.1"\nhosts:\n  - name: aio\n')
