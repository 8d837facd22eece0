"""The guest's boot scripts, run here with /bin/sh: metadata parsing and the DHCP hook.

The guest runs them with busybox ash; they use only POSIX sh, sed, grep -oE and
awk, which behave the same here."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from onestack.catalog import guest_image as recipe

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIISJ2HDABcCa99UiCa5svSyn4wAvaTjCMCOhLb6I0aVZ"
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7+/x=="
ECDSA = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY="


def _script(name: str) -> str:
    return next(f.text for f in recipe.guest_scripts() if f.path.endswith(name))


def _call(function: str, stdin: str, *args: str) -> str:
    """Run one function of guest.sh (sourcing it runs nothing)."""
    program = f'{_script("guest.sh")}\n{function} "$@"\n'
    done = subprocess.run(["sh", "-c", program, "sh", *args], input=stdin, text=True,
                          capture_output=True, check=True)
    return done.stdout


def _nova_metadata(**extra: object) -> str:
    """meta_data.json as nova writes it: one line, keys both as a map and a list."""
    data = {"uuid": "0f1e2d3c-aaaa-bbbb-cccc-123456789abc", "hostname": "vm-1.novalocal",
            "name": "vm-1", "launch_index": 0, "availability_zone": "nova",
            "random_seed": "c3NoLXJzYSBBQUFB" * 20,
            "public_keys": {"mine": f"{ED25519} me@laptop\n", "ops": f"{RSA} ops\n"},
            "keys": [{"name": "mine", "type": "ssh", "data": f"{ED25519} me@laptop\n"},
                     {"name": "ops", "type": "ssh", "data": f"{RSA} ops\n"}],
            **extra}
    return json.dumps(data)


def test_keys_from_nova_metadata_each_once_without_comments() -> None:
    assert _call("ssh_keys_in", _nova_metadata()).splitlines() == [ED25519, RSA]


def test_keys_with_escaped_slashes_and_from_the_ec2_file() -> None:
    escaped = json.dumps({"public_keys": {"k": RSA}}).replace("/", "\\/")
    ec2 = f"{ECDSA} someone@somewhere\n"
    assert _call("ssh_keys_in", escaped + "\n" + ec2).splitlines() == [RSA, ECDSA]


def test_no_keys() -> None:
    assert _call("ssh_keys_in", '{"uuid": "x", "public_keys": {}}') == ""


def test_json_string_fields() -> None:
    metadata = _nova_metadata()
    assert _call("json_string", metadata, "hostname").strip() == "vm-1.novalocal"
    assert _call("json_string", metadata, "uuid").strip() == "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
    assert _call("json_string", metadata, "missing") == ""


@pytest.mark.parametrize(("raw", "clean"), [
    ("vm-1.novalocal", "vm-1.novalocal"),
    ("evil;reboot $(x)", "evilrebootx"),
    ("a" * 80, "a" * 63),
])
def test_clean_hostname(raw: str, clean: str) -> None:
    assert _call("clean_hostname", raw).strip() == clean


def _network_data() -> str:
    """network_data.json as nova writes it for two NICs without a DHCP server."""
    return json.dumps({
        "links": [{"id": "tap1", "vif_id": "v1", "type": "ovs", "mtu": 1442,
                   "ethernet_mac_address": "fa:16:3e:aa:bb:cc"},
                  {"id": "tap2", "vif_id": "v2", "type": "ovs", "mtu": 1500,
                   "ethernet_mac_address": "fa:16:3e:00:00:02"}],
        "networks": [{"id": "network0", "type": "ipv4", "link": "tap1",
                      "ip_address": "10.100.0.5", "netmask": "255.255.255.240",
                      "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                                  "gateway": "10.100.0.1"}],
                      "network_id": "n1", "services": []},
                     {"id": "network1", "type": "ipv4", "link": "tap2",
                      "ip_address": "10.200.0.9", "netmask": "255.255.0.0", "routes": [],
                      "network_id": "n2", "services": []}],
        "services": [{"type": "dns", "address": "10.100.0.2"}]})


def test_static_address_of_the_nic_from_network_data() -> None:
    assert _call("static_ipv4_for", _network_data(), "FA:16:3E:AA:BB:CC").splitlines() == [
        "address 10.100.0.5/28", "mtu 1442", "route 0.0.0.0/0 10.100.0.1"]
    assert _call("static_ipv4_for", _network_data(), "fa:16:3e:00:00:02").splitlines() == [
        "address 10.200.0.9/16", "mtu 1500"]


def test_no_static_address_for_an_unknown_nic_or_a_dhcp_network() -> None:
    assert _call("static_ipv4_for", _network_data(), "fa:16:3e:99:99:99") == ""
    dhcp = _network_data().replace('"type": "ipv4", "link": "tap1"',
                                   '"type": "ipv4_dhcp", "link": "tap1"')
    assert _call("static_ipv4_for", dhcp, "fa:16:3e:aa:bb:cc") == ""


@pytest.fixture
def fake_ip(tmp_path: Path) -> Path:
    """An ``ip`` that records its arguments, first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ip").write_text(f'#!/bin/sh\necho "ip $*" >> {tmp_path}/calls\n')
    (bin_dir / "ip").chmod(0o755)
    return tmp_path


def _dhcp_event(fake_ip: Path, event: str, **lease: str) -> list[str]:
    script = _script("udhcpc.script").replace("/run/onestack-guest", str(fake_ip / "state"))
    script = script.replace("/etc/resolv.conf", str(fake_ip / "resolv.conf"))
    env = {"PATH": f"{fake_ip / 'bin'}:{os.environ['PATH']}", "interface": "eth0", **lease}
    subprocess.run(["sh", "-c", script, "udhcpc", event], env=env, check=True)
    return (fake_ip / "calls").read_text().splitlines()


def test_dhcp_lease_with_classless_routes_neutron_style(fake_ip: Path) -> None:
    calls = _dhcp_event(fake_ip, "bound", ip="10.0.0.5", mask="24", router="10.0.0.1",
                        dns="10.0.0.2", mtu="1450",
                        staticroutes="169.254.169.254/32 10.0.0.2 0.0.0.0/0 10.0.0.1 "
                                     "10.1.0.0/16 0.0.0.0")
    assert calls == ["ip -4 addr flush dev eth0", "ip addr add 10.0.0.5/24 dev eth0",
                     "ip link set eth0 mtu 1450",
                     "ip route replace 169.254.169.254/32 via 10.0.0.2 dev eth0",
                     "ip route replace 0.0.0.0/0 via 10.0.0.1 dev eth0",
                     "ip route replace 10.1.0.0/16 dev eth0"]
    assert (fake_ip / "state" / "ip").read_text() == "10.0.0.5\n"
    assert (fake_ip / "resolv.conf").read_text() == "nameserver 10.0.0.2\n"


def test_dhcp_lease_with_a_router_only(fake_ip: Path) -> None:
    calls = _dhcp_event(fake_ip, "bound", ip="10.0.2.15", mask="24", router="10.0.2.2",
                        broadcast="10.0.2.255")
    assert calls[1] == "ip addr add 10.0.2.15/24 broadcast 10.0.2.255 dev eth0"
    assert calls[-1] == "ip route replace default via 10.0.2.2 dev eth0"


def test_scripts_are_shipped_with_their_modes() -> None:
    files = {f.path: f for f in recipe.guest_scripts()}
    assert files["init"].mode == 0o755 and files["init"].text.startswith("#!/bin/sh")
    assert files["lib/onestack/udhcpc.script"].mode == 0o755
    assert "root:x:0:0:root:/root:/bin/sh" in files["etc/passwd"].text


def test_recipe_digest_changes_with_the_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    before = recipe.recipe_digest()
    monkeypatch.setattr(recipe, "GUEST_MODULES", (*recipe.GUEST_MODULES, "e1000"))
    assert recipe.recipe_digest() != before


def test_syslinux_cfg_boots_the_kernel_with_a_serial_console() -> None:
    cfg = recipe.syslinux_cfg()
    assert "LINUX /vmlinuz" in cfg and "INITRD /initrd.img" in cfg
    assert "console=ttyS0" in cfg and "TIMEOUT 0" in cfg


@pytest.fixture
def fake_wget(tmp_path: Path) -> Path:
    """A ``wget`` that records its arguments and writes ``body`` to its -O file, or
    fails when there is no body (as busybox's does on an HTTP error)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "wget").write_text(
        f'#!/bin/sh\necho "wget $*" >> {tmp_path}/calls\n'
        f'[ -f {tmp_path}/body ] || exit 1\n'
        'while [ "$1" != -O ]; do shift; done; cp ' f'{tmp_path}/body "$2"\n')
    (bin_dir / "wget").chmod(0o755)
    return tmp_path


def _curl(fake_wget: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = _script("curl").replace("/tmp/curl.$$", str(fake_wget / "out.$$"))
    env = {"PATH": f"{fake_wget / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(["sh", "-c", script, "curl", *args], env=env, capture_output=True,
                          text=True)


def test_curl_gets_and_posts_what_tempest_asks_of_the_metadata_service(
        fake_wget: Path) -> None:
    (fake_wget / "body").write_text("198.19.0.5")
    got = _curl(fake_wget, "http://169.254.169.254/latest/meta-data/public-ipv4")
    assert (got.returncode, got.stdout) == (0, "198.19.0.5")  # no newline added
    posted = _curl(fake_wget, "-X", "POST", "-d", "s3cr3t", "http://169.254.169.254/pw")
    assert posted.returncode == 0
    calls = (fake_wget / "calls").read_text().splitlines()
    assert calls[1].endswith("--post-data s3cr3t http://169.254.169.254/pw")
    assert not list(fake_wget.glob("out.*"))  # its temporary file is gone


def test_curl_fails_like_curl(fake_wget: Path) -> None:
    assert _curl(fake_wget, "-s", "http://169.254.169.254/missing").returncode == 22
    refused = _curl(fake_wget, "--compressed", "http://x/")
    assert refused.returncode == 2 and "--compressed" in refused.stderr
    assert _curl(fake_wget).returncode == 2
