"""drivers.guest_ssh without a guest: keys, console fingerprints, the host key policy,
ports answering on this machine."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import paramiko
import pytest

from onestack.drivers import guest_ssh
from onestack.errors import GuestSshError

CONSOLE = """onestack-guest: booting, kernel 6.1.0-28-cloud-amd64
onestack-guest: host key SHA256:Qm9vdCBrZXkgZWQyNTUxOQ
onestack-guest: host key SHA256:ZWNkc2Eta2V5+/x
onestack-guest: ssh ready
"""


def test_console_fingerprints() -> None:
    assert guest_ssh.console_fingerprints(CONSOLE) == {"SHA256:Qm9vdCBrZXkgZWQyNTUxOQ",
                                                       "SHA256:ZWNkc2Eta2V5+/x"}
    assert guest_ssh.console_fingerprints("no marker here") == set()


def test_fingerprint_is_what_openssh_prints(tmp_path: Path) -> None:
    key = guest_ssh.make_key(tmp_path, "t")
    loaded = paramiko.Ed25519Key(filename=str(key.private_path))
    assert guest_ssh.fingerprint(loaded.asbytes()) == loaded.fingerprint
    assert key.public_line.split()[1] == loaded.get_base64()


def test_the_host_key_must_be_one_the_console_showed(tmp_path: Path) -> None:
    key = paramiko.Ed25519Key(filename=str(guest_ssh.make_key(tmp_path, "t").private_path))
    seen = guest_ssh.fingerprint(key.asbytes())
    guest_ssh._console_policy({seen}).missing_host_key(None, "198.19.0.9", key)
    guest_ssh._console_policy(set()).missing_host_key(None, "198.19.0.9", key)  # unchecked
    with pytest.raises(GuestSshError, match="is not one the server's console showed"):
        guest_ssh._console_policy({"SHA256:other"}).missing_host_key(None, "198.19.0.9", key)


def _listener(banner: bytes) -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        conn.sendall(banner)
        conn.close()
    threading.Thread(target=answer, daemon=True).start()
    return server, server.getsockname()[1]


def test_ssh_answers_needs_the_banner() -> None:
    server, port = _listener(b"SSH-2.0-dropbear_2022.83\r\n")
    with server:
        assert guest_ssh.ssh_answers("127.0.0.1", port, timeout=2)
    server, port = _listener(b"HTTP/1.0 200 OK\r\n")
    with server:
        assert not guest_ssh.ssh_answers("127.0.0.1", port, timeout=2)


def test_closed_ports_do_not_connect() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    assert not guest_ssh.tcp_connects("127.0.0.1", port, timeout=1)
    assert not guest_ssh.ssh_answers("127.0.0.1", port, timeout=1)
    with pytest.raises(GuestSshError, match=f"GET / on port {port}"):
        guest_ssh.http_text("127.0.0.1", port, timeout=1)


def test_a_refused_connection_is_a_guest_ssh_error(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    key = guest_ssh.make_key(tmp_path, "t")
    with pytest.raises(GuestSshError, match="ssh to guest 127.0.0.1: "):
        guest_ssh._connect("127.0.0.1", "root", key, set(), timeout=2, port=port)
