"""Prove the release locks by installing them: wheelhouse build, then offline venv.

Slow (downloads ~75 MB per series and builds the sdist-only packages). Set
ONESTACK_WHEELHOUSE_CACHE=DIR to keep the wheelhouses between runs: a complete
wheelhouse for the same lock is reused as is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from onestack.catalog.releases import load_bundle
from onestack.drivers import python_env

# `long` (make test-long): 3 minutes of installing both releases offline; every e2e
# site installs a release the same way (last result in docs/benchmarks.md).
pytestmark = [pytest.mark.e2e, pytest.mark.long]

MANAGE_COMMANDS = ["keystone-manage", "nova-manage", "neutron-db-manage", "placement-manage",
                   "glance-manage", "uwsgi", "openstack"]
VERSION_COMMANDS = {"keystone": "keystone-manage", "nova": "nova-manage",
                    "openstack-placement": "placement-manage", "glance": "glance-manage"}
RUNTIME_IMPORTS = "import pymysql, memcache, pymemcache, ovs, simplegeneric, openstack, pyuwsgi"


def _wheelhouse_root(tmp_path: Path) -> Path:
    cache = os.environ.get("ONESTACK_WHEELHOUSE_CACHE")
    return Path(cache) if cache else tmp_path / "wheelhouse"


def _build_with_cli(series: str, dest: Path, home: Path) -> None:
    cmd = [sys.executable, "-m", "onestack", "--home", str(home), "release", "build", series,
           "--dest", str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"is ready: {dest}" in done.stdout


@pytest.mark.parametrize("series", ["2026.1", "2026.2"])
def test_locked_release_installs_offline(series: str, tmp_path: Path) -> None:
    bundle = load_bundle(series)
    wheelhouse = _wheelhouse_root(tmp_path) / series
    started = time.monotonic()
    _build_with_cli(series, wheelhouse, tmp_path / "home")
    built = time.monotonic() - started
    assert python_env.wheelhouse_is_complete(bundle, wheelhouse)

    venv = tmp_path / "releases" / series / "venv"
    started = time.monotonic()
    python_env.create_venv(bundle, venv, wheelhouse)
    installed = time.monotonic() - started
    print(f"\n{series}: wheelhouse {built:.1f}s, offline install {installed:.1f}s")

    assert python_env.lock_mismatches(bundle, venv) == {}
    for command in MANAGE_COMMANDS + bundle.commands:
        assert (venv / "bin" / command).exists(), command
    _assert_versions(bundle.services, venv)
    _run_ok([str(venv / "bin" / "python"), "-c", RUNTIME_IMPORTS])
    assert _run_ok([str(venv / "bin" / "uwsgi"), "--version"]).startswith("2.")

    started = time.monotonic()
    python_env.create_venv(bundle, venv, wheelhouse)
    assert time.monotonic() - started < 2, "an up-to-date venv must be left alone"


def _assert_versions(services: dict[str, str], venv: Path) -> None:
    for package, command in VERSION_COMMANDS.items():
        output = _run_ok([str(venv / "bin" / command), "--version"])
        assert services[package] in output, (command, output)


def _run_ok(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return (done.stdout + done.stderr).strip()
