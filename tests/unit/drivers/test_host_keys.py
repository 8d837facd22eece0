"""Host keys: parsing known_hosts and ssh-keyscan output, fingerprints, recording."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest

from onestack.drivers import host_keys
from onestack.errors import StateFileError

BLOB = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + bytes(range(36))).decode()


def test_fingerprint_is_sha256_of_the_key_blob_as_ssh_prints_it() -> None:
    key = host_keys.HostKey("198.18.0.11", "ssh-ed25519", BLOB)
    expected = base64.b64encode(hashlib.sha256(base64.b64decode(BLOB)).digest())
    assert key.fingerprint == "SHA256:" + expected.decode().rstrip("=")


def test_parse_skips_comments_markers_and_hashed_names_and_splits_patterns() -> None:
    text = "\n".join(["# 198.18.0.11:22 SSH-2.0-OpenSSH_9.2", f"@revoked x ssh-rsa {BLOB}",
                      f"|1|abc|def ssh-ed25519 {BLOB}",
                      f"198.18.0.11,[198.18.0.11]:2222 ssh-ed25519 {BLOB}"])
    assert [k.pattern for k in host_keys.parse(text)] == ["198.18.0.11", "[198.18.0.11]:2222"]
    assert host_keys.host_pattern("198.18.0.11", 2222) == "[198.18.0.11]:2222"


def test_record_adds_and_replace_drops_only_that_hosts_old_keys(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"198.18.0.12 ssh-ed25519 {BLOB}\n198.18.0.11 ssh-rsa OLD\n")
    new = host_keys.HostKey("198.18.0.11", "ssh-ed25519", BLOB)
    host_keys.record(known, [new], replace=True)
    assert known.read_text() == (f"198.18.0.12 ssh-ed25519 {BLOB}\n"
                                 f"198.18.0.11 ssh-ed25519 {BLOB}\n")
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert host_keys.recorded(known, "198.18.0.11") == [new]


NEW = host_keys.HostKey("198.18.0.11", "ssh-ed25519", BLOB)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_new_known_hosts_is_0600_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    known = tmp_path / "sites" / "lab" / "known_hosts"
    host_keys.record(known, [NEW])
    assert known.read_text() == f"{NEW.line}\n"
    assert _mode(known) == 0o600
    assert sorted(p.name for p in known.parent.iterdir()) == ["known_hosts"]


@pytest.mark.parametrize(("before", "after"), [(0o600, 0o600), (0o644, 0o600),
                                               (0o666, 0o600), (0o400, 0o400)])
def test_an_existing_file_is_never_made_readable_by_more_users(
        tmp_path: Path, before: int, after: int) -> None:
    # issue 21: a 0600 file named by `known_hosts:` came out 0644 with a line appended.
    known = tmp_path / "private"
    known.write_bytes(b"secret line \xff kept as it was\nno newline at the end")
    os.chmod(known, before)
    host_keys.record(known, [NEW])
    assert known.read_bytes() == (b"secret line \xff kept as it was\nno newline at the end\n"
                                  + NEW.line.encode() + b"\n")
    assert _mode(known) == after


def test_the_owner_and_group_of_an_existing_file_are_kept(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    known = tmp_path / "known_hosts"
    known.write_text("")
    os.chown(known, 65534, 65534)
    host_keys.record(known, [NEW])
    info = known.stat()
    assert (info.st_uid, info.st_gid) == (65534, 65534)


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "directory", "fifo"])
def test_known_hosts_that_is_not_a_regular_file_is_refused_and_left_alone(
        tmp_path: Path, kind: str) -> None:
    target = tmp_path / "shadow"
    target.write_text("root:secret\n")
    target.chmod(0o600)
    known = tmp_path / "known_hosts"
    if kind == "symlink":
        known.symlink_to(target)
    elif kind == "dangling symlink":
        known.symlink_to(tmp_path / "nowhere")
    elif kind == "directory":
        known.mkdir()
    else:
        os.mkfifo(known)
    with pytest.raises(StateFileError) as err:
        host_keys.record(known, [NEW])
    assert str(err.value) == f"{known}: {host_keys.NOT_REGULAR}"
    with pytest.raises(StateFileError):
        host_keys.recorded(known, NEW.pattern)
    assert (target.read_text(), _mode(target)) == ("root:secret\n", 0o600)
    assert not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["known_hosts", "shadow"]


def test_a_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="not a regular file"):
        host_keys.recorded(Path("/dev/zero"), NEW.pattern)


def test_a_file_over_16_mib_is_refused_and_left_alone(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    with known.open("wb") as f:
        f.truncate(host_keys.MAX_KNOWN_HOSTS_BYTES + 1)
    with pytest.raises(StateFileError, match="larger than 16 MiB"):
        host_keys.record(known, [NEW])
    assert known.stat().st_size == host_keys.MAX_KNOWN_HOSTS_BYTES + 1
