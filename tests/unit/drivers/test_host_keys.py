"""Host keys: parsing known_hosts and ssh-keyscan output, fingerprints, recording."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from onestack.drivers import host_keys

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
    assert known.stat().st_mode & 0o777 == 0o644
    assert host_keys.recorded(known, "198.18.0.11") == [new]
