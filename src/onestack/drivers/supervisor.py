"""The process supervisor (supervisord): starts, restarts and reports services.

See docs/adr/0001-process-supervisor.md for why supervisord. onestack runs its own
supervisord per site (own socket, own config), started from onestack's tool
environment; every long-running service of the site is a program in it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from onestack.core.host import HostConnection
from onestack.drivers.processes import MARKER_VARIABLE
from onestack.errors import CommandError, ServiceStartError


@dataclass(frozen=True)
class Program:
    """A long-running process of a service, as the supervisor runs it."""

    name: str
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    directory: str | None = None
    stopsignal: str = "TERM"
    stopwaitsecs: int = 30
    startsecs: int = 2
    # False only for a daemon whose children must outlive it (libvirtd's guests, ADR
    # 0016): it runs without the PID namespace of TREE_WRAPPER, under PARENT_WRAPPER.
    owns_tree: bool = True
    # A root program whose files and sockets one other service's user may use: run
    # with that group (no other) and this umask (e.g. 0o007: sockets rw for the group).
    group: str | None = None
    umask: int | None = None


def _quote(arg: str) -> str:
    """One command argument for supervisord: %-escaped, and double-quoted when needed."""
    arg = arg.replace("%", "%%")
    if arg and not any(c in arg for c in " \t\"'\\;#"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _env_value(value: str) -> str:
    """An environment value for supervisord, which splits ``K="v",...`` with a
    non-POSIX shlex: no escapes, so the quote character must not occur inside."""
    value = value.replace("%", "%%")
    if value[:1] in "'\"" and value or value[-1:] in ("'", '"'):
        raise ValueError("supervisord strips quotes at either end of an environment value")
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise ValueError("an environment value cannot hold both kinds of quote for supervisord")


# What every program runs under (ADR 0010): the supervised process is ``unshare``,
# which dies with supervisord (parent-death signal) and takes its child with it
# (``--kill-child``); its child ``tini`` is PID 1 of a PID namespace of the program's
# own, so when the program's main process exits for any reason ``tini`` exits and the
# kernel kills every process left in the namespace. No orphan can hold a port.
TREE_WRAPPER = ("/usr/bin/setpriv", "--pdeathsig", "KILL", "--",
                "/usr/bin/unshare", "--pid", "--fork", "--kill-child", "--",
                "/usr/bin/tini", "-g", "--")
# A program that does not own its tree (``Program.owns_tree``) still dies with
# supervisord; what it started on purpose as a daemon (a guest's QEMU) does not.
PARENT_WRAPPER = ("/usr/bin/setpriv", "--pdeathsig", "KILL", "--")
# The Debian packages the wrapper needs on every host that runs programs.
WRAPPER_PACKAGES = ("util-linux", "tini")
# supervisord creates and rotates the programs' logs itself, with its own umask: they
# are root's alone (0600), like its own log. A program keeps the umask it always had
# (its own ``umask``, else 022): its files' modes do not change with supervisord's.
SUPERVISORD_UMASK = 0o077
PROGRAM_UMASK = 0o022
# The site's log folder: root's, not listed or entered by other users (a service user's
# own log folder lives under its data folder instead).
LOG_FOLDER_MODE = 0o750


def supervised_command(program: Program) -> list[str]:
    """The full command supervisord runs: the tree wrapper, then the program as its
    user (switched inside the namespace: creating one needs root)."""
    as_user = (["/usr/bin/setpriv", f"--reuid={program.user}", f"--regid={program.user}",
                "--init-groups", "--"] if program.user else
               ["/usr/bin/setpriv", f"--regid={program.group}", "--clear-groups", "--"]
               if program.group else [])
    wrapper = TREE_WRAPPER if program.owns_tree else PARENT_WRAPPER
    return [*wrapper, *as_user, *program.command]


def program_marker(log_dir: Path, name: str) -> str:
    """What identifies a program's processes on a host: every one of them carries it in
    ``ONESTACK_PROGRAM``. A site's log directory is its own, so this is unique."""
    return f"{log_dir}/{name}"


# A program's user gets its groups when the program starts (``--init-groups``, or the
# daemon's own initgroups). The groups programs rely on are named in every definition,
# so that when a user gains one (the site's folder, memcached's socket, the switch's
# database: ADR 0021) every definition changes and ``up`` restarts each program into
# its groups. Name a new group here when a program's user joins it.
GROUPS_NOTE = ("; its user's groups are read at start: onestack (the site's folder), "
               "memcache, openvswitch (ADR 0021)")


def render_program(program: Program, log_dir: Path) -> str:
    """The supervisord ``[program:x]`` section of one program."""
    marked = {**program.environment, MARKER_VARIABLE: program_marker(log_dir, program.name)}
    env = ",".join(f"{k}={_env_value(v)}" for k, v in sorted(marked.items()))
    lines = [
        f"[program:{program.name}]",
        GROUPS_NOTE,
        "command=" + " ".join(_quote(a) for a in supervised_command(program)),
        "autostart=false",
        "autorestart=true",
        f"startsecs={program.startsecs}",
        "startretries=5",
        f"stopsignal={program.stopsignal}",
        f"stopwaitsecs={program.stopwaitsecs}",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={log_dir / (program.name + '.log')}",
        "stdout_logfile_maxbytes=20MB",
        "stdout_logfile_backups=2",
        f"umask={PROGRAM_UMASK if program.umask is None else program.umask:03o}",
        f"environment={env}",
        f"directory={program.directory or _start_folder(program, log_dir)}",
    ]
    return "\n".join(lines) + "\n"


def _start_folder(program: Program, log_dir: Path) -> str:
    """Where a program starts: never wherever onestack was started. The site's log
    folder for root's programs; ``/`` for a service user's, which cannot enter it."""
    return "/" if program.user else str(log_dir)


def render_supervisord_conf(run_dir: Path, log_dir: Path, programs_dir: Path) -> str:
    """The supervisord main configuration of a site."""
    return f"""[unix_http_server]
file={run_dir / 'supervisor.sock'}
chmod=0700

[supervisord]
logfile={log_dir / 'supervisord.log'}
pidfile={run_dir / 'supervisord.pid'}
childlogdir={log_dir}
minfds=4096
umask={SUPERVISORD_UMASK:03o}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{run_dir / 'supervisor.sock'}

[include]
files = {programs_dir}/*.conf
"""


_ACTIVE = ("RUNNING", "STARTING", "STOPPING", "BACKOFF")


class SiteSupervisor:
    """A site's supervisord on one host, however it is reached (ADR 0012).

    Every request is one XML-RPC call (:meth:`_call`): the subclasses only say how a
    call reaches supervisord's unix socket and how supervisord is started, so what
    an action asks of it means the same on every host. Faults come back as
    ``xmlrpc.client.Fault``; an unreachable socket as ``OSError``."""

    def __init__(self, conf: Path, socket_path: Path) -> None:
        self.conf = conf
        self.socket_path = socket_path

    def _call(self, method: str, *args: Any) -> Any:
        raise NotImplementedError

    def _launch(self) -> None:
        """Start supervisord (it daemonizes itself)."""
        raise NotImplementedError

    def is_running(self) -> bool:
        try:
            return bool(self._call("getState")["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            return False

    def start_daemon(self) -> None:
        """Start supervisord (daemonized) if it is not running (once, when services
        deployed side by side ask at the same time)."""
        with _LAUNCH_LOCK:
            self._start_daemon()

    def _start_daemon(self) -> None:
        if self.is_running():
            return
        self._launch()
        for _ in range(100):
            if self.is_running():
                return
            time.sleep(0.1)
        raise ServiceStartError("supervisord", "did not answer on its socket within 10 s")

    def update(self, only: tuple[str, ...] = ()) -> list[str]:
        """Apply changed program definitions (like ``supervisorctl update``).

        With ``only``, just those programs: a definition file of another service
        may be half-way through a change (an interrupted upgrade wrote it), and
        loading it here would stop that service's process behind its plan's back.
        """
        added, changed, removed = self._call("reloadConfig")[0]
        if only:
            added, changed, removed = ([n for n in names if n in only]
                                       for names in (added, changed, removed))
        self.stop_many(changed + removed)  # together: each may take its graceful timeout
        for name in changed + removed:
            self._call("removeProcessGroup", name)
        for name in changed + added:
            self._call("addProcessGroup", name)
        return sorted(added + changed + removed)

    def _stop_quietly(self, name: str) -> None:
        try:
            self._call("stopProcess", name, True)
        except xmlrpc.client.Fault:
            pass

    def states(self) -> dict[str, dict[str, Any]]:
        """Program name -> supervisord process info (statename, pid, uptime...)."""
        if not self.is_running():
            return {}
        return {info["name"]: info for info in self._call("getAllProcessInfo")}

    def state(self, name: str) -> str:
        return str(self.states().get(name, {}).get("statename", "ABSENT"))

    def loaded_command(self, name: str) -> str | None:
        """The command supervisord has read for a program at its last reread.

        A program's running process changes to it only when an ``update`` naming
        the program (or naming none) applies it.
        """
        if not self.is_running():
            return None
        for info in self._call("getAllConfigInfo"):
            if info["name"] == name:
                return str(info["command"])
        return None

    def start(self, name: str) -> None:
        """Start a program; raise ServiceStartError with its log tail if it fails."""
        try:
            self._call("startProcess", name, True)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" in fault.faultString:
                return
            raise ServiceStartError(name, fault.faultString, self.log_tail(name)) from None

    def stop(self, name: str) -> None:
        self._stop_quietly(name)

    def restart(self, name: str) -> None:
        self._stop_quietly(name)
        self.start(name)

    def signal(self, name: str, signal: str) -> None:
        self._call("signalProcess", name, signal)

    def unexpected_exits(self, since: float) -> dict[str, int]:
        """Program -> how often it exited unexpectedly (crashed) since this time,
        from supervisord's own log."""
        try:
            text = str(self._call("readLog", -200_000, 0))
        except (OSError, xmlrpc.client.Fault):
            return {}
        return count_unexpected_exits(text, since)

    def log_tail(self, name: str, lines: int = 20) -> list[str]:
        """The program's last log lines, after the errors that caused them (the tail of
        a crash is often a second traceback that hides the first)."""
        try:
            text = self._call("tailProcessStdoutLog", name, 0, 64_000)[0]
        except (OSError, xmlrpc.client.Fault):
            return []
        return failure_excerpt(str(text), lines)

    def log_text(self, name: str, max_bytes: int = 256_000) -> str:
        """The end of a program's log (at most ``max_bytes``), as it is."""
        try:
            return str(self._call("tailProcessStdoutLog", name, 0, max_bytes)[0])
        except (OSError, xmlrpc.client.Fault):
            return ""

    def stop_many(self, names: list[str], timeout: float = 60) -> None:
        """Stop several programs at once and wait until none is running."""
        for name in names:
            try:
                self._call("stopProcess", name, False)
            except xmlrpc.client.Fault:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.states()
            if all(states.get(n, {}).get("statename") not in _ACTIVE for n in names):
                return
            time.sleep(0.2)

    def stop_all(self) -> None:
        if self.is_running():
            self._call("stopAllProcesses", True)

    def shutdown(self) -> None:
        """Stop every program and supervisord itself; wait for it to exit."""
        if not self.is_running():
            return
        self.stop_all()
        self._call("shutdown")
        for _ in range(200):
            if not self.is_running():
                return
            time.sleep(0.1)


_LAUNCH_LOCK = threading.Lock()


class Supervisor(SiteSupervisor):
    """The site's supervisord on this machine: XML-RPC straight to its unix socket,
    started from onestack's tool environment."""

    def _call(self, method: str, *args: Any) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.socket_path}")
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        return getattr(proxy.supervisor, method)(*args)

    def is_running(self) -> bool:
        return self.socket_path.exists() and super().is_running()

    def _launch(self) -> None:
        exe = Path(sys.executable).parent / "supervisord"
        binary = str(exe) if exe.exists() else (shutil.which("supervisord") or "supervisord")
        # Its own log is created before it reads its umask: start it with that umask.
        proc = subprocess.run([binary, "-c", str(self.conf)], capture_output=True, text=True,
                              umask=SUPERVISORD_UMASK)
        if proc.returncode != 0:
            raise CommandError(f"{binary} -c {self.conf}", proc.returncode,
                               proc.stdout + proc.stderr)


# Debian's supervisord: what a host other than onestack's own runs (ADR 0012).
SUPERVISOR_PACKAGE = "supervisor"
HOST_SUPERVISORD = "/usr/bin/supervisord"
RPC_MARK = "__onestack_rpc="

# Run on the host by its own python3 (standard library only): one XML-RPC call to
# the site's supervisord socket there, the request on stdin, the answer as one
# marked JSON line (other output, e.g. warnings on stderr, is ignored).
RPC_SCRIPT = r"""
import http.client, json, socket, sys, xmlrpc.client
req = json.load(sys.stdin)
class UnixTransport(xmlrpc.client.Transport):
    def make_connection(self, host):
        conn = http.client.HTTPConnection("localhost")
        def connect():
            conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.sock.connect(req["socket"])
        conn.connect = connect
        return conn
proxy = xmlrpc.client.ServerProxy("http://localhost", transport=UnixTransport())
try:
    out = {"result": getattr(proxy.supervisor, req["method"])(*req["args"])}
except xmlrpc.client.Fault as f:
    out = {"fault": [f.faultCode, f.faultString]}
except (OSError, xmlrpc.client.ProtocolError) as e:
    out = {"error": type(e).__name__ + ": " + str(e)}
print("__onestack_rpc=" + json.dumps(out))
"""


class HostSupervisor(SiteSupervisor):
    """The site's supervisord on a host reached through its connection (SSH): each
    call runs :data:`RPC_SCRIPT` there; supervisord is Debian's (``supervisor``)."""

    def __init__(self, host: HostConnection, conf: Path, socket_path: Path,
                 supervisord: str = HOST_SUPERVISORD) -> None:
        super().__init__(conf, socket_path)
        self.host = host
        self.supervisord = supervisord

    def _call(self, method: str, *args: Any) -> Any:
        request = json.dumps({"socket": str(self.socket_path), "method": method,
                              "args": list(args)})
        out = self.host.run(["python3", "-c", RPC_SCRIPT], input=request, timeout=300)
        return rpc_answer(out, f"{method} (on {self.host.name})")

    def _launch(self) -> None:
        # Its own log is created before it reads its umask: start it with that umask.
        self.host.run(["sh", "-c", f'umask {SUPERVISORD_UMASK:03o} && exec "$0" -c "$1"',
                       self.supervisord, str(self.conf)], timeout=60)


def rpc_answer(output: str, what: str) -> Any:
    """The result of :data:`RPC_SCRIPT`'s marked line: a Fault or OSError re-raised."""
    for line in reversed(output.splitlines()):
        if line.startswith(RPC_MARK):
            answer = json.loads(line.removeprefix(RPC_MARK))
            break
    else:
        raise CommandError(f"supervisord {what}", 1, output)
    if "fault" in answer:
        raise xmlrpc.client.Fault(*answer["fault"])
    if "error" in answer:
        raise OSError(f"supervisord {what}: {answer['error']}")
    return answer["result"]


_EXIT_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ \w+ exited: (\S+) "
                        r"\(.*not expected\)$")


def count_unexpected_exits(log_text: str, since: float) -> dict[str, int]:
    """Count ``exited: NAME (...; not expected)`` lines of supervisord's log (local
    time stamps) at or after ``since`` (epoch seconds)."""
    counts: dict[str, int] = {}
    for line in log_text.splitlines():
        match = _EXIT_LINE.match(line)
        if match and time.mktime(time.strptime(match[1], "%Y-%m-%d %H:%M:%S")) >= since - 1:
            counts[match[2]] = counts.get(match[2], 0) + 1
    return counts


# An oslo.log line's prefix: date, time, pid, level, logger, optional request context.
_OSLO_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \d+ [A-Z]+ \S+ (?:\[[^\]]*\] )?")
# A line that states an exception (``module.SomeError: message``), not a frame or code.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Fault|Failure|"
                             r"Unavailable|Timeout|Refused|NotFound|Invalid\w*)(?::|$)")
_MAX_CAUSES = 6


def failure_excerpt(text: str, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a log, preceded by the distinct exception and
    CRITICAL lines before them (at most six, the latest), so the first error of a
    chained traceback is shown even when the tail is all the second one's frames."""
    all_lines = text.splitlines()
    tail = all_lines[-lines:]
    seen = {_message(line) for line in tail}
    causes: list[str] = []
    for line in all_lines[:-lines] if lines else all_lines:
        message = _message(line)
        if message in seen or not (" CRITICAL " in line or _EXCEPTION_LINE.match(message)):
            continue
        seen.add(message)
        causes.append(line)
    causes = causes[-_MAX_CAUSES:]
    return [*causes, "[…]", *tail] if causes else tail


def _message(line: str) -> str:
    return _OSLO_PREFIX.sub("", line).strip()
