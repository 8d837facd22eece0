"""MariaDB administration on the database's host: the mariadb client over the site
instance's unix socket, as its root, run through the host's connection (the machine
onestack runs on, or a controller over SSH). SQL goes to the client's stdin, never on
a command line."""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from onestack.core.host import HostConnection
from onestack.drivers.host import LocalHost
from onestack.drivers.probes import RunsOnAHost
from onestack.errors import CommandError


def _client(socket_path: Path, database: str = "") -> list[str]:
    return ["mariadb", f"--socket={socket_path}", "--user=root", "--batch",
            "--skip-column-names", *([f"--database={database}"] if database else [])]


def query(host: HostConnection, socket_path: Path, sql: str, what: str, *,
          database: str = "", secrets: Sequence[str] = (),
          timeout: float = 60) -> list[list[str]]:
    """Run a script on ``host``; its rows (tab-separated columns). A failure is a
    CommandError about ``what``, with every value of ``secrets`` masked."""
    try:
        out = host.run(_client(socket_path, database), input=sql, timeout=timeout)
    except CommandError as exc:
        raise CommandError(what, exc.returncode, _masked(exc.output, secrets)) from None
    return [line.split("\t") for line in out.splitlines() if line]


def _masked(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def ensure_database(host: HostConnection, socket_path: Path, database: str, user: str,
                    password: str, client_hosts: Sequence[str]) -> None:
    """Create a database and a user with all privileges on it, for exactly the client
    hosts given (idempotent): the user's accounts for any other host are dropped.

    The password goes to the client's stdin and never appears in errors.
    """
    what = f"create database {database} and its user {user}"
    known = query(host, socket_path, f"SELECT Host FROM mysql.user WHERE User = "
                  f"{literal(user)}", what)
    account = "{}@{}".format
    script = [f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4;"]
    script += [f"DROP USER IF EXISTS {account(literal(user), literal(row[0]))};"
               for row in known if row[0] not in client_hosts]
    for client in client_hosts:
        who, secret = account(literal(user), literal(client)), literal(password)
        script += [f"CREATE USER IF NOT EXISTS {who} IDENTIFIED BY {secret};",
                   f"ALTER USER {who} IDENTIFIED BY {secret};",
                   f"GRANT ALL PRIVILEGES ON `{database}`.* TO {who};"]
    query(host, socket_path, "\n".join(script), what, secrets=(password, secret))


def ping(host: HostConnection, socket_path: Path) -> str:
    """``SELECT VERSION()``: a real query against the server."""
    rows = query(host, socket_path, "SELECT VERSION()", f"query MariaDB at {socket_path}")
    return rows[0][0] if rows else ""


def dump_all(host: HostConnection, socket_path: Path, dest: Path,
             databases: list[str]) -> int:
    """Consistent dump of the given databases (routines, triggers, events), compressed,
    on the database's host.

    Each database is dropped and re-created on restore, so a restore returns it
    exactly, without tables a later release added.

    Written to a temporary name and renamed when complete, so a crash never leaves a
    truncated backup that looks whole. Returns the compressed size in bytes.
    """
    tmp = dest.with_name(f".{dest.name}.partial")
    dump = shlex.join(["mariadb-dump", f"--socket={socket_path}", "--user=root",
                       "--add-drop-database", "--routines", "--triggers", "--events",
                       "--single-transaction", "--hex-blob", "--databases", *databases])
    script = (f"set -o pipefail; umask 077; {dump} | gzip -3 > {shlex.quote(str(tmp))} && "
              f"sync {shlex.quote(str(tmp))} && mv {shlex.quote(str(tmp))} "
              f"{shlex.quote(str(dest))} && stat -c %s {shlex.quote(str(dest))}")
    try:
        out = host.run(["bash", "-c", script], timeout=3600)
    except CommandError as exc:
        host.run(["rm", "-f", str(tmp)], check=False)
        raise CommandError(f"dump {', '.join(databases)} to {dest}", exc.returncode,
                           exc.output) from None
    return int(out.split()[-1])


def restore_all(host: HostConnection, socket_path: Path, source: Path) -> None:
    """Load a dump made by :func:`dump_all` (replaces every database in it)."""
    load = shlex.join(["mariadb", f"--socket={socket_path}", "--user=root"])
    script = f"set -o pipefail; gzip -dc {shlex.quote(str(source))} | {load}"
    try:
        host.run(["bash", "-c", script], timeout=3600)
    except CommandError as exc:
        raise CommandError(f"load {source} into the database at {socket_path}",
                           exc.returncode, exc.output) from None


def execute(host: HostConnection, socket_path: Path, database: str,
            statement: str) -> int:
    """Run one statement in a database as root on ``host``; the number of rows it
    changed (values in ``statement`` are literals made by ``literal``)."""
    rows = query(host, socket_path, f"{statement.rstrip(';')};\nSELECT ROW_COUNT();",
                 f"{statement} on {database}", database=database)
    return int(rows[-1][0]) if rows and rows[-1][0].lstrip("-").isdigit() else 0


@dataclass(frozen=True)
class ServiceReportProbe(RunsOnAHost):
    """Healthy when a nova service has reported its state recently (its heartbeat in
    the cell database), i.e. the scheduler will consider it up."""

    socket_path: Path
    database: str
    binary: str
    host: str
    # nova's own service_down_time (default 60 s, reports every 10 s): the age past
    # which the scheduler stops placing on it. 20 s (two missed reports) turned a
    # compute that was slow to report while the broker restarted into an unhealthy site.
    max_age: int = 60
    not_before: float | None = None
    # Where the database runs (a host of the site): the query must run there, not
    # where onestack runs. Empty: on this machine.
    runs_on: str = ""
    via: HostConnection | None = field(default=None, compare=False, repr=False)

    def after(self, moment: float) -> ServiceReportProbe:
        """The same probe, satisfied only by a report made after ``moment`` (a restart)."""
        return replace(self, not_before=moment)


    def _query(self) -> str:
        return (f"SELECT TIMESTAMPDIFF(SECOND, COALESCE(updated_at, created_at), "
                f"UTC_TIMESTAMP()) FROM `{self.database}`.services WHERE "
                f"`binary`={literal(self.binary)} AND host={literal(self.host)} "
                "AND deleted=0")

    def check(self, timeout: float = 3.0) -> tuple[bool, str]:
        host = self.via or LocalHost()
        try:
            rows = query(host, self.socket_path, self._query(), f"{self.binary}@{self.host}",
                         timeout=max(timeout, 5))
        except CommandError as exc:
            return False, f"{self.binary}@{self.host}: {exc.output.strip()[-200:]}"
        word = rows[0][0] if rows else ""
        return self._judge(int(word) if word.lstrip("-").isdigit() else None, "")

    def _judge(self, age: int | None, error: str) -> tuple[bool, str]:
        if error:
            return False, error
        if age is None:
            return False, f"{self.binary}@{self.host} has not registered"
        if self.not_before is not None and time.time() - age < self.not_before - 1:
            return False, f"{self.binary}@{self.host} has not reported since it started"
        return age <= self.max_age, f"{self.binary}@{self.host} reported {age}s ago"


@dataclass(frozen=True)
class HashRingProbe(RunsOnAHost):
    """Healthy when neutron's OVN hash ring (``ovn_hash_ring``) holds live workers only:
    at least one touched within two touch intervals, and none that neutron still
    counts as alive (touched within ``alive``) but that stopped touching: events
    hashed to such a worker are lost until it ages out."""

    socket_path: Path
    database: str
    group: str
    touch_interval: int
    alive: int
    runs_on: str = ""  # the database's host (empty: this machine)
    via: HostConnection | None = field(default=None, compare=False, repr=False)


    def check(self, timeout: float = 3.0) -> tuple[bool, str]:
        sql = (f"SELECT hostname, TIMESTAMPDIFF(SECOND, updated_at, UTC_TIMESTAMP()) "
               f"FROM `{self.database}`.ovn_hash_ring WHERE group_name={literal(self.group)}")
        try:
            rows = query(self.via or LocalHost(), self.socket_path, sql, "OVN hash ring",
                         timeout=max(timeout, 5))
        except CommandError as exc:
            return False, f"OVN hash ring: {exc.output.strip()[-200:]}"
        return self.judge([(row[0], int(row[1])) for row in rows if len(row) == 2])

    def judge(self, nodes: list[tuple[str, int]]) -> tuple[bool, str]:
        """(host, seconds since its last touch) of every node -> (healthy, detail)."""
        fresh = 2 * self.touch_interval + 5
        live = sorted(h for h, age in nodes if age <= fresh)
        stale = sorted(f"{h} ({age}s)" for h, age in nodes if fresh < age <= self.alive)
        if stale:
            return False, (f"OVN hash ring: worker(s) that stopped touching it still count "
                           f"as alive: {', '.join(stale)} (their OVN events are lost)")
        if not live:
            return False, "OVN hash ring: no live worker (OVN events are not handled)"
        return True, f"OVN hash ring: {len(live)} live worker(s) ({', '.join(live)})"


def literal(value: str) -> str:
    """A SQL string literal (for the mariadb client, which takes no bound parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
