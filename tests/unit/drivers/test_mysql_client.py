"""The MariaDB driver through a host's connection: SQL on the client's stdin, never a
password on a command line or in an error; accounts for other hosts dropped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from onestack.drivers import mysql
from onestack.errors import CommandError

SOCK = Path("/srv/site/run/mysqld.sock")


class ClientHost:
    """A host whose mariadb client answers from a script of outputs (our logic only:
    the real client and server run in the e2e sites)."""

    name = "ctl1"

    def __init__(self, *answers: str | CommandError) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[str], str | None]] = []

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 600, check: bool = True,
            input: str | None = None) -> str:
        self.calls.append((list(argv), input))
        answer = self.answers.pop(0) if self.answers else ""
        if isinstance(answer, CommandError):
            raise answer
        return answer


def test_a_database_and_its_user_for_exactly_the_client_hosts() -> None:
    host = ClientHost("198.18.0.9\n%\n198.18.0.1\n", "")
    mysql.ensure_database(host, SOCK, "nova", "nova", "pa'ss\\word", ["198.18.0.1"])
    (select_argv, select_sql), (argv, sql) = host.calls
    assert select_argv == argv == ["mariadb", f"--socket={SOCK}", "--user=root", "--batch",
                                   "--skip-column-names"]
    assert select_sql == "SELECT Host FROM mysql.user WHERE User = 'nova'"
    assert sql is not None and sql.splitlines() == [
        "CREATE DATABASE IF NOT EXISTS `nova` CHARACTER SET utf8mb4;",
        "DROP USER IF EXISTS 'nova'@'198.18.0.9';",
        "DROP USER IF EXISTS 'nova'@'%';",
        "CREATE USER IF NOT EXISTS 'nova'@'198.18.0.1' IDENTIFIED BY 'pa''ss\\\\word';",
        "ALTER USER 'nova'@'198.18.0.1' IDENTIFIED BY 'pa''ss\\\\word';",
        "GRANT ALL PRIVILEGES ON `nova`.* TO 'nova'@'198.18.0.1';"]


def test_a_failure_names_what_failed_and_masks_the_password() -> None:
    refused = CommandError("mariadb", 1, "ERROR 1064 (42000) at line 2: syntax near "
                           "'IDENTIFIED BY 's3cret-value''")
    host = ClientHost("", refused)
    with pytest.raises(CommandError) as info:
        mysql.ensure_database(host, SOCK, "glance", "glance", "s3cret-value", ["198.18.0.1"])
    assert "s3cret-value" not in str(info.value) and "***" in str(info.value)
    assert info.value.command == "create database glance and its user glance"


def test_a_statement_returns_the_rows_it_changed() -> None:
    host = ClientHost("3\n")
    changed = mysql.execute(host, SOCK, "neutron", "DELETE FROM ovn_hash_ring WHERE "
                            f"hostname={mysql.literal('ctl1')}")
    assert changed == 3
    argv, sql = host.calls[0]
    assert argv[-1] == "--database=neutron"
    assert sql == "DELETE FROM ovn_hash_ring WHERE hostname='ctl1';\nSELECT ROW_COUNT();"


def test_probes_read_the_clients_rows() -> None:
    ring = mysql.HashRingProbe(SOCK, "neutron", "mqtt", 10, 60, runs_on="ctl1")
    bound = ring.through(ClientHost("ctl1\t5\nctl2\t45\n"))  # type: ignore[arg-type]
    ok, detail = bound.check()
    assert not ok and "ctl2 (45s)" in detail
    report = mysql.ServiceReportProbe(SOCK, "nova", "nova-compute", "cmp1")
    assert report.through(ClientHost("12\n")).check() == (  # type: ignore[arg-type]
        True, "nova-compute@cmp1 reported 12s ago")
