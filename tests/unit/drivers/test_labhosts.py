"""The lab driver's checks that need no namespace: root, the recorded bridge, names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from onestack.cli.main import cli
from onestack.drivers import labhosts
from onestack.drivers.labhosts import Lab
from onestack.errors import LabHostError, PrerequisiteError


def test_a_new_lab_takes_the_bridge_and_network_asked_for(tmp_path: Path) -> None:
    lab = Lab.open(tmp_path / "lab", "ostk-t10", "198.18.10.0/24")
    assert (lab.spec.bridge, lab.spec.network) == ("ostk-t10", "198.18.10.0/24")
    assert Lab.open(tmp_path / "other").spec.bridge == "onestack-lab0"


def test_an_existing_lab_keeps_its_bridge_and_network(tmp_path: Path) -> None:
    home = tmp_path / "lab"
    home.mkdir()
    (home / "lab.json").write_text(json.dumps({"bridge": "ostk-t10",
                                               "network": "198.18.10.0/24"}))
    assert Lab.open(home).spec.bridge == "ostk-t10"
    with pytest.raises(LabHostError, match="uses bridge ostk-t10, not onestack-lab0"):
        Lab.open(home, bridge="onestack-lab0")


def test_bad_networks_are_refused_as_lab_errors(tmp_path: Path) -> None:
    with pytest.raises(LabHostError, match="outside 198.18.0.0/15"):
        Lab.open(tmp_path / "lab", network="10.1.0.0/24")


def test_unknown_hosts_are_named(tmp_path: Path) -> None:
    lab = Lab.open(tmp_path / "lab")
    with pytest.raises(LabHostError, match="lab7: no such lab host"):
        lab.host("lab7")
    with pytest.raises(LabHostError, match="web1"):
        lab.host("web1")
    assert lab.hosts() == [] and lab.states() == []


def test_not_root_is_refused_before_anything_is_written(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(labhosts.os, "geteuid", lambda: 1000)
    lab = Lab.open(tmp_path / "lab")
    with pytest.raises(PrerequisiteError, match="need root"):
        lab.create(2)
    assert not (tmp_path / "lab").exists()


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(labhosts.os, "geteuid", lambda: 0)
    lab = Lab.open(tmp_path / "lab")
    monkeypatch.setattr(lab.local, "which", lambda c: None if c == "unshare" else f"/bin/{c}")
    with pytest.raises(PrerequisiteError, match="unshare"):
        lab.check_prerequisites()


def test_the_lab_commands_are_registered() -> None:
    out = CliRunner().invoke(cli, ["lab", "--help"]).output
    assert "hosts" in out and "host" in out
    out = CliRunner().invoke(cli, ["lab", "hosts", "--help"]).output
    assert all(word in out for word in ("create", "list", "delete"))
    out = CliRunner().invoke(cli, ["lab", "host", "--help"]).output
    assert "poweroff" in out and "poweron" in out


@pytest.mark.parametrize("before", [None, 0o644])
def test_the_labs_known_hosts_is_written_0600(tmp_path: Path, before: int | None) -> None:
    # issue 21: the lab's known_hosts was created 0644, and an older lab's stayed so.
    lab = Lab.open(tmp_path / "lab", "ostk-t10", "198.18.10.0/24")
    host = lab.spec.host(1)
    host.etc_ssh.mkdir(parents=True)
    (host.etc_ssh / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAA lab1\n")
    if before is not None:
        lab.spec.known_hosts.write_text("198.18.10.99 ssh-ed25519 OLD\n")
        lab.spec.known_hosts.chmod(before)
    lab._write_known_hosts()
    assert lab.spec.known_hosts.read_text() == "198.18.10.11 ssh-ed25519 AAAA\n"
    assert lab.spec.known_hosts.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in lab.spec.home.iterdir()) == ["hosts", "known_hosts"]


def test_the_lab_installs_what_a_sites_roles_install_on_its_hosts(tmp_path: Path) -> None:
    from onestack.services import registry  # the CLI's list (lab hosts have no uplink)
    lab = Lab.open(tmp_path / "lab", packages=registry.lab_host_packages())
    for package in ("openssh-server", "openvswitch-switch", "ovn-host", "qemu-system-x86",
                    "libvirt-daemon", "python3-libvirt", "haproxy", "mariadb-server",
                    "rabbitmq-server", "memcached", "ovn-central", "supervisor"):
        assert package in lab.packages
    assert len(set(lab.packages)) == len(lab.packages)
