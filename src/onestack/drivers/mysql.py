"""MariaDB administration over the site instance's unix socket (as its root)."""

from __future__ import annotations

from pathlib import Path

import pymysql

from onestack.errors import CommandError


def _connect(socket_path: Path) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    try:
        return pymysql.connect(unix_socket=str(socket_path), user="root", autocommit=True)
    except pymysql.err.MySQLError as exc:
        raise CommandError(f"connect to MariaDB at {socket_path}", 1, str(exc)) from None


def ensure_database(socket_path: Path, database: str, user: str, password: str) -> None:
    """Create a database and a user with all privileges on it (idempotent).

    The password is sent as a bound parameter and never appears in errors.
    """
    conn = _connect(socket_path)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
            for host in ("localhost", "127.0.0.1", "%"):
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
