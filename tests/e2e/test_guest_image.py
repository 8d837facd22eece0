"""The test image, for real: built from Debian packages, booted under QEMU (TCG), logged
into over SSH with the key of its config drive; two guests reach each other.

Networking never leaves this machine: slirp with port 22 forwarded to 127.0.0.1
(ports 29010-29019, below the kernel's ephemeral range so that no outgoing
connection of another test holds one), and a QEMU socket network on 127.0.0.1
between two guests.
The image is built under /var/tmp/onestack-e2e-image (reused when its inputs did
not change).
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.guest_vm import (  # noqa: E402
    GuestVm,
    Peer,
    booted,
    config_drive,
    ensure_vm_tools,
    fingerprints,
    known_hosts_of,
    make_key,
    metadata_tree,
    wait_listening,
)

from onestack.cli.main import cli  # noqa: E402
from onestack.drivers.guest_image import GuestImage, build_image, reusable_image  # noqa: E402

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"),
                       reason="building the image installs Debian packages: root on Debian"),
]

HOME = Path(os.environ.get("ONESTACK_TEST_IMAGE_HOME", "/var/tmp/onestack-e2e-image"))
SSH_PORT, PEER_A_PORT, PEER_B_PORT, SOCKET_PORT, METADATA_PORT = 29010, 29011, 29012, 29013, 29014
BOOT_TIMEOUT = 120.0  # seconds to "ssh ready" under TCG, with margin for a busy machine


@pytest.fixture(scope="module")
def image() -> GuestImage:
    ensure_vm_tools()
    return build_image(HOME / "images", say=print)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    return {"good": make_key(folder / "good"), "wrong": make_key(folder / "wrong")}


@pytest.fixture(scope="module")
def guest(image: GuestImage, keys: dict[str, Path],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestVm]:
    work = tmp_path_factory.mktemp("guest")
    drive = config_drive(work / "config.iso", uuid=str(uuid.uuid4()), hostname="guest-one",
                         public_key=(keys["good"].with_suffix(".pub")).read_text(),
                         user_data="#!/bin/sh\necho user-data-ran > /run/user-data-mark\n")
    with booted(image.path, work / "vm", name="guest-one", ssh_port=SSH_PORT,
                drive=drive) as vm:
        vm.wait_for("onestack-guest: ssh ready", BOOT_TIMEOUT)
        yield vm


def test_image_is_small_and_described_by_its_manifest(image: GuestImage) -> None:
    assert image.path.is_file() and image.manifest.is_file()
    assert 2 * 2**20 < image.size < 60 * 2**20
    assert image.kernel.endswith("-cloud-amd64")
    assert {"busybox-static", "dropbear-bin"} <= set(image.packages)
    assert reusable_image(image.path.parent, image.inputs_digest) is not None


def test_the_same_inputs_give_the_same_bytes(image: GuestImage, tmp_path: Path) -> None:
    again = build_image(tmp_path / "again", cache_dir=HOME / "images" / "cache", force=True)
    assert (again.sha256, again.inputs_digest) == (image.sha256, image.inputs_digest)


def test_a_second_build_reuses_the_image() -> None:
    result = CliRunner().invoke(cli, ["--home", str(HOME), "image", "build", "--json"])
    assert result.exit_code == 0, result.output
    assert '"reused": true' in result.output


def test_boot_shows_progress_on_the_console(guest: GuestVm) -> None:
    console = guest.console_text()
    for marker in ("onestack-guest: dhcp ok 10.0.2.15 on eth0",
                   "onestack-guest: metadata from config drive",
                   "onestack-guest: hostname guest-one", "onestack-guest: 1 ssh keys for root"):
        assert marker in console, guest.console_tail()


def test_ssh_with_the_injected_key(guest: GuestVm, keys: dict[str, Path],
                                   tmp_path: Path) -> None:
    # The host keys ssh sees are the ones the guest printed on its console: an
    # operator can check them there before trusting the first connection.
    known = known_hosts_of(guest, tmp_path / "known_hosts")
    assert fingerprints(known) == guest.host_key_fingerprints()
    result = guest.ssh(keys["good"], "uname -a; hostname; id -u", known_hosts=known)
    assert result.returncode == 0, result.stderr + guest.console_tail()
    kernel, hostname, uid = result.stdout.split("\n")[:3]
    assert kernel.startswith("Linux guest-one ") and "cloud-amd64" in kernel
    assert (hostname, uid) == ("guest-one", "0")


def test_user_data_script_ran(guest: GuestVm, keys: dict[str, Path]) -> None:
    guest.wait_for("onestack-guest: user data exit 0", 30)
    assert guest.ssh(keys["good"], "cat /run/user-data-mark").stdout == "user-data-ran\n"


def test_a_wrong_key_is_refused(guest: GuestVm, keys: dict[str, Path]) -> None:
    result = guest.ssh(keys["wrong"], "true")
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_keys_from_the_metadata_service_without_config_drive(
        image: GuestImage, keys: dict[str, Path], tmp_path: Path) -> None:
    # One key in meta_data.json, the other only in the EC2-style openssh-key: both count.
    served = metadata_tree(tmp_path / "metadata", uuid=str(uuid.uuid4()), hostname="from-api",
                           public_key=keys["good"].with_suffix(".pub").read_text(),
                           ec2_key=keys["wrong"].with_suffix(".pub").read_text())
    with booted(image.path, tmp_path / "vm", name="from-api", ssh_port=METADATA_PORT,
                metadata=served) as vm:
        vm.wait_for("onestack-guest: ssh ready", BOOT_TIMEOUT)
        console = vm.console_text()
        results = [vm.ssh(keys[name], "hostname") for name in ("good", "wrong")]
    assert "onestack-guest: metadata from http://169.254.169.254" in console, console
    assert "onestack-guest: 2 ssh keys for root" in console
    assert [r.stdout for r in results] == ["from-api\n", "from-api\n"], results


# busybox 1.35's static wget crashes with -T: bounded by timeout instead.
FETCH = "timeout 10 wget -q -O /tmp/page http://{peer}:8080/ && cat /tmp/page"


def _peer_user_data(address: str) -> str:
    # A second NIC on the guests' own network, and a web server answering its hostname.
    return ("#!/bin/sh\nip link set eth1 up\n"
            f"ip addr add {address}/24 dev eth1\n"
            "mkdir -p /www && hostname > /www/index.html\n"
            "httpd -p 8080 -h /www\n")


def test_two_guests_reach_each_other(image: GuestImage, keys: dict[str, Path],
                                     tmp_path: Path) -> None:
    public_key = keys["good"].with_suffix(".pub").read_text()
    guests = {"peer-a": ("192.168.47.1", PEER_A_PORT, True, "52:54:00:47:00:01"),
              "peer-b": ("192.168.47.2", PEER_B_PORT, False, "52:54:00:47:00:02")}
    drives = {name: config_drive(tmp_path / f"{name}.iso", uuid=str(uuid.uuid4()),
                                 hostname=name, public_key=public_key,
                                 user_data=_peer_user_data(address))
              for name, (address, *_rest) in guests.items()}
    vms = {}
    with booted(image.path, tmp_path / "peer-a", name="peer-a", ssh_port=PEER_A_PORT,
                drive=drives["peer-a"], peer=Peer(SOCKET_PORT, True, guests["peer-a"][3])) as a:
        wait_listening(SOCKET_PORT)
        with booted(image.path, tmp_path / "peer-b", name="peer-b", ssh_port=PEER_B_PORT,
                    drive=drives["peer-b"],
                    peer=Peer(SOCKET_PORT, False, guests["peer-b"][3])) as b:
            vms = {"peer-a": a, "peer-b": b}
            for vm in vms.values():
                vm.wait_for("onestack-guest: user data exit 0", BOOT_TIMEOUT)
            reach = a.ssh(keys["good"], f"ping -c 2 -W 3 192.168.47.2 >/dev/null && {FETCH}"
                          .format(peer="192.168.47.2"))
            back = b.ssh(keys["good"], FETCH.format(peer="192.168.47.1"))
    assert reach.returncode == 0, reach.stderr + vms["peer-a"].console_tail()
    assert reach.stdout.strip() == "peer-b"
    assert back.stdout.strip() == "peer-a", back.stderr
