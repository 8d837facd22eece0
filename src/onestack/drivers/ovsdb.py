"""Open vSwitch's database on a host, through ``ovs-vsctl``: what the switch and OVN
steps read (bridges, the chassis's ``external_ids``) and the commands that change it.

Every command names its database explicitly (``--db=unix:<site run dir>/...``): the
clients' defaults are the distribution's own instance under /var/run/openvswitch,
which a site never uses.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from onestack.core.host import HostConnection
from onestack.errors import CommandError

# The schemas of the Debian packages (openvswitch-common, ovn-common).
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
# The root row every Open vSwitch database needs ("ovs-vsctl init" does the same,
# but needs the server; this runs on the file before the server starts).
# The switch's settings, read when ovs-vswitchd starts. userspace-tso-enable: the
# userspace datapath reads a guest's tap with its virtio header, so a packet whose
# checksum the guest left to the device (virtio's offload, which every Linux guest
# uses) is not dropped by conntrack as a checksum error: without it a floating IP's
# TCP replies (through OVN's NAT and security groups) never leave the router
# (``conntrack_l4csum_err``), while ping works.
OVS_SETTINGS = (("userspace-tso-enable", "true"),)
OVS_ROOT_ROW = json.dumps(["Open_vSwitch", {
    "op": "insert", "table": "Open_vSwitch",
    "row": {"other_config": ["map", [list(kv) for kv in OVS_SETTINGS]]}}])


def vsctl(db: str, *args: str, timeout: int = 10) -> tuple[str, ...]:
    """``ovs-vsctl`` against one database, giving up after ``timeout`` seconds (a
    change waits for ovs-vswitchd to apply it unless ``--no-wait`` is among ``args``)."""
    return ("ovs-vsctl", f"--db={db}", f"--timeout={timeout}", *args)


def create_db_script(db: Path, schema: Path, root_row: str = "") -> str:
    """Shell that creates a database file once, atomically (built aside, then renamed:
    an interrupted run leaves no half-made database behind), with its root row."""
    tmp = db.with_name(f".{db.name}.new")
    steps = [f"ovsdb-tool create {_q(tmp)} {_q(schema)}"]
    if root_row:
        steps.append(f"ovsdb-tool transact {_q(tmp)} {_q(root_row)} >/dev/null")
    steps.append(f"mv -f {_q(tmp)} {_q(db)}")
    return (f"test -e {_q(db)} || {{ rm -f {_q(tmp)} && {' && '.join(steps)}; }}")


def _q(value: object) -> str:
    return shlex.quote(str(value))


def cell(value: Any) -> Any:
    """One cell of ovsdb's JSON: an atom as itself, ``["set", [...]]`` as a list (one
    element as itself, none as ``""``), ``["map", [[k, v]...]]`` as a dict,
    ``["uuid", u]`` as ``u``."""
    if not isinstance(value, list) or len(value) != 2:
        return value
    kind, inner = value
    if kind == "map":
        return {str(k): cell(v) for k, v in inner}
    if kind == "set":
        items = [cell(v) for v in inner]
        return "" if not items else items[0] if len(items) == 1 else items
    return inner  # "uuid", "named-uuid"


def rows(output: str) -> list[dict[str, Any]]:
    """The rows of ``ovs-vsctl --format=json list`` output, by column name."""
    table = json.loads(output)
    return [dict(zip(table["headings"], (cell(v) for v in row), strict=True))
            for row in table["data"]]


def read_rows(host: HostConnection, db: str, table: str,
              columns: Iterable[str]) -> list[dict[str, Any]] | None:
    """Rows of a table (only ``columns``), or None when the database does not answer."""
    argv = vsctl(db, "--format=json", f"--columns={','.join(columns)}", "list", table,
                 timeout=5)
    try:
        return rows(host.run(argv, timeout=15))
    except CommandError:
        return None


def external_ids(host: HostConnection, db: str) -> dict[str, str] | None:
    """The ``external_ids`` of the Open_vSwitch row (how ovn-controller is configured),
    or None when the database does not answer or has no root row."""
    found = read_rows(host, db, "Open_vSwitch", ("external_ids",))
    if not found:
        return None
    return {k: str(v) for k, v in found[0]["external_ids"].items()}


def bridges(host: HostConnection, db: str,
            columns: Iterable[str]) -> dict[str, dict[str, str]] | None:
    """Bridge name -> the values of ``columns`` (``""`` for an empty one), or None
    when the database does not answer."""
    wanted = sorted(set(columns))
    found = read_rows(host, db, "Bridge", ("name", *wanted))
    if found is None:
        return None
    return {str(r["name"]): {c: _text(r[c]) for c in wanted} for r in found}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def quoted(value: str) -> str:
    """A string in ovs-vsctl's value syntax: always double-quoted, so a ``:``, ``,`` or
    ``=`` in it (``tcp:198.18.0.1:16642``) is never read as syntax."""
    return json.dumps(value)


def set_external_ids(db: str, ids: Mapping[str, str]) -> tuple[str, ...]:
    """Set keys of the Open_vSwitch row's ``external_ids`` (other keys are kept)."""
    pairs = [f"external_ids:{k}={quoted(v)}" for k, v in sorted(ids.items())]
    return vsctl(db, "--no-wait", "set", "Open_vSwitch", ".", *pairs)


def ensure_bridges(db: str, bridges: Mapping[str, Mapping[str, str]]) -> tuple[str, ...]:
    """One transaction: each bridge created if missing, with its (plain, string)
    columns set; it waits (up to a minute) until ovs-vswitchd has applied it, i.e. the
    bridge is in the datapath."""
    args: list[str] = []
    for name, settings in bridges.items():
        args += ["--", "--may-exist", "add-br", name]
        if settings:
            args += ["--", "set", "Bridge", name,
                     *(f"{k}={quoted(v)}" for k, v in sorted(settings.items()))]
    return vsctl(db, *args, timeout=60)
