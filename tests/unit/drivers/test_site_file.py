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


def test_a_controller_over_ssh_is_refused_naming_its_entry(tmp_path: Path) -> None:
    from onestack.drivers.site_file import NOT_YET_REMOTE_CONTROLLER

    path = tmp_path / "site.yaml"
    path.write_text('name: s1\nrelease: "2026.1"\nhosts:\n  - name: cmp1\n'
                    '    address: 198.18.0.11\n    roles: [compute]\n    connection: ssh\n'
                    '  - name: ctl1\n    address: 198.18.0.12\n    roles: [controller]\n'
                    '    connection: ssh\n')
    with pytest.raises(SiteFileError) as err:
        read_site_file(path, home=tmp_path)
    assert (err.value.line, err.value.field_path, err.value.problem) == \
        (8, "hosts.1.connection", NOT_YET_REMOTE_CONTROLLER)


SSH_SITE = BASE + ('  - name: cmp1\n    address: 198.18.0.12\n    roles: [compute]\n'
                   '    connection: ssh\n')


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
