"""The processes of a supervised program on a host, found by the program's own marker.

Every program runs with ``ONESTACK_PROGRAM=<marker>`` in its environment (see
:func:`onestack.drivers.supervisor.program_marker`), and every process it starts
inherits it. A process carrying a program's marker that is not below the process
supervisord supervises for that program is left over from a crash: it is found by
that marker, never by a process name (ADR 0010).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from onestack.core.host import HostConnection

MARKER_VARIABLE = "ONESTACK_PROGRAM"
# A command run by a step carries its own marker: a run killed mid-step leaves it running
# (a migration must not be cut in half), and the resumed step waits for it.
COMMAND_VARIABLE = "ONESTACK_COMMAND"

def kill_if_running(pid: str, pattern: str, signal: str = "TERM") -> str:
    """A shell fragment: signal the process ``pid`` (a shell word such as ``"$p"``) only
    if its command line matches ``pattern`` (grep), so a stale pid file never kills a
    process that merely reuses the pid."""
    return (f'if [ -n {pid} ] && tr "\\0" " " < /proc/{pid}/cmdline 2>/dev/null '
            f'| grep -q "{pattern}"; then kill -{signal} {pid}; fi; ')


# Print the environ paths of the processes whose environment holds the marker; the
# marker is an argument, never spliced into the script. Only this host's processes: a
# lab host on this machine (its own mount namespace, ADR 0023's multi-host lab) runs the
# same programs of the same site, with the same markers, and its processes are visible
# from here; they are not this host's leftovers to kill.
_FIND_MARKED = ('own=$(readlink /proc/self/ns/mnt); '
                'for f in $(grep -lzxF -e "$1" /proc/[0-9]*/environ 2>/dev/null); do '
                '[ "$(readlink "${f%/environ}/ns/mnt" 2>/dev/null)" = "$own" ] && echo "$f"; '
                'done; exit 0')
# pkill's option that keeps it to this host's processes (the mount namespace of the
# shell that runs it), for the same reason.
THIS_HOST_ONLY = "--ns $$ --nslist mnt"


@dataclass(frozen=True)
class ProgramProcesses:
    """A program's processes: those under its supervised process, and the others."""

    supervised: tuple[int, ...]
    outside: tuple[int, ...]


def running_here(pid: int) -> bool:
    """Whether a process of this machine is running (a zombie is not: it has exited
    and holds nothing, it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def marked_pids(host: HostConnection, marker: str,
                variable: str = MARKER_VARIABLE) -> set[int]:
    """Processes whose environment carries this program (or command) marker."""
    out = host.run(["sh", "-c", _FIND_MARKED, "sh", f"{variable}={marker}"], check=False)
    return {int(m.group(1)) for m in re.finditer(r"/proc/(\d+)/environ", out)}


def parents(host: HostConnection) -> dict[int, int]:
    """pid -> parent pid of every live process on the host (zombies are dead: they
    hold no port and wait only for their parent to reap them)."""
    found: dict[int, int] = {}
    for line in host.run(["ps", "-e", "-o", "pid=,ppid=,stat="], check=False).splitlines():
        fields = line.split()
        if (len(fields) == 3 and fields[0].isdigit() and fields[1].isdigit()
                and not fields[2].startswith("Z")):
            found[int(fields[0])] = int(fields[1])
    return found


def descendants(parent_of: Mapping[int, int], root: int) -> set[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_of.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in tree:
            continue
        tree.add(pid)
        todo.extend(children.get(pid, ()))
    return tree


def main_pid(parent_of: Mapping[int, int], supervised: int | None) -> int | None:
    """A program itself: the child of ``tini``, the child of the supervised wrapper
    (ADR 0010); the supervised pid when there is no such chain."""
    pid = supervised
    for _ in range(2):
        children = sorted(p for p, pp in parent_of.items() if pp == pid)
        if not children:
            return supervised
        pid = children[0]
    return pid


def split_processes(marked: Iterable[int], parent_of: Mapping[int, int],
                    supervised_pid: int | None) -> ProgramProcesses:
    """Marked processes under the supervised one, and the rest (orphans)."""
    tree = descendants(parent_of, supervised_pid) if supervised_pid else set()
    live = [p for p in marked if p in parent_of]  # the grep itself may be gone
    return ProgramProcesses(tuple(sorted(p for p in live if p in tree)),
                            tuple(sorted(p for p in live if p not in tree)))


def program_processes(host: HostConnection, marker: str,
                      supervised_pid: int | None) -> ProgramProcesses:
    """The processes of one program, split by whether supervision still holds them."""
    return split_processes(marked_pids(host, marker), parents(host), supervised_pid)


def wait_gone(host: HostConnection, pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until the processes have exited; return any still running at the deadline."""
    wanted = set(pids)
    deadline = time.monotonic() + timeout
    while True:
        left = sorted(wanted & set(parents(host)))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def kill(host: HostConnection, pids: Iterable[int], timeout: float = 10) -> list[int]:
    """SIGKILL the processes and wait until they are gone; return any still there."""
    wanted = sorted(set(pids))
    if not wanted:
        return []
    host.run(["kill", "-KILL", *map(str, wanted)], check=False)
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in wanted if p in parents(host)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def listening_pids(host: HostConnection, port: int) -> set[int]:
    """The processes that hold a TCP listening socket on this port."""
    out = host.run(["ss", "-Htlnp", f"sport = :{port}"], check=False)
    return {int(m) for m in re.findall(r"pid=(\d+)", out)}
