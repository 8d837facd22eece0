"""Open vSwitch database access (drivers/ovsdb.py): ovs-vsctl's JSON read back, the
commands that change it, and the once-only database creation run by a real shell."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from onestack.drivers import ovsdb
from onestack.drivers.probes import CommandProbe
from onestack.errors import CommandError

DB = "unix:/s/run/openvswitch/db.sock"
# As ovs-vsctl 3.1 prints them (--format=json list ...).
EXTERNAL_IDS = json.dumps({"data": [[["map", [["ovn-remote", "tcp:198.18.20.10:16642"],
                                               ["system-id", "cmp1"]]]]],
                           "headings": ["external_ids"]})
BRIDGES = json.dumps({"data": [["br-int", "netdev", "secure"], ["br-ex", "netdev",
                                                                 ["set", []]]],
                      "headings": ["name", "datapath_type", "fail_mode"]})


class CannedHost:
    """Answers every command with one output (or fails), recording the commands."""

    name = "cmp1"

    def __init__(self, output: str = "", fail: bool = False) -> None:
        self.output, self.fail = output, fail
        self.commands: list[list[str]] = []
        self.envs: list[Any] = []

    def run(self, argv: Any, **kwargs: Any) -> str:
        self.commands.append(list(argv))
        self.envs.append(kwargs.get("env"))
        if self.fail:
            raise CommandError(" ".join(argv), 1, "ovs-vsctl: unix:/s/db.sock: database "
                               "connection failed (No such file or directory)")
        return self.output


def test_cells_of_every_kind() -> None:
    assert ovsdb.cell("netdev") == "netdev"
    assert ovsdb.cell(["set", []]) == ""
    assert ovsdb.cell(["set", ["a"]]) == "a"
    assert ovsdb.cell(["set", ["a", "b"]]) == ["a", "b"]
    assert ovsdb.cell(["map", [["k", "v"], ["n", ["uuid", "u1"]]]]) == {"k": "v", "n": "u1"}
    assert ovsdb.cell(["uuid", "u2"]) == "u2"


def test_external_ids_and_bridges_read_through_the_host() -> None:
    host = CannedHost(EXTERNAL_IDS)
    assert ovsdb.external_ids(host, DB) == {"ovn-remote": "tcp:198.18.20.10:16642",
                                            "system-id": "cmp1"}
    assert host.commands == [["ovs-vsctl", f"--db={DB}", "--timeout=5", "--format=json",
                              "--columns=external_ids", "list", "Open_vSwitch"]]
    assert ovsdb.bridges(CannedHost(BRIDGES), DB, ["fail_mode", "datapath_type"]) == {
        "br-int": {"datapath_type": "netdev", "fail_mode": "secure"},
        "br-ex": {"datapath_type": "netdev", "fail_mode": ""}}


def test_a_database_that_does_not_answer_reads_as_none() -> None:
    assert ovsdb.external_ids(CannedHost(fail=True), DB) is None
    assert ovsdb.bridges(CannedHost(fail=True), DB, ["datapath_type"]) is None
    empty = json.dumps({"data": [], "headings": ["external_ids"]})
    assert ovsdb.external_ids(CannedHost(empty), DB) is None  # no root row yet


def test_changes_quote_every_value() -> None:
    argv = ovsdb.set_external_ids(DB, {"ovn-remote": "tcp:198.18.20.10:16642",
                                       "ovn-cms-options": ""})
    assert argv == ("ovs-vsctl", f"--db={DB}", "--timeout=10", "--no-wait", "set",
                    "Open_vSwitch", ".", 'external_ids:ovn-cms-options=""',
                    'external_ids:ovn-remote="tcp:198.18.20.10:16642"')
    argv = ovsdb.ensure_bridges(DB, {"br-int": {"fail_mode": "secure",
                                                "datapath_type": "netdev"}, "br-ex": {}})
    assert argv == ("ovs-vsctl", f"--db={DB}", "--timeout=60",
                    "--", "--may-exist", "add-br", "br-int",
                    "--", "set", "Bridge", "br-int", 'datapath_type="netdev"',
                    'fail_mode="secure"', "--", "--may-exist", "add-br", "br-ex")


FAKE_TOOL = """#!/bin/sh
echo "$*" >> "$TOOL_LOG"
[ -n "$TOOL_FAILS" ] && [ "$1" = "$TOOL_FAILS" ] && exit 1
case "$1" in create) echo "schema $3" > "$2" ;; transact) echo "row $3" >> "$2" ;; esac
"""


def _create(tmp_path: Path, db: Path, fails: str = "") -> list[str]:
    """Run the creation script with a fake ovsdb-tool; the tool calls it made."""
    bin_dir, log = tmp_path / "bin", tmp_path / "tool.log"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "ovsdb-tool"
    tool.write_text(FAKE_TOOL)
    tool.chmod(0o755)
    log.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TOOL_LOG": str(log),
           "TOOL_FAILS": fails}
    script = ovsdb.create_db_script(db, Path("/schema/vswitch.ovsschema"), ovsdb.OVS_ROOT_ROW)
    subprocess.run(["sh", "-c", script], env=env, check=False)
    return log.read_text().splitlines()


def test_a_database_is_created_once_with_its_root_row(tmp_path: Path) -> None:
    db = tmp_path / "data dir" / "conf.db"  # a path that needs quoting
    db.parent.mkdir()
    calls = _create(tmp_path, db)
    assert [c.split()[0] for c in calls] == ["create", "transact"]
    assert db.read_text() == (f"schema /schema/vswitch.ovsschema\nrow {ovsdb.OVS_ROOT_ROW}\n")
    assert _create(tmp_path, db) == []  # there: never made again
    assert sorted(p.name for p in db.parent.iterdir()) == ["conf.db"]


def test_an_interrupted_creation_leaves_no_database(tmp_path: Path) -> None:
    db = tmp_path / "conf.db"
    _create(tmp_path, db, fails="transact")
    assert not db.exists()  # half made: only the aside copy, redone next time
    assert [c.split()[0] for c in _create(tmp_path, db)] == ["create", "transact"]
    assert db.exists() and not (tmp_path / ".conf.db.new").exists()


@pytest.mark.parametrize(("output", "ok"), [
    ("Open_vSwitch\n_Server\n", True),
    ("_Server\n", False),
    ("not connected\n", False),
])
def test_command_probe_wants_a_line_starting_with_what_it_expects(output: str,
                                                                  ok: bool) -> None:
    expect = "connected" if "connected" in output else "Open_vSwitch"
    host = CannedHost(output)
    probe = CommandProbe(("ovsdb-client", "list-dbs", DB), expect, (("OVN_RUNDIR", "/r"),),
                         runs_on="cmp1").through(host)  # type: ignore[arg-type]
    assert probe.check()[0] is ok
    assert host.commands == [["ovsdb-client", "list-dbs", DB]]
    assert host.envs == [{"OVN_RUNDIR": "/r"}]


def test_command_probe_names_the_failure() -> None:
    probe = CommandProbe(("ovsdb-client", "list-dbs", DB), "Open_vSwitch").through(
        CannedHost(fail=True))  # type: ignore[arg-type]
    ok, detail = probe.check()
    assert not ok and "database connection failed" in detail
