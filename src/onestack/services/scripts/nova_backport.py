"""Rewrite nova objects stored in the databases to the versions an older nova reads.

Run with the *newer* release's Python (it knows the newer versions and how to make
them compatible). The target versions come from ONESTACK_NOVA_MANIFEST (object name
-> version, read from the older release); database URLs from ONESTACK_NOVA_API_DB and
ONESTACK_NOVA_CELL_DBS (space-separated). Prints one line of counts.

Nova stores versioned objects as JSON (request specs, build requests, instance
extras). Objects written by the newer code during an upgrade carry versions the older
code rejects (e.g. "Version 1.44 of ImageMetaProps is not supported, supported
version is 1.42"); oslo.versionedobjects can make them compatible with a manifest.
"""

from __future__ import annotations

import json
import os
from typing import Any

import sqlalchemy as sa
from nova import objects
from nova.objects.base import NovaObjectRegistry

objects.register_all()
MANIFEST: dict[str, str] = json.loads(os.environ["ONESTACK_NOVA_MANIFEST"])
CLASSES = NovaObjectRegistry.obj_classes()
TABLES = {
    "api": [("request_specs", "spec"), ("build_requests", "instance")],
    "cell": [("instance_extra", c) for c in ("numa_topology", "pci_requests", "flavor",
                                             "vcpu_model", "migration_context", "keypairs",
                                             "device_metadata", "trusted_certs",
                                             "resources")],
}


def _v(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def _too_new(prim: Any) -> bool:
    if isinstance(prim, dict):
        name = prim.get("nova_object.name")
        if name in MANIFEST and _v(prim["nova_object.version"]) > _v(MANIFEST[name]):
            return True
        return any(_too_new(v) for v in prim.values())
    if isinstance(prim, list):
        return any(_too_new(v) for v in prim)
    return False


def _backport(prim: Any) -> Any:
    if isinstance(prim, dict) and "nova_object.name" in prim:
        name = prim["nova_object.name"]
        obj = CLASSES[name][0].obj_from_primitive(prim)
        return obj.obj_to_primitive(target_version=MANIFEST[name], version_manifest=MANIFEST)
    if isinstance(prim, dict):
        return {k: _backport(v) if _too_new(v) else v for k, v in prim.items()}
    return prim


def _rewrite(url: str, table: str, column: str) -> int:
    engine = sa.create_engine(url)
    changed = 0
    with engine.begin() as conn:
        if not sa.inspect(conn).has_table(table):
            return 0
        rows = conn.execute(sa.text(f"SELECT id, `{column}` FROM `{table}` "
                                    f"WHERE `{column}` IS NOT NULL")).fetchall()
        for row_id, text in rows:
            prim = json.loads(text)
            if not _too_new(prim):
                continue
            conn.execute(sa.text(f"UPDATE `{table}` SET `{column}`=:v WHERE id=:i"),
                         {"v": json.dumps(_backport(prim)), "i": row_id})
            changed += 1
    return changed


def main() -> None:
    counts = {}
    for table, column in TABLES["api"]:
        counts[f"api.{table}.{column}"] = _rewrite(os.environ["ONESTACK_NOVA_API_DB"], table,
                                                   column)
    for url in os.environ["ONESTACK_NOVA_CELL_DBS"].split():
        for table, column in TABLES["cell"]:
            key = f"cell.{table}.{column}"
            counts[key] = counts.get(key, 0) + _rewrite(url, table, column)
    print(json.dumps({k: v for k, v in counts.items() if v}))


if __name__ == "__main__":
    main()
