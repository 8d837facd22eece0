"""python_env against a tiny hand-made bundle and wheelhouse: no network, a few seconds."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from onestack.catalog.releases import ReleaseBundle, load_bundle
from onestack.drivers import python_env
from onestack.errors import PackageInstallError


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def make_wheel(folder: Path, name: str, version: str, script: str | None = None) -> Path:
    """Write a minimal, valid pure-Python wheel (optionally with a console script)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\ndef main() -> None:\n    print(VERSION)\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    if script:
        files[f"{dist}/entry_points.txt"] = f"[console_scripts]\n{script} = {name}:main\n"
    record = "".join(f"{path},{_record_hash(body.encode())},{len(body.encode())}\n"
                     for path, body in files.items()) + f"{dist}/RECORD,,\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, body in files.items():
            archive.writestr(path, body)
        archive.writestr(f"{dist}/RECORD", record)
    return wheel


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    house = tmp_path / "wheelhouse"
    house.mkdir()
    make_wheel(house, "alpha", "1.0", script="alpha-manage")
    make_wheel(house, "beta", "2.0")
    return house


def tiny_bundle(house: Path, revision: int = 0) -> ReleaseBundle:
    lock = "".join(f"{n}=={v} --hash=sha256:{_sha(house / f'{n}-{v}-py3-none-any.whl')}\n"
                   for n, v in [("alpha", "1.0"), ("beta", "2.0")])
    return load_bundle("2026.1").model_copy(update={
        "revision": revision, "services": {"alpha": "1.0"}, "runtime": ["beta"],
        "commands": ["alpha-manage"], "build_from_source": [], "lock_text": lock})


def write_manifest(bundle: ReleaseBundle, house: Path) -> None:
    (house / python_env.MANIFEST_FILE).write_text(json.dumps(
        {"bundle": bundle.version, "lock_sha256": bundle.lock_sha256, "built": {},
         "files": {p.name: _sha(p) for p in house.glob("*.whl")}}))


def test_offline_install_is_atomic_and_idempotent(wheelhouse: Path, tmp_path: Path) -> None:
    bundle = tiny_bundle(wheelhouse)
    write_manifest(bundle, wheelhouse)
    venv = tmp_path / "releases" / "2026.1" / "venv"
    messages: list[str] = []
    python_env.create_venv(bundle, venv, wheelhouse, progress=messages.append)
    assert venv.is_symlink() and (venv / "bin" / "alpha-manage").exists()
    assert python_env.installed_versions(venv) == {"alpha": "1.0", "beta": "2.0"}
    assert python_env.lock_mismatches(bundle, venv) == {}
    assert python_env.read_marker(venv)["lock_sha256"] == bundle.lock_sha256  # type: ignore[index]
    assert any("installed" in m for m in messages)
    messages.clear()
    python_env.create_venv(bundle, venv, wheelhouse, progress=messages.append)
    assert messages == [f"venv of release {bundle.version} already in place at {venv}"]


def test_new_revision_gets_new_folder_and_keeps_old(wheelhouse: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    first = tiny_bundle(wheelhouse)
    write_manifest(first, wheelhouse)
    python_env.create_venv(first, venv, wheelhouse)
    second = tiny_bundle(wheelhouse, revision=1)
    python_env.create_venv(second, venv, wheelhouse)
    assert python_env.read_marker(venv)["bundle"] == second.version  # type: ignore[index]
    assert python_env.venv_matches(first, python_env.release_dir_for(first, venv))


def test_tampered_wheel_is_refused(wheelhouse: Path, tmp_path: Path) -> None:
    bundle = tiny_bundle(wheelhouse)
    write_manifest(bundle, wheelhouse)
    make_wheel(wheelhouse, "beta", "2.0", script="evil")  # same name, other bytes
    venv = tmp_path / "venv"
    with pytest.raises(PackageInstallError) as caught:
        python_env.create_venv(bundle, venv, wheelhouse, compile_bytecode=False)
    assert "hash" in str(caught.value).lower()
    assert not venv.exists()
    assert not python_env.release_dir_for(bundle, venv).exists()


def test_wheelhouse_of_another_lock_is_refused(wheelhouse: Path, tmp_path: Path) -> None:
    bundle = tiny_bundle(wheelhouse)
    write_manifest(load_bundle("2026.1"), wheelhouse)
    with pytest.raises(PackageInstallError, match="another lock"):
        python_env.create_venv(bundle, tmp_path / "venv", wheelhouse)


def test_missing_command_fails_install(wheelhouse: Path, tmp_path: Path) -> None:
    bundle = tiny_bundle(wheelhouse).model_copy(update={"commands": ["uwsgi"]})
    write_manifest(bundle, wheelhouse)
    with pytest.raises(PackageInstallError, match="commands are missing: uwsgi"):
        python_env.create_venv(bundle, tmp_path / "venv", wheelhouse)


def test_pip_fallback(wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(python_env, "find_uv", lambda: None)
    bundle = tiny_bundle(wheelhouse)
    write_manifest(bundle, wheelhouse)
    venv = tmp_path / "venv"
    python_env.create_venv(bundle, venv, wheelhouse, compile_bytecode=False)
    assert python_env.read_marker(venv)["installer"] == "pip"  # type: ignore[index]
    assert python_env.lock_mismatches(bundle, venv) == {}


def test_built_wheels_are_trusted_only_through_a_locked_sdist(tmp_path: Path) -> None:
    house = tmp_path / "wh"
    (house / "sdist").mkdir(parents=True)
    sdist = house / "sdist" / "gamma-0.1.tar.gz"
    sdist.write_bytes(b"source archive")
    wheel = make_wheel(house, "gamma", "0.1")
    bundle = load_bundle("2026.1").model_copy(update={
        "build_from_source": ["gamma"],
        "lock_text": f"gamma==0.1 --hash=sha256:{_sha(sdist)}\n"})
    entry = {"version": "0.1", "sdist": "sdist/gamma-0.1.tar.gz", "sdist_sha256": _sha(sdist),
             "wheel": wheel.name, "wheel_sha256": _sha(wheel)}
    (house / python_env.MANIFEST_FILE).write_text(json.dumps(
        {"lock_sha256": bundle.lock_sha256, "built": {"gamma": entry}, "files": {}}))
    assert python_env.offline_requirements(bundle, house) == (
        f"gamma==0.1 --hash=sha256:{_sha(wheel)}\n")
    sdist.write_bytes(b"another source archive")
    with pytest.raises(PackageInstallError, match="not in the lock"):
        python_env.offline_requirements(bundle, house)


def test_an_interpreter_under_a_private_directory_is_not_usable_by_services() -> None:
    """A pyenv under /root (0700): the services' users could not start the release."""
    import shutil
    import tempfile

    from onestack.drivers.python_env import usable_by_everyone

    tmp_path = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own tmp is private to root
    try:
        _check_usable(tmp_path, usable_by_everyone)
    finally:
        shutil.rmtree(tmp_path)


def _check_usable(tmp_path: Path, usable_by_everyone: Any) -> None:
    private = tmp_path / "root"
    private.mkdir(mode=0o700)
    python = private / "python3.11"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    tmp_path.chmod(0o755)
    assert not usable_by_everyone(python)
    private.chmod(0o711)
    assert usable_by_everyone(python)
    python.chmod(0o750)
    assert not usable_by_everyone(python)


# --- the archive shipped to other hosts (issue 21) ------------------------------------


@pytest.fixture
def packed(wheelhouse: Path, tmp_path: Path) -> tuple[ReleaseBundle, Path, Path]:
    """(bundle, venv, archive) of a release packed on this machine."""
    bundle = tiny_bundle(wheelhouse)
    write_manifest(bundle, wheelhouse)
    venv = tmp_path / "releases" / "2026.1" / "venv"
    return bundle, venv, python_env.release_archive(bundle, venv, wheelhouse).path


def _tar_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The archives python_env hashes from now on."""
    hashed: list[Path] = []
    real = python_env.sha256_file

    def counting(path: Path) -> str:
        if path.name.endswith(".tar"):
            hashed.append(path)
        return real(path)

    monkeypatch.setattr(python_env, "sha256_file", counting)
    return hashed


def test_the_archive_is_recorded_with_the_lock_and_hashed_once_per_run(
        packed: tuple[ReleaseBundle, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    bundle, venv, path = packed
    record = json.loads(python_env.archive_record_path(path).read_text())
    assert record["lock_sha256"] == bundle.lock_sha256
    assert record["archive_sha256"] == _sha(path)
    assert not path.with_name(f"{path.name}.sha256").exists()
    hashed = _tar_hashes(monkeypatch)
    for _ in range(3):  # three hosts' steps in one run
        assert python_env.release_archive(bundle, venv).sha256 == _sha(path)
    assert hashed == []  # hashed when packed, not again while unchanged


@pytest.mark.parametrize("change", ["appended", "same size"])
def test_a_tampered_archive_is_refused_before_it_is_sent(
        packed: tuple[ReleaseBundle, Path, Path], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, change: str) -> None:
    # issue 21: the digest was checked only on the receiving host, against itself.
    from onestack.core.progress import SilentProgress
    from onestack.errors import ReleaseArchiveError
    from onestack.model.paths import SitePaths
    from onestack.steps.actions import ShipReleaseEnv
    from onestack.steps.context import HostContext

    bundle, venv, path = packed
    recorded = _sha(path)
    data = path.read_bytes()
    path.write_bytes(data + b"x" if change == "appended" else data[:-1] + b"x")
    hashed = _tar_hashes(monkeypatch)

    class Receiver:
        name = "cmp1"

        def __init__(self) -> None:
            self.sent: list[Path] = []

        def put_file(self, source: Path, target: Path) -> None:
            self.sent.append(source)

    monkeypatch.setattr("onestack.catalog.releases.load_bundle", lambda series: bundle)
    host = Receiver()
    ctx = HostContext(host, SitePaths(tmp_path, "lab"), None, SilentProgress())
    with pytest.raises(ReleaseArchiveError) as err:
        ShipReleaseEnv("2026.1", venv, None).apply(ctx)
    assert str(err.value) == (f"release archive {path}: its sha256 is {_sha(path)[:16]}..., "
                              f"not {recorded[:16]}... as recorded when it was packed: "
                              "refusing to send it")
    assert host.sent == [] and hashed == [path]
    assert err.value.hint is not None and str(path) in err.value.hint


def test_an_archive_of_another_lock_or_release_build_is_packed_again(
        packed: tuple[ReleaseBundle, Path, Path]) -> None:
    bundle, venv, path = packed
    record_path = python_env.archive_record_path(path)
    record = json.loads(record_path.read_text())
    for key in ("lock_sha256", "release_marker_sha256"):
        record_path.write_text(json.dumps({**record, key: "0" * 64}))
        messages: list[str] = []
        assert python_env.release_archive(bundle, venv, progress=messages.append).sha256 == \
            _sha(path)
        assert f"packing release {bundle.version} for other hosts" in messages
        assert json.loads(record_path.read_text()) == record | {"archive_sha256": _sha(path)}
    record_path.unlink()  # an archive of the older onestack: its digest in a bare .sha256
    path.with_name(f"{path.name}.sha256").write_text(_sha(path) + "\n")
    python_env.release_archive(bundle, venv)
    assert record_path.exists() and not path.with_name(f"{path.name}.sha256").exists()
