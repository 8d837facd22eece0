"""Loading a backup into a database that is not there fails with the reason."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from onestack.drivers import mysql
from onestack.drivers.host import LocalHost
from onestack.errors import CommandError


def test_loading_into_a_stopped_database_says_why(tmp_path: Path) -> None:
    dump = tmp_path / "all.sql.gz"
    with gzip.open(dump, "wb") as f:  # big enough that the client stops reading first
        f.write(b"-- " + os.urandom(4 << 20).hex().encode() + b"\n")
    with pytest.raises(CommandError) as info:
        mysql.restore_all(LocalHost(), tmp_path / "no-such.sock", dump)
    text = str(info.value)
    assert f"load {dump} into the database at {tmp_path / 'no-such.sock'}" in text
    assert info.value.returncode != 0
