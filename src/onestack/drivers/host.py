"""This machine as a host: ``LocalHost`` implements ``core.host.HostConnection``.

Every action on a machine goes through a host connection. Remote hosts will be
reached through an existing engine (pyinfra) behind the same protocol.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from onestack.core.activity import doing
from onestack.core.digest import digest
from onestack.errors import CommandError


class LocalHost:
    """This machine, reached without a network hop."""

    def __init__(self, name: str = "localhost") -> None:
        self.name = name

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 600, check: bool = True,
            input: str | None = None) -> str:
        """Run a command; return its combined output; raise CommandError on failure.

        ``input`` goes to its stdin (how a secret reaches a command: never in argv)."""
        full_env = {**os.environ, **(env or {})}
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        try:
            with doing(f"`{shlex.join(argv)}` on {self.name}"):
                proc = subprocess.run(list(argv), env=full_env, cwd=cwd, timeout=timeout,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, **stdin)
        except FileNotFoundError:
            if not check:
                return f"{argv[0]}: not found"
            raise CommandError(" ".join(argv), 127, f"{argv[0]}: not found") from None
        except subprocess.TimeoutExpired as exc:
            out = exc.output if isinstance(exc.output, str) else ""
            raise CommandError(" ".join(argv), -1, f"timed out after {timeout}s\n{out}") from None
        if check and proc.returncode != 0:
            raise CommandError(" ".join(argv), proc.returncode, proc.stdout)
        return proc.stdout

    def write_file(self, path: Path, content: str, *, mode: int = 0o644,
                   owner: str | None = None) -> bool:
        """Write atomically; return True if the content or mode changed."""
        if self.file_digest(path) == digest(content) and _mode_of(path) == mode:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if owner:
            _chown(tmp, owner)
        os.replace(tmp, path)
        return True

    def put_file(self, source: Path, path: Path, *, mode: int = 0o600) -> None:
        """Copy a file of this machine (the local half of shipping an artifact)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        os.chmod(path, mode)

    def file_digest(self, path: Path) -> str | None:
        try:
            return digest(path.read_bytes())
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return None

    def file_mode(self, path: Path) -> int | None:
        return _mode_of(path)

    def file_owner(self, path: Path) -> str | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return f"{_name_of_user(st.st_uid)}:{_name_of_group(st.st_gid)}"

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def read_file(self, path: Path) -> str | None:
        try:
            return path.read_text()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def ensure_dir(self, path: Path, *, mode: int = 0o755, owner: str | None = None) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        os.chmod(path, mode)
        if owner:
            _chown(path, owner)

    def list_dir(self, path: Path, pattern: str = "*") -> list[str]:
        """Names in a directory matching a glob, sorted; none if it does not exist."""
        return sorted(p.name for p in path.glob(pattern)) if path.is_dir() else []

    def remove(self, path: Path) -> bool:
        """Remove a file or a directory tree; return False if it was not there."""
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            return True
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False

    def port_holder(self, port: int) -> str | None:
        """Who holds a local TCP port (process name and pid), or None if it is free.

        A listener, or else an outgoing connection whose local port it is: either
        makes a ``bind()`` to it fail. Sockets in TIME-WAIT do not (SO_REUSEADDR)."""
        out = self.run(["ss", "-Htanp", f"sport = :{port}"], check=False)
        return holder_from_ss(out) or _probe_port(port)

    def which(self, program: str) -> str | None:
        return shutil.which(program)


def _mode_of(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return None


def _name_of_user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _name_of_group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def chown_spec(owner: str) -> str:
    """``chown``'s argument: ``user:group``, or ``user:`` for the user's own group."""
    return owner if ":" in owner else f"{owner}:"


def _chown(path: Path, owner: str) -> None:
    """``user`` (and that user's group) or ``user:group``."""
    user, _, group = owner.partition(":")
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, grp.getgrnam(group).gr_gid if group else pw.pw_gid)


def holder_from_ss(out: str) -> str | None:
    """A listener, else a process's own connection. Sockets no process owns (TIME-WAIT,
    FIN-WAIT of a stopped server's accepted connections) do not block a SO_REUSEADDR
    bind, and an accepted connection of a live listener comes with its listener."""
    rows = [line.split() for line in out.splitlines() if line.strip()]
    for row in rows:
        if row[0] == "LISTEN":
            return " ".join(row[5:]).removeprefix("users:") or "unknown process"
    for row in rows:
        if len(row) > 5 and row[5].startswith("users:"):
            return f"a connection of {' '.join(row[5:]).removeprefix('users:')} (state {row[0]})"
    return None


def _probe_port(port: int) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return "unknown process" if s.connect_ex(("127.0.0.1", port)) == 0 else None


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
