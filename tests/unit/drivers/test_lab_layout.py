"""The lab's layout as data: addresses, names, mounts, sshd and init configuration."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from onestack.drivers.lab_layout import (
    LabSpec,
    LabSpecError,
    foreign_addresses,
    mount_order,
    render_init_script,
    render_known_hosts,
    render_sshd_config,
)


def test_addresses_start_at_11_and_bridge_is_1() -> None:
    lab = LabSpec(Path("/x"), bridge="ostk-t10", network="198.18.10.0/24")
    assert lab.bridge_address == "198.18.10.1"
    assert [lab.host(i).address for i in (1, 2, 3)] == [
        "198.18.10.11", "198.18.10.12", "198.18.10.13"]
    assert [lab.host(i).name for i in (1, 2)] == ["lab1", "lab2"]
    assert lab.host_named("lab12").address == "198.18.10.22"


def test_default_lab_uses_the_reserved_range() -> None:
    lab = LabSpec(Path("/var/lib/onestack/lab"))
    assert (lab.bridge, lab.network, lab.bridge_address) == (
        "onestack-lab0", "198.18.0.0/24", "198.18.0.1")
    assert lab.max_hosts == 244  # .11 to .254


@pytest.mark.parametrize("network", ["10.0.0.0/24", "192.168.1.0/24", "198.20.0.0/24"])
def test_networks_outside_198_18_0_0_15_are_refused(network: str) -> None:
    with pytest.raises(LabSpecError, match="outside 198.18.0.0/15"):
        LabSpec(Path("/x"), network=network)


def test_bridge_names_must_fit_a_linux_interface_name() -> None:
    with pytest.raises(LabSpecError, match="at most 15"):
        LabSpec(Path("/x"), bridge="a-very-long-bridge-name")
    with pytest.raises(LabSpecError):
        LabSpec(Path("/x"), bridge="br;rm")


def test_host_numbers_beyond_the_network_are_refused() -> None:
    lab = LabSpec(Path("/x"), network="198.18.10.0/28")  # .11 to .14
    assert lab.max_hosts == 4
    assert lab.host(4).address == "198.18.10.14"
    with pytest.raises(LabSpecError, match="lab1 to lab4"):
        lab.host(5)
    for name in ("lab0", "web1", "lab", "lab01"):
        with pytest.raises(LabSpecError):
            lab.host_named(name)


def test_veth_and_netns_names_fit_and_differ_between_labs() -> None:
    one, two = LabSpec(Path("/a"), bridge="onestack-lab0"), LabSpec(Path("/b"), bridge="ostk-t10")
    for lab in (one, two):
        assert all(len(lab.host(i).veth) <= 15 for i in (1, 99, 244))
    assert one.host(1).veth != two.host(1).veth
    assert one.host(1).netns == "onestack-lab0-lab1"
    macs = {lab.host(i).mac for lab in (one, two) for i in (1, 2, 244)}
    assert len(macs) == 6 and all(m.startswith("02:") and len(m) == 17 for m in macs)
    tunnel = {lab.host(i).tunnel_mac for lab in (one, two) for i in (1, 2, 244)}
    assert len(tunnel) == 6 and not tunnel & macs


def test_host_files_live_under_the_lab_home() -> None:
    lab = LabSpec(Path("/srv/os/lab"))
    host = lab.host(2)
    assert host.dir == Path("/srv/os/lab/hosts/lab2")
    assert lab.key_file == Path("/srv/os/lab/id_ed25519")
    assert lab.known_hosts == Path("/srv/os/lab/known_hosts")
    targets = {str(t) for _, t in host.mounts()}
    assert {"/var/lib/onestack", "/run", "/var/log", "/etc/hostname", "/etc/ssh"} <= targets
    assert all(str(src).startswith(str(host.dir)) for src, _ in host.mounts())


def test_mounts_never_hide_a_later_source_with_the_default_home() -> None:
    host = LabSpec(Path("/var/lib/onestack/lab")).host(1)
    ordered = mount_order(host.mounts())
    targets = [t for _, t in ordered]
    assert targets.index(Path("/var/lib/onestack")) == len(targets) - 1
    _assert_no_hidden_sources(ordered)


def test_mounts_never_hide_a_later_source_with_a_home_under_tmp() -> None:
    ordered = mount_order(LabSpec(Path("/tmp/lab10-x/lab")).host(1).mounts())
    assert ordered[-1][1] == Path("/tmp")
    _assert_no_hidden_sources(ordered)


def _assert_no_hidden_sources(ordered: list[tuple[Path, Path]]) -> None:
    for i, (_, target) in enumerate(ordered):
        for source, _ in ordered[i + 1:]:
            assert target not in source.parents, f"{target} hides {source}"


def test_mounts_that_hide_each_other_are_refused() -> None:
    with pytest.raises(LabSpecError):
        mount_order([(Path("/a/x"), Path("/b")), (Path("/b/y"), Path("/a"))])


def test_sshd_config_allows_root_key_login_and_sftp_only() -> None:
    conf = render_sshd_config("198.18.10.11").splitlines()
    for line in ["ListenAddress 198.18.10.11", "UsePAM yes", "StrictModes no",
                 "PasswordAuthentication no", "PermitRootLogin prohibit-password",
                 "Subsystem sftp /usr/lib/openssh/sftp-server",
                 "AuthorizedKeysFile /etc/ssh/authorized_keys",
                 "HostKey /etc/ssh/ssh_host_ed25519_key"]:
        assert line in conf


def test_init_script_quotes_paths_and_ends_in_sshd_as_pid_1() -> None:
    host = LabSpec(Path("/tmp/my lab")).host(1)
    script = render_init_script(host)
    lines = script.splitlines()
    assert lines[1] == "hostname lab1"
    mounts = [shlex.split(line) for line in lines if line.startswith("mount --bind")]
    assert ["mount", "--bind", "/tmp/my lab/hosts/lab1/run", "/run"] in mounts
    assert lines[-1].startswith("exec /usr/sbin/sshd -D")
    assert "mount -t proc proc /proc" in lines


def test_known_hosts_lines_sorted_by_address() -> None:
    text = render_known_hosts([("198.18.0.12", "ssh-ed25519 BBB"),
                               ("198.18.0.11", "ssh-ed25519 AAA")])
    assert text == "198.18.0.11 ssh-ed25519 AAA\n198.18.0.12 ssh-ed25519 BBB\n"


def test_foreign_addresses_in_the_lab_network_are_found() -> None:
    lab = LabSpec(Path("/x"), bridge="ostk-t10", network="198.18.10.0/24")
    out = "\n".join([
        "1: lo    inet 127.0.0.1/8 scope host lo",
        "2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0",
        "7: ostk-t10    inet 198.18.10.1/24 scope global ostk-t10",
        "9: other0    inet 198.18.10.5/24 scope global other0",
        "10: wide0    inet 198.18.0.1/16 scope global wide0",
    ])
    assert foreign_addresses(out, lab) == ["198.18.10.5 on other0", "198.18.0.1 on wide0"]


def test_a_lab_under_another_home_gives_each_host_its_own_copy_of_that_home() -> None:
    host = LabSpec(Path("/var/tmp/e2e/lab")).host(2)
    ordered = mount_order(host.mounts())
    assert (host.dir / "onestack-home", Path("/var/tmp/e2e")) in ordered
    _assert_no_hidden_sources(ordered)
    default = LabSpec(Path("/var/lib/onestack/lab")).host(2).mounts()
    assert [t for _, t in default].count(Path("/var/lib/onestack")) == 1
