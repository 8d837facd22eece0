"""A host reached over SSH through pyinfra: the remote half of :class:`HostConnection`.

pyinfra (v3, its Python API) owns the SSH side: inventory, the SSH connector
(paramiko underneath), host key checking against the site's known_hosts, SFTP file
transfer and facts. onestack only builds commands (argv lists, quoted with shlex)
and translates pyinfra's and paramiko's failures into errors naming the host.

Secrets never reach a command line: file content goes by SFTP into a file created
0600 first, and an environment travels on the command's standard input.

One SshHost serves many threads at once (a plan runs a host's steps in parallel
lanes) over one SSH connection: the first thread to need it connects, the others
wait for that. Every file transfer opens its own SFTP channel, so a large upload
never blocks a small one (pyinfra keeps one SFTP client per host, and paramiko's
client hangs when two threads share it). Channels open at once are bounded below
sshd's MaxSessions: the next command waits for a free one instead of being refused,
and one sshd refuses all the same (it frees a closed channel a moment later) is
asked for again: a refused channel never ran anything.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from paramiko import (
    AuthenticationException,
    BadHostKeyException,
    ChannelException,
    SFTPClient,
    SSHException,
    Transport,
)
from pyinfra.api.command import StringCommand
from pyinfra.api.config import Config
from pyinfra.api.exceptions import ConnectError
from pyinfra.api.host import Host
from pyinfra.api.inventory import Inventory
from pyinfra.api.state import State
from pyinfra.connectors.sshuserclient import client as pyinfra_ssh_client
from pyinfra.facts.server import Which

from onestack.core.activity import doing
from onestack.core.digest import digest
from onestack.core.host import HostConnection
from onestack.drivers.host import LocalHost, chown_spec, holder_from_ss
from onestack.errors import (
    CommandError,
    HostAuthError,
    HostConnectionLostError,
    HostError,
    HostKeyChangedError,
    HostKeyUnknownError,
    HostPrerequisiteError,
    HostUnreachableError,
)

# onestack reports connection failures itself, as errors naming the host; pyinfra's
# own log lines ("Connected", host key warnings) would only repeat them.
logging.getLogger("pyinfra").addHandler(logging.NullHandler())
logging.getLogger("pyinfra").propagate = False


class _TunnelNoise(logging.Filter):
    """paramiko logs a refused or late-confirmed tunnel (``open_tunnel``) as an error
    on stderr; onestack reports a refusal itself (OSError), and a late confirmation
    is a channel it stopped waiting for."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not (text.startswith("Secsh channel") and "open FAILED" in text
                    or text.startswith("Success for unrequested channel"))


logging.getLogger("paramiko.transport").addFilter(_TunnelNoise())
_log = logging.getLogger(__name__)

TIMEOUT_EXIT = 124  # coreutils timeout(1): the command ran out of time
KILL_GRACE = 5  # seconds between timeout's TERM and its KILL
LOCAL = "local"
# Channels (commands, file transfers) open at once on a host's connection: below
# sshd's MaxSessions (10 unless its sshd_config says otherwise), leaving room for
# another onestack process on the same host.
MAX_CHANNELS = 8
REFUSED_CHANNEL_WAIT = 60.0  # seconds a channel sshd refuses is asked for again
T = TypeVar("T")


@dataclass(frozen=True)
class SshTarget:
    """How to reach one host: the fields a site file gives for it."""

    name: str
    address: str
    key_file: Path
    known_hosts: Path
    port: int = 22
    user: str = "root"
    connect_timeout: int = 10
    # A site's first contact may record keys it has never seen ("accept-new");
    # a key that differs from a recorded one is refused either way.
    accept_new_host_keys: bool = False

    def pyinfra_data(self) -> dict[str, Any]:
        """The pyinfra host data of this target (SSH connector settings)."""
        return {
            "ssh_hostname": self.address,
            "ssh_port": self.port,
            "ssh_user": self.user,
            "ssh_key": str(self.key_file),
            "ssh_known_hosts_file": str(self.known_hosts),
            "ssh_strict_host_key_checking": "accept-new" if self.accept_new_host_keys else "yes",
            # Only what the site says counts, not this machine's ~/.ssh/config.
            "ssh_config_file": os.devnull,
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
        }


def shell_command(argv: Sequence[str], *, cwd: Path | None = None, with_env: bool = False,
                  timeout: float | None = None, env_bytes: int | None = None) -> str:
    """The remote shell command for an argv: every word quoted, nothing interpolated.

    With ``with_env`` the command first reads ``export`` lines from its standard
    input (:func:`env_script`), so values never appear in a process list: all of it,
    or with ``env_bytes`` only that many bytes, leaving the rest for the command."""
    command = shlex.join(argv)
    if with_env:
        reader = "cat" if env_bytes is None else f"head -c {int(env_bytes)}"
        command = f"eval \"$({reader})\" && exec " + command
        command = shlex.join(["sh", "-c", command])
    if timeout is not None:
        command = f"timeout -k {KILL_GRACE} {_seconds(timeout)} {command}"
    if cwd is not None:
        command = f"cd {shlex.quote(str(cwd))} && {command}"
    return command


def env_script(env: Mapping[str, str]) -> str:
    """``export NAME='value'`` lines, quoted, for a command's standard input."""
    for name in env:
        if not name.isidentifier():
            raise ValueError(f"not an environment variable name: {name!r}")
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def _seconds(timeout: float) -> str:
    return str(max(1, int(timeout + 0.999)))


class SshHost:
    """A remote machine, through pyinfra's SSH connector. Connects on first use."""

    def __init__(self, target: SshTarget) -> None:
        self.name = target.name
        self.target = target
        self._host: Host | None = None
        self._connecting = threading.Lock()  # one thread opens the session
        # Guards swapping self._host, never held during I/O: a thread that lost the
        # session forgets it while holding a channel another thread's connect awaits.
        self._swap = threading.Lock()
        self._channels = threading.BoundedSemaphore(MAX_CHANNELS)

    # --- connection ------------------------------------------------------------

    def connect(self) -> None:
        """Open the SSH session and check the host can run onestack (python3, root)."""
        self._session()

    def _session(self) -> Host:
        """The open session; the first thread to need one opens it, others wait."""
        host = self._host
        if host is not None and host.connected:
            return host
        with doing(f"the SSH connection to {self.name} ({self.target.address}:"
                   f"{self.target.port})"), self._connecting:
            host = self._host
            if host is None or not host.connected:
                host = self._open_session()
                with self._swap:
                    self._host = host
            return host

    def _open_session(self) -> Host:
        self._check_files()
        inventory = Inventory(  # type: ignore[no-untyped-call]  # pyinfra's untyped API
            ([(self.name, self.target.pyinfra_data())], {}))
        config = Config(CONNECT_TIMEOUT=self.target.connect_timeout)  # type: ignore[no-untyped-call]
        self._state = State(inventory, config)
        host = inventory.get_host(self.name)
        _forget_changed_known_hosts(self.target.known_hosts)
        try:
            host.connect(show_errors=False, raise_exceptions=True)
        except ConnectError as exc:
            raise self._connect_error(exc) from None
        _rekey_as_openssh(_transport(host))
        try:
            self._check_host(host)
        except BaseException:
            _disconnect(host)
            raise
        return host

    def open_tunnel(self, address: str, port: int, timeout: float) -> Any:
        """A TCP connection from this host to ``address:port`` (SSH's direct-tcpip
        channel): a socket-like channel for what is reached only from there, such as
        floating IPs behind a remote network host's bridge. OSError if refused."""
        host = self._session()
        transport = _transport(host)
        if transport is None or not transport.is_active():
            raise OSError(f"{self.name}: no SSH session to open a tunnel in")
        try:
            channel = transport.open_channel("direct-tcpip", (address, port),
                                             ("127.0.0.1", 0), timeout=timeout)
        except Exception as exc:  # paramiko's ChannelException, SSHException, EOFError
            raise OSError(f"through {self.name}: {type(exc).__name__}: {exc}") from None
        channel.settimeout(timeout)
        return channel

    def _check_files(self) -> None:
        """The key and known_hosts files are onestack's own: missing, they are a
        setup problem of this host entry, not a pyinfra error."""
        for what, path in (("private key", self.target.key_file),
                           ("known_hosts file", self.target.known_hosts)):
            if not path.is_file():
                raise HostPrerequisiteError(self.name, f"no {what} {path} (set it in the "
                                                       f"site file, or create the site's)")

    def close(self) -> None:
        with self._swap:
            host, self._host = self._host, None
        if host is not None:
            _disconnect(host)

    def _check_host(self, host: Host) -> None:
        if self._fact_which("python3", host) is None:
            raise HostPrerequisiteError(self.name, "python3 not found: onestack needs "
                                                   "Python 3.11 on every host")
        code, out = self._shell(shell_command(["id", "-u"]), host=host)
        uid = out.strip()
        if code != 0 or uid != "0":
            raise HostPrerequisiteError(self.name, f"user {self.target.user} is not root "
                                                   f"(uid {uid}): onestack acts as root")

    def _connect_error(self, exc: ConnectError) -> HostError:
        cause, t = exc.__context__, self.target
        if isinstance(cause, BadHostKeyException) or "does not match" in str(exc):
            return HostKeyChangedError(self.name, t.address, str(t.known_hosts))
        if isinstance(cause, AuthenticationException):
            return HostAuthError(self.name, t.user, str(t.key_file))
        if "No host key" in str(exc):
            return HostKeyUnknownError(self.name, t.address, str(t.known_hosts))
        return HostUnreachableError(self.name, f"{t.address}:{t.port}", _reason(exc))

    def _lost(self, exc: BaseException, host: Host) -> HostConnectionLostError:
        """The session broke mid-command (host powered off, network gone): the next
        call reconnects. Only this session is forgotten, not one another thread has
        opened since; its connection is closed once it is dead anyway, so the
        commands of other threads still running on a live one are left alone."""
        with self._swap:
            if self._host is host:
                self._host = None
        transport = _transport(host)
        if transport is None or not transport.is_active():
            _disconnect(host)
        return HostConnectionLostError(self.name,
                                       f"{self.target.address}:{self.target.port}",
                                       f"connection lost ({type(exc).__name__}: {exc})")

    # --- HostConnection --------------------------------------------------------

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 600, check: bool = True,
            input: str | None = None) -> str:
        """Run a command there; return its combined output; CommandError on failure.

        ``env`` and ``input`` travel on its standard input (the environment first),
        never on a command line."""
        script = env_script(env) if env else ""
        command = shell_command(argv, cwd=cwd, with_env=bool(env), timeout=timeout,
                                env_bytes=len(script.encode()) if input is not None else None)
        stdin = script + (input or "") if env or input is not None else None
        shown = shlex.join(argv)
        with doing(f"`{shown}` on {self.name}"):
            code, output = self._shell(command, stdin=stdin)
        if code == TIMEOUT_EXIT:
            raise CommandError(f"{shown} (on {self.name})", -1, f"timed out after {timeout}s\n"
                               + output)
        if check and code != 0:
            raise CommandError(f"{shown} (on {self.name})", code, output)
        return output

    def _shell(self, command: str, stdin: str | None = None, *,
               host: Host | None = None) -> tuple[int, str]:
        """Run a shell command there: (exit status, stdout and stderr in order).

        pyinfra reports success as a bool; the status itself comes back as the
        last line of stderr, after the command's own output went to stdout."""
        host = host if host is not None else self._session()
        kwargs: dict[str, Any] = {"_shell_executable": "sh"}
        if stdin is not None:
            kwargs["_stdin"] = stdin
        wrapped = f"{{ {command}\n}} 2>&1; echo {_EXIT_MARK}$? >&2"
        try:
            ok, out = self._on_channel(
                lambda: host.run_shell_command(StringCommand(wrapped), **kwargs))
        except (SSHException, EOFError, OSError) as exc:
            raise self._lost(exc, host) from None
        return _split_exit(ok, out.stdout_lines, out.stderr_lines)

    def write_file(self, path: Path, content: str, *, mode: int = 0o644,
                   owner: str | None = None) -> bool:
        """Write atomically there; return True if the content or mode changed."""
        current = self._shell(shell_command(["stat", "-c", "%a", str(path)])
                              + " 2>/dev/null && " + shell_command(["sha256sum", str(path)]))
        lines = current[1].split()
        if current[0] == 0 and len(lines) >= 2 and lines[0] == f"{mode:o}" \
                and lines[1] == digest(content):
            return False
        tmp = path.with_name(f".{path.name}.tmp")
        # Created 0600 before any byte arrives, so a secret is never readable by others.
        self.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && umask 077 && : > "$1"', "sh",
                  str(tmp)])
        self._put(tmp, content.encode())
        finish = [["chmod", f"{mode:o}", str(tmp)]]
        if owner:
            finish.append(["chown", chown_spec(owner), str(tmp)])
        finish += [["sync", str(tmp)], ["mv", "-f", str(tmp), str(path)]]
        self.run(["sh", "-c", " && ".join(shlex.join(step) for step in finish)])
        return True

    def put_file(self, source: Path, path: Path, *, mode: int = 0o600) -> None:
        """Copy a file of this machine there by SFTP (created 0600, then ``mode``)."""
        self.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && umask 077 && : > "$1"', "sh",
                  str(path)])
        self._put(path, source)
        self.run(["chmod", f"{mode:o}", str(path)])

    def _put(self, path: Path, data: bytes | Path) -> None:
        """Send bytes or a local file's content into an existing file there, on an
        SFTP channel of its own (opened ``wb``: the file keeps its 0600 mode)."""
        host = self._session()

        def upload() -> None:
            with self._sftp(host) as sftp:
                try:
                    with io.BytesIO(data) if isinstance(data, bytes) else data.open("rb") as src:
                        sftp.putfo(src, str(path))  # checks the size that arrived
                except (SSHException, EOFError, OSError) as exc:
                    raise self._transfer_failed(exc, host, path) from None

        with doing(f"sending {path} to {self.name}"):
            self._on_channel(upload)

    @contextmanager
    def _sftp(self, host: Host) -> Iterator[SFTPClient]:
        """A new SFTP channel on the session's connection, closed after use."""
        transport = _transport(host)
        if transport is None or not transport.is_active():
            raise self._lost(EOFError("the SSH connection is closed"), host)
        try:
            channel = transport.open_session()
        except ChannelException:
            raise  # refused: asked for again
        except (SSHException, EOFError, OSError) as exc:
            raise self._lost(exc, host) from None
        try:
            channel.invoke_subsystem("sftp")
            sftp = SFTPClient(channel)
        except (SSHException, EOFError, OSError) as exc:
            _quietly_close(channel)
            if not transport.is_active():
                raise self._lost(exc, host) from None
            raise HostPrerequisiteError(self.name, f"file transfer failed: no SFTP subsystem "
                                                   f"({type(exc).__name__}: {exc})") from None
        try:
            yield sftp
        finally:
            _quietly_close(sftp)

    def _on_channel(self, action: Callable[[], T]) -> T:
        """Run what needs one channel of the connection once a channel is free, and
        again while sshd refuses to open it (ChannelException: nothing ran)."""
        deadline, pause = time.monotonic() + REFUSED_CHANNEL_WAIT, 0.05
        with doing(f"a free SSH channel to {self.name} (at most {MAX_CHANNELS} at once)"):
            self._channels.acquire()
        try:
            while True:
                try:
                    return action()
                except ChannelException as exc:
                    if time.monotonic() >= deadline:
                        raise HostPrerequisiteError(self.name, (
                            f"sshd refused a channel for {REFUSED_CHANNEL_WAIT:.0f}s ({exc}): "
                            f"onestack opens up to {MAX_CHANNELS} at once, is its "
                            f"MaxSessions lower?")) from None
                    _log.debug("%s: sshd refused a channel (%s), asking again", self.name, exc)
                time.sleep(pause)
                pause = min(2 * pause, 1.0)
        finally:
            self._channels.release()

    def _transfer_failed(self, exc: BaseException, host: Host,
                         path: Path) -> HostError | CommandError:
        """An error the SFTP server reported (disk full, permission) while the
        connection stands is the transfer's own; anything else lost the host."""
        transport = _transport(host)
        if isinstance(exc, OSError) and transport is not None and transport.is_active():
            return CommandError(f"put {path} (on {self.name})", 1,
                                f"file transfer failed: {exc}")
        return self._lost(exc, host)

    def file_digest(self, path: Path) -> str | None:
        code, out = self._shell(shell_command(["sha256sum", str(path)]) + " 2>/dev/null")
        word = out.split()[0] if out.split() else ""
        return word if code == 0 and len(word) == 64 else None

    def file_mode(self, path: Path) -> int | None:
        code, out = self._shell(shell_command(["stat", "-c", "%a", str(path)]) + " 2>/dev/null")
        word = out.strip()
        return int(word, 8) if code == 0 and word.isdigit() else None

    def file_owner(self, path: Path) -> str | None:
        code, out = self._shell(shell_command(["stat", "-c", "%U:%G", str(path)])
                                + " 2>/dev/null")
        word = out.strip()
        return word if code == 0 and ":" in word else None

    def is_dir(self, path: Path) -> bool:
        return self._shell(shell_command(["test", "-d", str(path)]))[0] == 0

    def read_file(self, path: Path) -> str | None:
        """Its exact content: base64 on the wire, as output comes back line by line."""
        code, out = self._shell(shell_command(["test", "-f", str(path)]) + " && "
                                + shell_command(["base64", "-w0", str(path)]))
        if code != 0:
            return None
        return base64.b64decode("".join(out.split())).decode()

    def ensure_dir(self, path: Path, *, mode: int = 0o755, owner: str | None = None) -> None:
        steps = [["mkdir", "-p", str(path)], ["chmod", f"{mode:o}", str(path)]]
        if owner:
            steps.append(["chown", chown_spec(owner), str(path)])
        self.run(["sh", "-c", " && ".join(shlex.join(step) for step in steps)])

    def port_holder(self, port: int) -> str | None:
        """Who holds a TCP port there (a listener or a process's connection), or None."""
        return holder_from_ss(self.run(["ss", "-Htanp", f"sport = :{port}"], check=False))

    def list_dir(self, path: Path, pattern: str = "*") -> list[str]:
        """Names in a directory there matching a glob, sorted; none if it does not exist."""
        out = self.run(["python3", "-c", _LIST_DIR, str(path), pattern])
        return sorted(line for line in out.splitlines() if line)

    def remove(self, path: Path) -> bool:
        """Remove a file or directory tree there; False if it was not there."""
        code, _ = self._shell(shell_command(["test", "-e", str(path)]) + " || "
                              + shell_command(["test", "-L", str(path)]))
        if code != 0:
            return False
        self.run(["rm", "-rf", "--", str(path)])
        return True

    def which(self, program: str) -> str | None:
        return self._fact_which(program)

    def _fact_which(self, program: str, host: Host | None = None) -> str | None:
        host = host if host is not None else self._session()
        try:
            found = self._on_channel(lambda: host.get_fact(Which, command=program))
        except (SSHException, EOFError, OSError) as exc:
            raise self._lost(exc, host) from None
        return str(found) if found else None


# Python's own glob, so a pattern means there what it means to LocalHost.list_dir.
_LIST_DIR = ("import sys, pathlib; p = pathlib.Path(sys.argv[1]); "
             "[print(c.name) for c in p.glob(sys.argv[2])] if p.is_dir() else None")


_EXIT_MARK = "__onestack_exit="
_known_hosts_lock = threading.Lock()
_known_hosts_seen: dict[str, tuple[int, int, int] | None] = {}


def _forget_changed_known_hosts(path: Path) -> None:
    """pyinfra caches each known_hosts file for the life of the process; onestack
    must see the file as it is now (a key removed or changed since). The cache is
    cleared only when the file changed, so threads connecting to the hosts of one
    site at once never race a clear."""
    try:
        st = path.stat()
        seen: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
    except FileNotFoundError:
        seen = None
    with _known_hosts_lock:
        if str(path) in _known_hosts_seen and _known_hosts_seen[str(path)] == seen:
            return
        _known_hosts_seen[str(path)] = seen
        getattr(pyinfra_ssh_client.get_host_keys, "cache", {}).clear()


def _transport(host: Host) -> Transport | None:
    """The paramiko transport under pyinfra's SSH connector (its ``client``)."""
    client = getattr(host.connector, "client", None)
    transport = client.get_transport() if client is not None else None
    return transport if isinstance(transport, Transport) else None


# paramiko renews the session's keys every 512 MiB; every other channel of the
# connection then waits for the exchange, at most 30 s. A release (528 MiB) sent while
# the host's other steps ran broke the connection so ("Key-exchange timed out waiting
# for key negotiation"). OpenSSH renews after 1 to 4 GiB depending on the cipher.
REKEY_BYTES = 4 * 2**30
KEX_WAIT = 120.0  # seconds a channel waits for a key exchange (either side's)


def _rekey_as_openssh(transport: Transport | None) -> None:
    if transport is None:
        return
    transport.packetizer.REKEY_BYTES = REKEY_BYTES
    transport.clear_to_send_timeout = KEX_WAIT


def _quietly_close(closable: Any) -> None:
    """Close an SFTP client or channel whose connection may be gone already: what the
    transfer raised is the error, not the close's EOFError."""
    try:
        closable.close()
    except (SSHException, EOFError, OSError) as exc:
        _log.debug("closing %r: %s", closable, exc)


def _disconnect(host: Host) -> None:
    """Close a session's connection: pyinfra's disconnect leaves the socket open."""
    if host.connected:
        host.disconnect()
    client = getattr(host.connector, "client", None)
    if client is not None:
        client.close()


def _split_exit(ok: bool, stdout: list[str], stderr: list[str]) -> tuple[int, str]:
    """The exit status from the marker line; the output without it."""
    code = 0 if ok else 255  # no marker: the shell itself was killed (host gone)
    rest = list(stderr)
    for i in range(len(rest) - 1, -1, -1):
        if rest[i].startswith(_EXIT_MARK):
            code = int(rest.pop(i).removeprefix(_EXIT_MARK) or 255)
            break
    return code, "".join(line + "\n" for line in stdout + rest)


def _reason(exc: ConnectError) -> str:
    cause = exc.__context__
    return str(cause) if cause is not None and str(cause) else str(exc)


def open_host(name: str, address: str, *, via: str = "ssh", port: int = 22,
              user: str = "root", key_file: Path | None = None,
              known_hosts: Path | None = None, connect_timeout: int = 10,
              accept_new_host_keys: bool = False) -> HostConnection:
    """The connection for one host of a site: LocalHost for ``local``, else SSH.

    ``via="local"`` (or the address ``local``) is the machine onestack runs on;
    anything else needs a key file and a known_hosts file."""
    if via == LOCAL or address == LOCAL:
        return LocalHost(name)
    if key_file is None or known_hosts is None:
        raise HostPrerequisiteError(name, "an SSH host needs a key file and a known_hosts file")
    return SshHost(SshTarget(name, address, key_file, known_hosts, port=port, user=user,
                             connect_timeout=connect_timeout,
                             accept_new_host_keys=accept_new_host_keys))
