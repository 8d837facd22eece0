"""parse_site: valid files load; bad ones name file, line and dotted field path."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from onestack.errors import SiteFileError
from onestack.model.loader import dump_site, parse_site
from onestack.model.site import ComputeDriver, Role, VirtType, default_lab_site

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


SSH_HOSTS = ('name: lab\nrelease: "2026.1"\nhosts:\n'
             '  - name: ctl\n    address: 198.18.20.11\n    connection: ssh\n'
             '  - name: cmp1\n    address: 198.18.20.12\n    connection: ssh\n'
             '    ssh_user: deploy\n    ssh_port: 2222\n    ssh_key: /etc/onestack/id_ed25519\n')


def test_ssh_fields_default_and_parse() -> None:
    site = parse_site(SSH_HOSTS + "known_hosts: /etc/onestack/known_hosts\n", "s.yaml")
    ctl, cmp1 = site.hosts
    assert (ctl.ssh_user, ctl.ssh_port, ctl.ssh_key) == ("root", 22, None)
    assert (cmp1.ssh_user, cmp1.ssh_port, cmp1.ssh_key) == ("deploy", 2222,
                                                            "/etc/onestack/id_ed25519")
    assert site.known_hosts == "/etc/onestack/known_hosts"
    assert parse_site(SSH_HOSTS, "s.yaml").known_hosts is None
    assert [h.name for h in site.computes] == ["ctl", "cmp1"]  # default roles: all


@pytest.mark.parametrize(("change", "field", "problem"), [
    (("ssh_port: 2222", "ssh_port: '2222'"), "hosts.1.ssh_port", "integer"),
    (("ssh_port: 2222", "ssh_port: 70000"), "hosts.1.ssh_port", "less than or equal"),
    (("ssh_port: 2222", "ssh_port: true"), "hosts.1.ssh_port", "integer"),
    (("ssh_user: deploy", "ssh_user: 'root; rm -rf /'"), "hosts.1.ssh_user", "pattern"),
    (("ssh_key: /etc/onestack/id_ed25519", "ssh_key: id_ed25519"), "hosts.1.ssh_key",
     "pattern"),
    (("ssh_key: /etc/onestack/id_ed25519", 'ssh_key: "/tmp/a\\nb"'), "hosts.1.ssh_key",
     "pattern"),
])
def test_bad_ssh_fields_name_line_and_field(change: tuple[str, str], field: str,
                                             problem: str) -> None:
    err = _error(SSH_HOSTS.replace(*change))
    lines = {"hosts.1.ssh_user": 10, "hosts.1.ssh_port": 11, "hosts.1.ssh_key": 12}
    assert (err.line, err.field_path) == (lines[field], field)
    assert problem in err.problem


def test_duplicate_host_addresses_name_file_line_and_field() -> None:
    err = _error(SSH_HOSTS.replace("198.18.20.12", "198.18.20.11"))
    assert (err.path, err.line, err.field_path) == ("/etc/site.yaml", 8, "hosts.1.address")
    assert "duplicate host address '198.18.20.11' (already hosts.0.address)" in err.problem


def test_duplicate_default_addresses_are_refused() -> None:
    err = _error('name: lab\nrelease: "2026.1"\nhosts:\n  - name: a\n  - name: b\n')
    assert err.field_path == "hosts" and "duplicate host addresses: 127.0.0.1" in err.problem


def test_bad_known_hosts_path_is_named() -> None:
    err = _error(SSH_HOSTS + "known_hosts: ../known_hosts\n")
    assert (err.line, err.field_path) == (SSH_HOSTS.count("\n") + 1, "known_hosts")


def test_compute_driver_is_libvirt_unless_asked_and_virt_type_needs_libvirt() -> None:
    base = 'name: a\nrelease: "2026.1"\nhosts: [{name: h}]\n'
    assert parse_site(base, "s.yaml").compute_driver == ComputeDriver.LIBVIRT
    site = parse_site(base + "compute_driver: libvirt\nvirt_type: kvm\n", "s.yaml")
    assert (site.compute_driver, site.virt_type) == (ComputeDriver.LIBVIRT, VirtType.KVM)
    assert parse_site(base + "compute_driver: libvirt\n", "s.yaml").virt_type == VirtType.AUTO
    with pytest.raises(SiteFileError) as err:
        parse_site(base + "compute_driver: fake\nvirt_type: qemu\n", "s.yaml")
    assert (err.value.line, err.value.field_path) == (5, "virt_type")
    assert "needs compute_driver: libvirt" in err.value.problem
    with pytest.raises(SiteFileError, match="compute_driver: Input should be 'libvirt' or"):
        parse_site(base + "compute_driver: xen\n", "s.yaml")


def test_architecture_from_the_catalog_and_its_former_name() -> None:
    from onestack.drivers.site_file import shipped_architectures
    catalog = shipped_architectures()
    assert parse_site(VALID, "/etc/site.yaml", architectures=catalog).architecture == "aio"
    former = VALID.replace("port_offset: 100", "architecture: all-in-one")
    assert parse_site(former, "/etc/site.yaml", architectures=catalog).architecture == "aio"
    with pytest.raises(SiteFileError) as info:
        parse_site(VALID.replace("port_offset: 100", "architecture: galaxy"),
                   "/etc/site.yaml", architectures=catalog)
    assert str(info.value) == ("/etc/site.yaml:3: architecture: unknown architecture galaxy "
                               "(known: aio, ha)")
    with pytest.raises(SiteFileError) as info:
        parse_site(VALID.replace("roles: [controller, compute]", "roles: [controller]"),
                   "/etc/site.yaml", architectures=catalog)
    assert str(info.value) == ("/etc/site.yaml:5: architecture: rule compute count: "
                               "architecture aio needs at least 1 compute; the site has 0 "
                               "computes")
