"""MariaDB administration over the site instance's unix socket (as its root)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pymysql

from onestack.core.host import HostConnection
from onestack.drivers.host import LocalHost
from onestack.errors import CommandError


def _connect(socket_path: Path) -> pymysql.connections.Connection:
    try:
        return pymysql.connect(unix_socket=str(socket_path), user="root", autocommit=True)
    except pymysql.err.MySQLError as exc:
        raise CommandError(f"connect to MariaDB at {socket_path}", 1, str(exc)) from None


def ensure_database(socket_path: Path, database: str, user: str, password: str,
                    client_hosts: Sequence[str]) -> None:
    """Create a database and a user with all privileges on it, for exactly the client
    hosts given (idempotent): the user's accounts for any other host are dropped.

    The password is sent as a bound parameter and never appears in errors.
    """
    conn = _connect(socket_path)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
            cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (user,))
            for (host,) in cur.fetchall():
                if host not in client_hosts:
                    cur.execute("DROP USER IF EXISTS %s@%s", (user, host))
            for host in client_hosts:
                cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
                            (user, host, password))
                cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
                cur.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO %s@%s", (user, host))
    except pymysql.err.MySQLError as exc:
        raise CommandError(f"create database {database}", 1, str(exc.args[-1])) from None
    finally:
        conn.close()


def ping(socket_path: Path) -> str:
    """``SELECT VERSION()``: a real query against the server."""
    conn = _connect(socket_path)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
            return str(row[0]) if row else ""
    finally:
        conn.close()


def dump_all(socket_path: Path, dest: Path, databases: list[str]) -> int:
    """Consistent dump of the given databases (routines, triggers, events), gzip-compressed.

    Each database is dropped and re-created on restore, so a restore returns it
    exactly, without tables a later release added.

    Written to a temporary name and renamed when complete, so a crash never leaves a
    truncated backup that looks whole. Returns the compressed size in bytes.
    """
    import gzip
    import os
    import shutil
    import subprocess

    tmp = dest.with_name(f".{dest.name}.partial")
    cmd = ["mariadb-dump", f"--socket={socket_path}", "--user=root", "--add-drop-database",
           "--routines", "--triggers", "--events", "--single-transaction", "--hex-blob",
           "--databases", *databases]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with gzip.open(tmp, "wb", compresslevel=3) as out:
            shutil.copyfileobj(proc.stdout, out, 1 << 20)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise CommandError(" ".join(cmd), proc.returncode, err)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, dest)
    return dest.stat().st_size


def restore_all(socket_path: Path, source: Path) -> None:
    """Load a dump made by :func:`dump_all` (replaces every database in it)."""
    import gzip
    import shutil
    import subprocess

    cmd = ["mariadb", f"--socket={socket_path}", "--user=root"]
    what = f"load {source} into the database at {socket_path}"
    if shutil.which(cmd[0]) is None:
        raise CommandError(what, 127, "the mariadb client is not installed")
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as proc:
        assert proc.stdin is not None
        try:
            with gzip.open(source, "rb") as src:
                shutil.copyfileobj(src, proc.stdin, 1 << 20)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the client stopped reading (it failed): its output says why
        out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    if proc.returncode != 0:
        raise CommandError(what, proc.returncode, out)


def execute(socket_path: Path, database: str, statement: str,
            params: tuple[object, ...] = ()) -> int:
    """Run one statement in a database as root; return the number of rows it changed."""
    conn = _connect(socket_path)
    try:
        with conn.cursor() as cur:
            cur.execute(f"USE `{database}`")
            return int(cur.execute(statement, params))
    except pymysql.err.MySQLError as exc:
        raise CommandError(f"{statement} on {database}", 1, str(exc.args[-1])) from None
    finally:
        conn.close()


@dataclass(frozen=True)
class ServiceReportProbe:
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

    def through(self, host: HostConnection) -> ServiceReportProbe:
        """The same probe, run on ``host`` (its ``runs_on``) through its connection."""
        return self if isinstance(host, LocalHost) else replace(self, via=host)

    def _query(self) -> str:
        return (f"SELECT TIMESTAMPDIFF(SECOND, COALESCE(updated_at, created_at), "
                f"UTC_TIMESTAMP()) FROM `{self.database}`.services WHERE "
                f"`binary`={_literal(self.binary)} AND host={_literal(self.host)} "
                "AND deleted=0")

    def check(self, timeout: float = 3.0) -> tuple[bool, str]:
        if self.via is not None:
            return self._judge(*self._age_there(self.via, timeout))
        try:
            conn = _connect(self.socket_path)
        except CommandError as exc:
            return False, str(exc)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT TIMESTAMPDIFF(SECOND, COALESCE(updated_at, created_at), "
                            f"UTC_TIMESTAMP()) FROM `{self.database}`.services WHERE "
                            "`binary`=%s AND host=%s AND deleted=0", (self.binary, self.host))
                row = cur.fetchone()
        except pymysql.err.MySQLError as exc:
            return False, f"{self.binary}@{self.host}: {exc.args[-1]}"
        finally:
            conn.close()
        return self._judge(None if row is None or row[0] is None else int(row[0]), "")

    def _age_there(self, host: HostConnection, timeout: float) -> tuple[int | None, str]:
        """The heartbeat's age, by the mariadb client on the database's host."""
        try:
            out = host.run(["mariadb", f"--socket={self.socket_path}", "--user=root",
                            "--batch", "--skip-column-names", "-e", self._query()],
                           timeout=max(timeout, 5))
        except CommandError as exc:
            return None, f"{self.binary}@{self.host}: {exc.output.strip()[-200:]}"
        word = out.strip().split("\n")[0] if out.strip() else ""
        return (int(word) if word.lstrip("-").isdigit() else None), ""

    def _judge(self, age: int | None, error: str) -> tuple[bool, str]:
        if error:
            return False, error
        if age is None:
            return False, f"{self.binary}@{self.host} has not registered"
        if self.not_before is not None and time.time() - age < self.not_before - 1:
            return False, f"{self.binary}@{self.host} has not reported since it started"
        return age <= self.max_age, f"{self.binary}@{self.host} reported {age}s ago"


@dataclass(frozen=True)
class HashRingProbe:
    """Healthy when neutron's OVN hash ring (``ovn_hash_ring``) holds live workers only:
    at least one touched within two touch intervals, and none that neutron still
    counts as alive (touched within ``alive``) but that stopped touching: events
    hashed to such a worker are lost until it ages out."""

    socket_path: Path
    database: str
    group: str
    touch_interval: int
    alive: int

    def check(self, timeout: float = 3.0) -> tuple[bool, str]:
        try:
            conn = _connect(self.socket_path)
        except CommandError as exc:
            return False, str(exc)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT hostname, TIMESTAMPDIFF(SECOND, updated_at, "
                            f"UTC_TIMESTAMP()) FROM `{self.database}`.ovn_hash_ring "
                            "WHERE group_name=%s", (self.group,))
                nodes = [(str(h), int(age)) for h, age in cur.fetchall()]
        except pymysql.err.MySQLError as exc:
            return False, f"OVN hash ring: {exc.args[-1]}"
        finally:
            conn.close()
        return self.judge(nodes)

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


def _literal(value: str) -> str:
    """A SQL string literal (for the mariadb client, which takes no bound parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
