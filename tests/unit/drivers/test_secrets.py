"""The site's secret store: one 0600 file, values generated once, never predictable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from onestack.drivers.secrets import SecretStore, generate_password
from onestack.errors import CatalogError


def test_ensure_creates_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "sites" / "lab" / "secrets"
    store = SecretStore(path)
    value = store.ensure("keystone.admin")
    assert path.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(path.read_text()) == {"keystone.admin": value}
    assert not list(path.parent.glob("*.tmp"))


def test_mode_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = SecretStore(tmp_path / "secrets")
        store.ensure("a")
        store.set("b", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o600


def test_ensure_is_idempotent(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets")
    first = store.ensure("db.nova")
    assert store.ensure("db.nova") == first
    assert SecretStore(tmp_path / "secrets").ensure("db.nova") == first
    assert store.names() == ["db.nova"]


def test_values_random_and_url_safe(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets")
    values = [store.ensure(f"s{i}") for i in range(20)]
    assert len(set(values)) == 20
    assert all(len(v) == 32 for v in values)
    # They end up in URLs (mysql+pymysql://user:pw@..., rabbit://...): no escaping needed.
    assert all(v.replace("-", "").replace("_", "").isalnum() for v in values)
    assert len(generate_password(12)) == 12


def test_get_require_set(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets")
    assert store.get("missing") is None
    assert not (tmp_path / "secrets").exists()  # reading never creates the file
    with pytest.raises(CatalogError, match="secret missing"):
        store.require("missing")
    store.set("x", "given")
    assert store.require("x") == "given"
