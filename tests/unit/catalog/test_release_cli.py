"""``onestack release list|show|build`` front-end (build with the driver stubbed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from onestack.catalog.releases import ReleaseBundle
from onestack.cli.main import cli
from onestack.drivers import python_env


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_list_table_and_json() -> None:
    assert "2026.1.0" in _invoke("release", "list")
    rows = json.loads(_invoke("release", "list", "--json"))
    assert [r["version"] for r in rows] == ["2026.1.0", "2026.2.0"]
    assert rows[1]["upgrade_from"] == ["2026.1"]


def test_show_json() -> None:
    detail = json.loads(_invoke("release", "show", "2026.2", "--json"))
    assert detail["services"]["nova"] == "34.0.0"
    assert detail["runtime"]["pyuwsgi"]
    assert len(detail["lock"]["sha256"]) == 64
    assert detail["infrastructure"]["mariadb"]["package"] == "mariadb-server"
    assert "lock: " in _invoke("release", "show", "2026.1")


def test_build_defaults_to_home_wheelhouse(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Path] = []

    def fake_build(bundle: ReleaseBundle, dest: Path, progress: object = None) -> Path:
        seen.append(dest)
        return dest

    monkeypatch.setattr(python_env, "build_wheelhouse", fake_build)
    output = _invoke("--home", str(tmp_path), "release", "build", "2026.1")
    assert seen == [tmp_path / "wheelhouse" / "2026.1"]
    assert str(tmp_path / "wheelhouse" / "2026.1") in output
