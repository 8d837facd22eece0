"""Reach a cloud's guests from this machine (``onestack verify``): a throwaway SSH key,
whether a TCP port answers, a command run over SSH.

The SSH client is paramiko, the library pyinfra already brings (ADR 0009); no system
``ssh`` is needed. Keys only: no password, no agent, nothing of ``~/.ssh``. A guest's
host key is unknown before its first boot, so it is checked the way an operator would:
the test image prints its host keys' SHA256 fingerprints on its console, and a key
is accepted only if its fingerprint is among those nova's console log shows (when the
console shows none, the key is accepted and the caller says so).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.errors import GuestSshError

CONSOLE_HOST_KEY = re.compile(r"onestack-guest: host key (SHA256:[A-Za-z0-9+/]+)")


@dataclass(frozen=True)
class GuestKey:
    """A key pair made for one run: the private half in a 0600 file, never shown."""

    private_path: Path
    public_line: str  # "ssh-ed25519 AAAA... comment", what the guest's authorized_keys gets


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


@contextmanager
def key_folder() -> Iterator[Path]:
    """A private temporary folder (0700) for a run's key, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="onestack-verify-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def make_key(folder: Path, comment: str) -> GuestKey:
    """A new Ed25519 key pair; the private key written 0600 (OpenSSH format) in ``folder``."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH,
                                ser.NoEncryption())
    public = key.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH)
    path = folder / "id_ed25519"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    return GuestKey(path, f"{public.decode()} {comment}")


def console_fingerprints(console: str) -> set[str]:
    """The host key fingerprints the test image printed on its console."""
    return set(CONSOLE_HOST_KEY.findall(console))


def fingerprint(key_blob: bytes) -> str:
    """``SHA256:...`` of a public key blob, as ``ssh-keygen -l`` and dropbear print it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


# How a TCP connection to a guest is made: directly from this machine, or through a
# host that reaches floating IPs (``SshHost.open_tunnel``). Returns a socket-like
# object (send, recv, settimeout, close); raises OSError when refused.
Dial = Callable[[str, int, float], Any]


def direct(address: str, port: int, timeout: float) -> Any:
    return socket.create_connection((address, port), timeout=timeout)


def ssh_answers(address: str, port: int = 22, timeout: float = 3.0,
                dial: Dial = direct) -> bool:
    """Does an SSH server answer at ``address`` (its ``SSH-`` banner within timeout)?"""
    try:
        with closing(dial(address, port, timeout)) as sock:
            sock.settimeout(timeout)
            return bool(sock.recv(4) == b"SSH-")
    except OSError:
        return False


def tcp_connects(address: str, port: int, timeout: float = 3.0, dial: Dial = direct) -> bool:
    """Is a TCP connection to ``address:port`` accepted within ``timeout``?"""
    try:
        with closing(dial(address, port, timeout)):
            return True
    except OSError:
        return False


def http_text(address: str, port: int, timeout: float = 5.0, dial: Dial = direct) -> str:
    """The body of ``GET /`` at ``address:port`` (the guest's busybox httpd)."""
    try:
        with closing(dial(address, port, timeout)) as sock:
            sock.settimeout(timeout)
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
            reply = _read_all(sock, MAX_HTTP_REPLY)
    except OSError as exc:
        raise GuestSshError(address, f"GET / on port {port}: {exc}") from None
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if not re.match(r"HTTP/1\.[01] 2\d\d", status):
        raise GuestSshError(address, f"GET / on port {port}: {status or 'no answer'}")
    return body[:4096].decode(errors="replace")


MAX_HTTP_REPLY = 65536


def _read_all(sock: Any, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = sock.recv(min(4096, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class GuestShell:
    """One SSH session to a guest as ``user`` with a :class:`GuestKey`."""

    def __init__(self, address: str, user: str, key: GuestKey, trusted: set[str],
                 timeout: float = 15.0, dial: Dial = direct) -> None:
        self.address = address
        self.client = _connect(address, user, key, trusted, timeout, dial=dial)

    def run(self, command: str, timeout: float = 30.0) -> CommandResult:
        """Run a shell command; its output and exit status, within ``timeout``."""
        try:
            _, stdout, stderr = self.client.exec_command(command, timeout=timeout)
            out, err = stdout.read(), stderr.read()
            channel = stdout.channel
            if not channel.status_event.wait(timeout):
                raise GuestSshError(self.address, f"no exit status within {timeout:.0f}s")
            return CommandResult(channel.exit_status, out.decode(errors="replace"),
                                 err.decode(errors="replace"))
        except GuestSshError:
            raise
        except Exception as exc:  # paramiko's and socket's errors end here
            raise GuestSshError(self.address, f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.client.close()


@contextmanager
def guest_shell(address: str, user: str, key: GuestKey, trusted: set[str],
                timeout: float = 15.0, dial: Dial = direct) -> Iterator[GuestShell]:
    """A :class:`GuestShell`, closed afterwards."""
    shell = GuestShell(address, user, key, trusted, timeout, dial)
    try:
        yield shell
    finally:
        shell.close()


def _connect(address: str, user: str, key: GuestKey, trusted: set[str],
             timeout: float, port: int = 22, dial: Dial = direct) -> Any:
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_console_policy(trusted))
    try:
        pkey = paramiko.Ed25519Key(filename=str(key.private_path))
        sock = None if dial is direct else dial(address, port, timeout)
        client.connect(address, port=port, username=user, pkey=pkey, timeout=timeout,
                       sock=sock,
                       banner_timeout=timeout, auth_timeout=timeout, look_for_keys=False,
                       allow_agent=False)
        return client
    except GuestSshError:
        client.close()
        raise
    except paramiko.AuthenticationException:
        client.close()
        raise GuestSshError(address, f"the key was refused for {user} (was it injected? "
                            "the server's console log shows how many keys it got)") from None
    except Exception as exc:  # paramiko's and socket's errors end here
        client.close()
        raise GuestSshError(address, f"{type(exc).__name__}: {exc}") from None


def _console_policy(trusted: set[str]) -> Any:
    """paramiko's missing-host-key policy: accept a key the guest's console showed."""
    import paramiko

    class ConsolePolicy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            seen = fingerprint(key.asbytes())
            if trusted and seen not in trusted:
                raise GuestSshError(hostname, f"host key {seen} is not one the server's "
                                    f"console showed ({', '.join(sorted(trusted))}): refusing")

    return ConsolePolicy()


class GuestAccess:
    """The ways to reach guests, as one object (tests replace it): from this machine,
    or through a host that reaches floating IPs (``dial``)."""

    def __init__(self, dial: Dial = direct) -> None:
        self.dial = dial

    def ssh_answers(self, address: str) -> bool:
        return ssh_answers(address, dial=self.dial)

    def tcp_connects(self, address: str, port: int, timeout: float) -> bool:
        return tcp_connects(address, port, timeout, dial=self.dial)

    def http_text(self, address: str, port: int) -> str:
        return http_text(address, port, dial=self.dial)

    def shell(self, address: str, user: str, key: GuestKey,
              trusted: set[str]) -> AbstractContextManager[GuestShell]:
        return guest_shell(address, user, key, trusted, dial=self.dial)
