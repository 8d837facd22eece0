"""onestack's own environment is locked with hashes (issue 12.14): every dependency that
pyproject.toml declares is pinned, with hashes, in the lock the bootstrap installs.

When this fails after adding a dependency: run `make lock` and commit requirements/.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQ = ROOT / "requirements"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(extra: str | None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    if extra:
        specs += project["optional-dependencies"][extra]
    specs += [line for line in (REQ / "build.in").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    return {_canonical(m.group(1)) for s in specs if (m := _NAME.match(s))}


def _locked(lock: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a `uv pip compile --generate-hashes` lock."""
    text = (REQ / lock).read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        found = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if found:
            pins[_canonical(found.group(1))] = (found.group(2),
                                                len(re.findall(r"--hash=sha256:[0-9a-f]{64}",
                                                               line)))
    return pins


@pytest.mark.parametrize(("lock", "extra"), [("onestack.lock", None), ("test.lock", "test")])
def test_every_declared_dependency_is_locked_with_hashes(lock: str, extra: str | None) -> None:
    pins = _locked(lock)
    missing = sorted(_declared(extra) - set(pins))
    assert not missing, f"not in requirements/{lock}: {missing}; run `make lock`"
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert not unhashed


def test_test_lock_keeps_the_runtime_versions() -> None:
    runtime, test = _locked("onestack.lock"), _locked("test.lock")
    assert {n: test[n][0] for n in runtime} == {n: v for n, (v, _) in runtime.items()}


def test_uv_is_pinned_by_version_and_hash() -> None:
    wanted = re.search(r"^uv==(\S+)$", (REQ / "bootstrap.in").read_text(), re.M)
    assert wanted
    version, hashes = _locked("bootstrap.lock")["uv"]
    assert version == wanted.group(1) and hashes > 0


def test_bootstrap_installs_only_from_the_locks_with_hash_checking() -> None:
    script = (ROOT / "onestack").read_text()
    installs = [line for line in script.replace("\\\n", " ").splitlines()
                if re.search(r"pip install", line)]
    assert len(installs) == 3
    assert "--require-hashes" in installs[0] and "bootstrap.lock" in installs[0]
    assert "--require-hashes" in installs[1] and '"$lock"' in installs[1]
    assert "--no-deps" in installs[2] and "--no-build-isolation" in installs[2]

