"""The SSH host connection without a network: command quoting, secrets, error mapping."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from paramiko import AuthenticationException, BadHostKeyException
from pyinfra.api.exceptions import ConnectError
from pyinfra.connectors.util import CommandOutput, OutputLine

from onestack.drivers.host import LocalHost
from onestack.drivers.ssh_host import (
    MAX_CHANNELS,
    SshHost,
    SshTarget,
    _split_exit,
    env_script,
    open_host,
    shell_command,
)
from onestack.errors import (
    CommandError,
    HostAuthError,
    HostKeyChangedError,
    HostKeyUnknownError,
    HostPrerequisiteError,
    HostUnreachableError,
)

NASTY = ["printf", "%s\\n", "a b", "it's", "$HOME", "`id`", "x;rm -rf /", ""]


def _sh(command: str, stdin: str = "") -> str:
    return subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, text=True,
                          check=True).stdout


def test_shell_command_passes_every_word_unchanged() -> None:
    assert _sh(shell_command(NASTY)) == "".join(f"{w}\n" for w in NASTY[2:])


def test_environment_travels_on_stdin_not_on_the_command_line() -> None:
    env = {"DB_PASSWORD": "s3cr'et $x `y`", "OTHER": "two words"}
    command = shell_command(["sh", "-c", 'echo "$DB_PASSWORD|$OTHER"'], with_env=True)
    assert "s3cr" not in command and "two words" not in command
    assert _sh(command, env_script(env)) == "s3cr'et $x `y`|two words\n"


def test_env_names_must_be_identifiers() -> None:
    with pytest.raises(ValueError):
        env_script({"A=B; rm": "x"})


def test_cwd_and_timeout_wrap_the_command(tmp_path: Path) -> None:
    odd = tmp_path / "a dir"
    odd.mkdir()
    command = shell_command(["pwd"], cwd=odd, timeout=2.5)
    assert "timeout -k 5 3 " in command
    assert _sh(command) == f"{odd}\n"


def test_exit_status_comes_from_the_marker_line() -> None:
    assert _split_exit(False, ["out"], ["err", "__onestack_exit=7"]) == (7, "out\nerr\n")
    assert _split_exit(True, [], ["__onestack_exit=0"]) == (0, "")
    assert _split_exit(False, ["partial"], []) == (255, "partial\n")


def _target(**kw: Any) -> SshTarget:
    return SshTarget("lab1", "198.18.10.11", Path("/k/id"), Path("/k/known_hosts"), **kw)


def test_host_keys_are_checked_strictly_against_the_site_file() -> None:
    data = _target().pyinfra_data()
    assert data["ssh_strict_host_key_checking"] == "yes"
    assert data["ssh_known_hosts_file"] == "/k/known_hosts"
    assert data["ssh_key"] == "/k/id" and data["ssh_allow_agent"] is False
    assert _target(accept_new_host_keys=True).pyinfra_data()[
        "ssh_strict_host_key_checking"] == "accept-new"


def test_open_host_is_local_for_local_hosts() -> None:
    assert isinstance(open_host("aio", "local"), LocalHost)
    assert isinstance(open_host("aio", "127.0.0.1", via="local"), LocalHost)
    remote = open_host("c1", "198.18.0.12", key_file=Path("/k"), known_hosts=Path("/kh"))
    assert isinstance(remote, SshHost) and remote.name == "c1"
    with pytest.raises(HostPrerequisiteError, match="c2"):
        open_host("c2", "198.18.0.13")


def _connect_error(cause: BaseException | None, message: str) -> ConnectError:
    try:
        try:
            if cause is not None:
                raise cause
            raise ConnectError(message)
        except BaseException:
            raise ConnectError(message)  # noqa: B904  (pyinfra raises it in the handler)
    except ConnectError as exc:
        return exc


@pytest.mark.parametrize(("cause", "message", "kind"), [
    (BadHostKeyException("198.18.10.11", _key := None, None), "SSH host key error",  # type: ignore[arg-type]
     HostKeyChangedError),
    (AuthenticationException("no"), "Authentication error (username=root)", HostAuthError),
    (None, "SSH error (StrictPolicy: No host key for 198.18.10.11 found)", HostKeyUnknownError),
    (ConnectionRefusedError(111, "Connection refused"), "Could not connect", HostUnreachableError),
])
def test_connect_failures_become_errors_naming_the_host(cause: Any, message: str,
                                                        kind: type) -> None:
    error = SshHost(_target())._connect_error(_connect_error(cause, message))
    assert isinstance(error, kind)
    assert error.host == "lab1" and "lab1" in str(error)


class FakePyinfraHost:
    """Stands in for pyinfra's Host (and its SFTP channel): records commands and uploads."""

    connected = True
    connector: Any = None  # no paramiko client: the connection counts as gone

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.stdins: list[str] = []
        self.uploads: dict[str, bytes] = {}

    def disconnect(self) -> None:
        self.connected = False

    def run_shell_command(self, command: Any, **kwargs: Any) -> tuple[bool, CommandOutput]:
        text = command.get_raw_value()
        self.commands.append(text)
        self.stdins.append(kwargs.get("_stdin") or "")
        code = 1 if ("mv -f" in text or "nova-manage" in text) else 0
        return code == 0, CommandOutput([OutputLine("stderr", f"__onestack_exit={code}")])

    def putfo(self, fileobj: Any, remote: str) -> None:
        self.uploads[remote] = fileobj.read()

    @contextmanager
    def sftp(self, host: Any) -> Iterator[FakePyinfraHost]:
        yield self


def _fake_host() -> tuple[SshHost, FakePyinfraHost]:
    host, fake = SshHost(_target()), FakePyinfraHost()
    host._host = fake  # type: ignore[assignment]
    host._sftp = fake.sftp  # type: ignore[method-assign]
    return host, fake


def test_write_file_sends_content_by_file_transfer_only() -> None:
    host, fake = _fake_host()
    secret = "password = hunter2-sekrit\n"
    with pytest.raises(CommandError):  # the fake fails the final move
        host.write_file(Path("/etc/nova/nova.conf"), secret, mode=0o640, owner="nova")
    assert fake.uploads == {"/etc/nova/.nova.conf.tmp": secret.encode()}
    assert not any("hunter2" in c for c in fake.commands + fake.stdins)
    assert any("umask 077" in c for c in fake.commands)


def test_run_failures_name_the_host_and_the_command() -> None:
    host, fake = _fake_host()
    with pytest.raises(CommandError, match=r"nova-manage 'db sync' \(on lab1\)"):
        host.run(["nova-manage", "db sync"], env={"OS_PASSWORD": "sekrit"})
    assert "sekrit" not in fake.commands[0]
    assert fake.stdins[0] == "export OS_PASSWORD=sekrit\n"
    assert "exec nova-manage" in fake.commands[0]


def test_pyinfra_forgets_a_known_hosts_file_only_when_it_changed(tmp_path: Path) -> None:
    from pyinfra.connectors.sshuserclient import client

    from onestack.drivers.ssh_host import _forget_changed_known_hosts

    known = tmp_path / "known_hosts"
    known.write_text("198.18.10.11 ssh-ed25519 AAAA\n")
    _forget_changed_known_hosts(known)
    client.get_host_keys.cache["sentinel"] = object()  # type: ignore[attr-defined]
    _forget_changed_known_hosts(known)
    assert "sentinel" in client.get_host_keys.cache  # type: ignore[attr-defined]
    known.write_text("198.18.10.11 ssh-ed25519 BBBB\n")
    _forget_changed_known_hosts(known)
    assert "sentinel" not in client.get_host_keys.cache  # type: ignore[attr-defined]


class ScriptedPyinfraHost(FakePyinfraHost):
    """Answers each command with canned stdout lines and an exit status."""

    def __init__(self, answers: dict[str, tuple[int, list[str]]]) -> None:
        super().__init__()
        self.answers = answers

    def run_shell_command(self, command: Any, **kwargs: Any) -> tuple[bool, CommandOutput]:
        text = command.get_raw_value()
        self.commands.append(text)
        code, lines = next((a for key, a in self.answers.items() if key in text), (1, []))
        return code == 0, CommandOutput([*(OutputLine("stdout", line) for line in lines),
                                         OutputLine("stderr", f"__onestack_exit={code}")])


def _scripted(answers: dict[str, tuple[int, list[str]]]) -> SshHost:
    host = SshHost(_target())
    host._host = ScriptedPyinfraHost(answers)  # type: ignore[assignment]
    return host


def test_file_mode_and_is_dir_over_ssh() -> None:
    host = _scripted({"stat -c %a /etc/nova/nova.conf": (0, ["640"]), "test -d /etc": (0, [])})
    assert host.file_mode(Path("/etc/nova/nova.conf")) == 0o640
    assert host.file_mode(Path("/missing")) is None
    assert host.is_dir(Path("/etc")) and not host.is_dir(Path("/missing"))


def test_read_file_keeps_the_exact_content() -> None:
    import base64

    text = "no newline at the end\n\n  indented"
    encoded = base64.b64encode(text.encode()).decode()
    host = _scripted({"base64 -w0 /etc/x": (0, [encoded[:10], encoded[10:]])})
    assert host.read_file(Path("/etc/x")) == text
    assert host.read_file(Path("/etc/missing")) is None


def test_local_host_file_facts(tmp_path: Path) -> None:
    local = LocalHost("aio")
    path = tmp_path / "f"
    assert local.file_mode(path) is None and local.read_file(path) is None
    local.write_file(path, "a\nb", mode=0o600)
    assert local.file_mode(path) == 0o600 and local.read_file(path) == "a\nb"
    assert local.is_dir(tmp_path) and not local.is_dir(path)
    assert local.read_file(tmp_path) is None


class SlowPyinfraHost(FakePyinfraHost):
    """Each command takes a moment; counts how many run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.lock, self.running, self.most = threading.Lock(), 0, 0

    def run_shell_command(self, command: Any, **kwargs: Any) -> tuple[bool, CommandOutput]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return super().run_shell_command(command, **kwargs)


def _at_once(count: int, job: Any) -> None:
    threads = [threading.Thread(target=job) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads)


def test_channels_open_at_once_stay_below_sshds_max_sessions() -> None:
    host, fake = SshHost(_target()), SlowPyinfraHost()
    host._host = fake  # type: ignore[assignment]
    _at_once(3 * MAX_CHANNELS, lambda: host.run(["true"]))
    assert len(fake.commands) == 3 * MAX_CHANNELS
    assert fake.most == MAX_CHANNELS < 10


def test_threads_asking_at_once_open_one_session(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[FakePyinfraHost] = []

    def open_session(self: SshHost) -> FakePyinfraHost:
        time.sleep(0.1)  # every thread asks while the first still connects
        opened.append(FakePyinfraHost())
        return opened[-1]

    monkeypatch.setattr(SshHost, "_open_session", open_session)
    host = SshHost(_target())
    _at_once(10, lambda: host.run(["true"]))
    assert len(opened) == 1 and len(opened[0].commands) == 10


def test_a_lost_session_is_forgotten_and_the_next_call_reconnects() -> None:
    host, fake = _fake_host()

    def broken(command: Any, **kwargs: Any) -> Any:
        raise EOFError()

    fake.run_shell_command = broken  # type: ignore[method-assign]
    with pytest.raises(HostUnreachableError, match="connection lost"):
        host.run(["true"])
    assert host._host is None and not fake.connected


def test_a_channel_sshd_refuses_is_asked_for_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from paramiko import ChannelException

    monkeypatch.setattr(time, "sleep", lambda _s: None)
    host, fake = _fake_host()
    answer, refusals = fake.run_shell_command, [ChannelException(2, "Connect failed")] * 3

    def refuse_first(command: Any, **kwargs: Any) -> tuple[bool, CommandOutput]:
        if refusals:
            raise refusals.pop()
        return answer(command, **kwargs)

    fake.run_shell_command = refuse_first  # type: ignore[method-assign]
    assert host.run(["true"]) == "" and len(fake.commands) == 1


def test_a_transfer_the_server_refuses_is_not_a_lost_host(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from onestack.drivers import ssh_host

    class LiveTransport:
        def is_active(self) -> bool:
            return True

    host, fake = _fake_host()

    def disk_full(fileobj: Any, remote: str) -> None:
        raise OSError("Failure")

    fake.putfo = disk_full  # type: ignore[method-assign]
    monkeypatch.setattr(ssh_host, "_transport", lambda _host: LiveTransport())
    with pytest.raises(CommandError, match=r"put /etc/x.conf \(on lab1\)"):
        host.put_file(Path("/dev/null"), Path("/etc/x.conf"))
    assert host._host is fake  # the session stays
