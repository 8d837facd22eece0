"""Reading a site file: what the model accepts but a deploy cannot do yet is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onestack.drivers.site_file import read_site_file
from onestack.errors import SiteFileError

BASE = 'name: s1\nrelease: "2026.1"\nhosts:\n  - name: aio\n'


def test_libvirt_and_ovn_are_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(BASE)
    site = read_site_file(path, home=tmp_path)
    assert (site.compute_driver.value, site.network.value) == ("libvirt", "ovn")


def test_no_network_with_libvirt_is_refused_naming_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(BASE + "network: none\n")
    with pytest.raises(SiteFileError) as err:
        read_site_file(path, home=tmp_path)
    assert (err.value.line, err.value.field_path) == (5, "network")
    assert "needs compute_driver: fake" in err.value.problem


def test_the_fake_driver_is_read(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(BASE + "compute_driver: fake\n")
    assert read_site_file(path, home=tmp_path).compute_driver.value == "fake"


def test_a_controller_over_ssh_is_read(tmp_path: Path) -> None:
    # issue 22: onestack runs from a deploy host; the controller is reached over SSH.
    path = tmp_path / "site.yaml"
    path.write_text('name: s1\nrelease: "2026.1"\nhosts:\n  - name: ctl1\n'
                    '    address: 198.18.0.12\n    roles: [controller, compute, network]\n'
                    '    connection: ssh\n')
    site = read_site_file(path, home=tmp_path)
    assert not site.controller.is_local and site.controller.name == "ctl1"


SSH_SITE = BASE + ('    tunnel: {interface: eth1, address: 198.18.1.1/24}\n'
                   '  - name: cmp1\n    address: 198.18.0.12\n    roles: [compute]\n'
                   '    connection: ssh\n    tunnel: {interface: eth1, address: 198.18.1.12/24}\n')


@pytest.mark.parametrize("kind", ["symlink", "directory", "pipe"])
def test_known_hosts_that_is_not_a_regular_file_is_refused_naming_line_and_field(
        tmp_path: Path, kind: str) -> None:
    # issue 21: `onestack host trust` rewrote whatever file `known_hosts:` named, as root.
    from onestack.drivers.site_file import NOT_A_KNOWN_HOSTS_FILE

    known = tmp_path / "known_hosts"
    if kind == "symlink":
        (tmp_path / "target").write_text("")
        known.symlink_to(tmp_path / "target")
    elif kind == "directory":
        known.mkdir()
    else:
        os.mkfifo(known)
    path = tmp_path / "site.yaml"
    path.write_text(SSH_SITE + f"known_hosts: {known}\n")
    with pytest.raises(SiteFileError) as err:
        read_site_file(path, home=tmp_path)
    assert (err.value.path, err.value.line, err.value.field_path, err.value.problem) == \
        (str(path), SSH_SITE.count("\n") + 1, "known_hosts", NOT_A_KNOWN_HOSTS_FILE)


def test_known_hosts_that_is_a_file_or_does_not_exist_yet_is_read(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "known_hosts").write_text("")
    for known in (tmp_path / "sites" / "s1" / "known_hosts", tmp_path / "lab" / "known_hosts",
                  tmp_path / "prod_known_hosts"):
        path.write_text(SSH_SITE + f"known_hosts: {known}\n")
        assert read_site_file(path, home=tmp_path).known_hosts == str(known)


@pytest.mark.parametrize("where", [
    "/etc/shadow", "/etc/ssh/ssh_known_hosts", "{outside}/known_hosts",
    "{home}/../known_hosts", "{home}/link/known_hosts", "{home}-2/known_hosts",
    "{home}/sites/s1/secrets", "{home}/sites/s1/state.db",
])
def test_known_hosts_outside_the_home_or_not_named_so_is_refused_naming_line_and_field(
        tmp_path: Path, where: str) -> None:
    # issue 21: a site file's `known_hosts: /etc/shadow` was rewritten by `host trust`.
    from onestack.drivers.site_file import outside_home

    home, outside = tmp_path / "home", tmp_path / "outside"
    home.mkdir()
    outside.mkdir()
    (home / "link").symlink_to(outside)
    path = tmp_path / "site.yaml"
    path.write_text(SSH_SITE + f"known_hosts: {where.format(home=home, outside=outside)}\n")
    with pytest.raises(SiteFileError) as err:
        read_site_file(path, home=home)
    assert (err.value.path, err.value.line, err.value.field_path, err.value.problem) == \
        (str(path), SSH_SITE.count("\n") + 1, "known_hosts", outside_home(home))
    assert str(home) in str(err.value) and where.format(home=home, outside=outside) \
        not in str(err.value)
    assert sorted(p.name for p in outside.iterdir()) == []


TUNNEL_SITE = ('name: s1\nrelease: "2026.1"\nhosts:\n  - name: aio\n'
               '    roles: [controller, network]\n'
               '  - name: cmp1\n    address: 198.18.0.12\n    roles: [compute]\n'
               '    connection: ssh\n')


def test_a_chassis_without_a_tunnel_on_a_site_of_several_is_refused_naming_it(
        tmp_path: Path) -> None:
    # issue 19: the userspace datapath tunnels only through a switch port (ADR 0023).
    path = tmp_path / "site.yaml"
    path.write_text(TUNNEL_SITE)
    with pytest.raises(SiteFileError) as err:
        read_site_file(path, home=tmp_path)
    assert (err.value.line, err.value.field_path) == (4, "hosts.0.tunnel")
    assert "host aio (and cmp1) forwards instance traffic" in err.value.problem


def test_tunnels_are_not_needed_without_ovn_or_with_one_chassis(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(TUNNEL_SITE.replace("[controller, network]", "[controller]"))
    assert read_site_file(path, home=tmp_path).untunnelled_chassis() == []
    path.write_text(TUNNEL_SITE + "compute_driver: fake\nnetwork: none\n")
    assert read_site_file(path, home=tmp_path).chassis == []


@pytest.mark.parametrize(("tunnel", "problem"), [
    ("{interface: eth1, address: 198.18.1.0/24}", "is not a host's address"),
    ("{interface: eth1, address: 198.18.1.5/32}", "is not a host's address"),
    ("{interface: 'eth1; reboot', address: 198.18.1.5/24}", "should match pattern"),
    ("{interface: eth1}", "address"),
])
def test_a_malformed_tunnel_is_refused_naming_line_and_field(tmp_path: Path, tunnel: str,
                                                             problem: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(TUNNEL_SITE + f"    tunnel: {tunnel}\n")
    with pytest.raises(SiteFileError) as err:
        read_site_file(path, home=tmp_path)
    assert err.value.field_path.startswith("hosts.1.tunnel")
    assert problem in err.value.problem.lower() or problem in err.value.field_path


def test_two_hosts_with_one_tunnel_address_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(TUNNEL_SITE.replace("[controller, network]\n", "[controller, network]\n"
                                        "    tunnel: {interface: t0, address: 198.18.1.5/24}\n")
                    + "    tunnel: {interface: eth1, address: 198.18.1.5/24}\n")
    with pytest.raises(SiteFileError) as err:
        read_site_file(path, home=tmp_path)
    assert "duplicate tunnel addresses: 198.18.1.5" in err.value.problem
