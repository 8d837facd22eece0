"""Python environments of release bundles: offline wheelhouses and per-release venvs.

This is the only module that runs pip, uv or venv. Everything it installs is verified
against the bundle's lock (``--require-hashes``).

Wheelhouse (``build_wheelhouse``): every locked wheel is downloaded with its lock hash
verified. Packages the bundle lists in ``build_from_source`` exist only as source
archives: their sdist is downloaded (lock hash verified), kept under ``sdist/``, and
built into a wheel. A built wheel's hash cannot be in the lock (builds are not
reproducible byte for byte), so the wheelhouse manifest records it. The rule checked
at install time: the manifest names the bundle's lock digest, each built package's
sdist in the wheelhouse still has a hash listed in the lock, and the installer then
verifies the built wheel against the hash the manifest recorded. Every other package
is verified against the lock itself.

Venv (``create_venv``): built in a fresh folder beside the requested path, named by
bundle version and lock digest, with a marker file written last; the requested path is
then (re)pointed at it with an atomic symlink swap. A venv whose marker matches the
bundle is left alone. Folders of older bundles stay, so a rollback can switch back.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from onestack.catalog.releases import LockedPackage, ReleaseBundle, canonical_name
from onestack.errors import PackageInstallError, PrerequisiteError, ReleaseArchiveError

Progress = Callable[[str], None]

MANIFEST_FILE = "onestack-wheelhouse.json"
MARKER_FILE = "onestack-release.json"
SDIST_DIR = "sdist"


def _quiet(_message: str) -> None:
    """Default progress reporter: say nothing."""


# --- running commands -------------------------------------------------------------


def _run(cmd: Sequence[str | Path], what: str, cwd: Path | None = None) -> str:
    """Run a command; on failure raise PackageInstallError with its last output."""
    argv = [str(part) for part in cmd]
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                              env=_child_env())
    except OSError as exc:
        raise PackageInstallError([what], f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        output = f"$ {' '.join(argv)}\n{done.stdout}\n{done.stderr}"
        raise PackageInstallError([what], output)
    return done.stdout + done.stderr


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_NO_PROGRESS": "1"})
    env.pop("VIRTUAL_ENV", None)  # never install into whatever venv the caller runs in
    return env


def find_uv() -> str | None:
    """uv beside this interpreter (onestack's own venv) or on PATH, if any."""
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.is_file() else shutil.which("uv")


def find_python(bundle: ReleaseBundle) -> str:
    """An interpreter of the bundle's Python version (``3.11``) that the services' own
    users can run: the system's (``/usr/bin/python3.11``) before onestack's own, which
    may live where only root can reach (a pyenv under /root)."""
    version = bundle.python
    candidates = [f"/usr/bin/python{version}", shutil.which(f"python{version}")]
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        candidates.append(sys.executable)
    found = [c for c in candidates if c and Path(c).exists()]
    usable = [c for c in found if usable_by_everyone(Path(c))]
    if usable:
        return usable[0]
    if found:
        raise PrerequisiteError(f"release {bundle.version} needs Python {version} that the "
                                f"services' users can run; {found[0]} is reachable by root only",
                                f"install python{version} (Debian: python3)")
    raise PrerequisiteError(f"release {bundle.version} needs Python {version}",
                            f"install python{version} (Debian: python3)")


def usable_by_everyone(path: Path) -> bool:
    """Whether any user may run this file: others may search every directory on its
    resolved path and execute the file."""
    real = path.resolve()
    try:
        if not real.stat().st_mode & 0o001:
            return False
        return all(d.stat().st_mode & 0o001 for d in real.parents)
    except OSError:
        return False


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- wheelhouse ---------------------------------------------------------------------


def _split_lock(bundle: ReleaseBundle) -> tuple[list[LockedPackage], list[LockedPackage]]:
    """(packages downloaded as wheels, packages built from source)."""
    binary: list[LockedPackage] = []
    source: list[LockedPackage] = []
    for package in bundle.lock.packages:
        (source if bundle.is_built_from_source(package.name) else binary).append(package)
    return binary, source


def _write_requirements(path: Path, packages: list[LockedPackage]) -> Path:
    path.write_text("".join(p.requirement_line() + "\n" for p in packages))
    return path


def _platform_args(bundle: ReleaseBundle) -> list[str]:
    """pip download flags selecting wheels for the bundle's interpreter and platform."""
    abi = "cp" + bundle.python.replace(".", "")
    arch = bundle.platform.split("-", 1)[0]
    glibc = bundle.platform.split("-", 1)[1] if "-" in bundle.platform else "manylinux_2_28"
    platforms = [f"{glibc}_{arch}", f"manylinux2014_{arch}", f"manylinux_2_17_{arch}"]
    args = ["--python-version", bundle.python, "--implementation", "cp", "--abi", abi]
    for platform in platforms:
        args += ["--platform", platform]
    return args


def _download_wheels(bundle: ReleaseBundle, dest: Path, work: Path) -> None:
    binary, _ = _split_lock(bundle)
    reqs = _write_requirements(work / "wheels.txt", binary)
    _run([sys.executable, "-m", "pip", "download", "--require-hashes", "--no-deps",
          "--only-binary", ":all:", *_platform_args(bundle), "-d", dest, "-r", reqs],
         f"wheels of release {bundle.version}")


def _download_sdists(bundle: ReleaseBundle, dest: Path, work: Path) -> None:
    _, source = _split_lock(bundle)
    if not source:
        return
    reqs = _write_requirements(work / "sdists.txt", source)
    _run([sys.executable, "-m", "pip", "download", "--require-hashes", "--no-deps",
          "--no-binary", ":all:", "-d", dest / SDIST_DIR, "-r", reqs],
         f"source archives of release {bundle.version}")


def _find_dist(folder: Path, package: LockedPackage, suffixes: tuple[str, ...]) -> Path:
    """The file of this package/version in a folder (wheel or sdist naming)."""
    for path in sorted(folder.iterdir()):
        stem = path.name.split("-")
        if (path.name.endswith(suffixes) and len(stem) >= 2
                and canonical_name(stem[0]) == package.key
                and stem[1].removesuffix(".tar.gz").removesuffix(".zip") == package.version):
            return path
    raise PackageInstallError([f"{package.name}=={package.version}"],
                              f"no {'/'.join(suffixes)} of it in {folder}")


def _build_one(bundle: ReleaseBundle, package: LockedPackage, dest: Path,
               work: Path) -> dict[str, str]:
    """Build one verified sdist into a wheel in ``dest``; return its manifest entry."""
    sdist = _find_dist(dest / SDIST_DIR, package, (".tar.gz", ".zip"))
    sdist_hash = sha256_file(sdist)
    if f"sha256:{sdist_hash}" not in package.hashes:
        raise PackageInstallError([package.name], f"{sdist.name}: hash not in the lock")
    out = work / f"build-{package.key}"
    out.mkdir()
    _run([find_python(bundle), "-m", "pip", "wheel", "--no-deps", "-w", out, sdist],
         f"wheel of {package.name}=={package.version}")
    built = _find_dist(out, package, (".whl",))
    shutil.move(str(built), dest / built.name)
    return {"version": package.version, "sdist": f"{SDIST_DIR}/{sdist.name}",
            "sdist_sha256": sdist_hash, "wheel": built.name,
            "wheel_sha256": sha256_file(dest / built.name)}


def _manifest_data(bundle: ReleaseBundle, dest: Path,
                   built: dict[str, dict[str, str]]) -> dict[str, Any]:
    wheels = {p.name: sha256_file(p) for p in sorted(dest.glob("*.whl"))}
    return {"bundle": bundle.version, "series": bundle.series,
            "lock_sha256": bundle.lock_sha256, "python": bundle.python,
            "platform": bundle.platform, "built": built, "files": wheels}


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_manifest(wheelhouse: Path) -> dict[str, Any] | None:
    """The wheelhouse manifest, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((wheelhouse / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def wheelhouse_is_complete(bundle: ReleaseBundle, wheelhouse: Path) -> bool:
    """Whether the wheelhouse holds this bundle's lock, every file present."""
    manifest = read_manifest(wheelhouse)
    if not manifest or manifest.get("lock_sha256") != bundle.lock_sha256:
        return False
    files: dict[str, str] = manifest.get("files", {})
    return all((wheelhouse / name).is_file() for name in files)


def build_wheelhouse(bundle: ReleaseBundle, dest: Path, progress: Progress | None = None) -> Path:
    """Download (hash-verified) and build every locked package into an offline wheelhouse.

    Needs index access; the result installs with none. Resumable: files already
    downloaded are reused; the manifest is written last. Returns the wheelhouse path.
    """
    report = progress or _quiet
    dest = dest.resolve()
    if wheelhouse_is_complete(bundle, dest):
        report(f"wheelhouse of {bundle.version} already complete at {dest}")
        return dest
    (dest / SDIST_DIR).mkdir(parents=True, exist_ok=True)
    binary, source = _split_lock(bundle)
    with tempfile.TemporaryDirectory(prefix="onestack-wheelhouse-") as tmp:
        work = Path(tmp)
        report(f"downloading {len(binary)} wheels (hashes verified against the lock)")
        _download_wheels(bundle, dest, work)
        report(f"downloading {len(source)} source archives: "
               f"{', '.join(p.name for p in source) or 'none'}")
        _download_sdists(bundle, dest, work)
        built = {}
        for package in source:
            report(f"building wheel of {package.name}=={package.version}")
            built[package.key] = _build_one(bundle, package, dest, work)
    report("writing wheelhouse manifest")
    _write_json_atomic(dest / MANIFEST_FILE, _manifest_data(bundle, dest, built))
    report(f"wheelhouse of {bundle.version}: {len(list(dest.glob('*.whl')))} wheels in {dest}")
    return dest


# --- install requirements -------------------------------------------------------------


def offline_requirements(bundle: ReleaseBundle, wheelhouse: Path) -> str:
    """Hashed requirements for installing from a wheelhouse (see module docstring)."""
    manifest = read_manifest(wheelhouse)
    what = f"wheelhouse {wheelhouse}"
    if manifest is None:
        raise PackageInstallError([what], "no manifest: build it with `onestack release build`")
    if manifest.get("lock_sha256") != bundle.lock_sha256:
        raise PackageInstallError([what], f"built for another lock than release {bundle.version}"
                                  f" ({manifest.get('bundle')}); rebuild it")
    built: dict[str, dict[str, str]] = manifest.get("built", {})
    lines = []
    for package in bundle.lock.packages:
        if bundle.is_built_from_source(package.name):
            wheel_hash = _checked_built_hash(package, built.get(package.key), wheelhouse)
            lines.append(package.requirement_line((f"sha256:{wheel_hash}",)))
        else:
            lines.append(package.requirement_line())
    return "\n".join(lines) + "\n"


def _checked_built_hash(package: LockedPackage, entry: dict[str, str] | None,
                        wheelhouse: Path) -> str:
    """The recorded hash of a built wheel, once its sdist is proven to be the locked one."""
    name = f"{package.name}=={package.version}"
    if entry is None or entry.get("version") != package.version:
        raise PackageInstallError([name], f"not built in wheelhouse {wheelhouse}")
    sdist = wheelhouse / entry["sdist"]
    if not sdist.is_file() or f"sha256:{sha256_file(sdist)}" not in package.hashes:
        raise PackageInstallError([name], f"{sdist}: missing, or its hash is not in the lock")
    return entry["wheel_sha256"]


# --- venv -----------------------------------------------------------------------------


def read_marker(venv: Path) -> dict[str, Any] | None:
    """The release marker of a venv (what bundle and lock it holds), if any."""
    try:
        data = json.loads((venv / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def marker_matches(bundle: ReleaseBundle, marker: dict[str, Any] | str | None) -> bool:
    """Whether a release marker (parsed, or its text) names exactly this bundle's lock."""
    if isinstance(marker, str):
        try:
            marker = json.loads(marker)
        except ValueError:
            return False
    return bool(isinstance(marker, dict) and marker.get("bundle") == bundle.version
                and marker.get("lock_sha256") == bundle.lock_sha256)


def venv_matches(bundle: ReleaseBundle, venv: Path) -> bool:
    """Whether ``venv`` is a complete install of exactly this bundle's lock."""
    return bool(marker_matches(bundle, read_marker(venv))
                and (venv / "bin" / "python").exists()
                and usable_by_everyone(venv / "bin" / "python"))


def release_dir_for(bundle: ReleaseBundle, venv: Path) -> Path:
    """The real folder behind ``venv`` for this bundle: version and lock digest in the name."""
    return venv.parent / f"{venv.name}-{bundle.version}-{bundle.lock_sha256[:12]}"


def _make_venv(bundle: ReleaseBundle, target: Path, uv: str | None) -> None:
    python = find_python(bundle)
    if uv:
        _run([uv, "venv", "--quiet", "--python", python, target], f"venv {target}")
    else:
        _run([python, "-m", "venv", target], f"venv {target}")


def _install(bundle: ReleaseBundle, target: Path, reqs: Path, wheelhouse: Path | None,
             uv: str | None, compile_bytecode: bool) -> None:
    source = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    what = f"release {bundle.version}"
    if uv:
        extra = ["--offline"] if wheelhouse else []
        extra += ["--compile-bytecode"] if compile_bytecode else []
        _run([uv, "pip", "install", "--python", target / "bin" / "python",
              "--require-hashes", *extra, *source, "-r", reqs], what)
    else:
        extra = [] if compile_bytecode else ["--no-compile"]
        _run([target / "bin" / "python", "-m", "pip", "install", "--require-hashes",
              "--no-deps", *extra, *source, "-r", reqs], what)


def _check_commands(bundle: ReleaseBundle, target: Path) -> None:
    missing = [c for c in bundle.commands if not (target / "bin" / c).exists()]
    if missing:
        raise PackageInstallError([f"release {bundle.version}"],
                                  f"installed, but commands are missing: {', '.join(missing)}")


def _point_at(venv: Path, target: Path) -> None:
    """Atomically make ``venv`` a symlink to ``target`` (a sibling folder)."""
    if venv.is_dir() and not venv.is_symlink():
        aside = venv.with_name(f".{venv.name}.replaced-{int(time.time())}")
        venv.rename(aside)
    link = venv.with_name(f".{venv.name}.link-{os.getpid()}")
    link.unlink(missing_ok=True)
    link.symlink_to(target.name)
    os.replace(link, venv)


# Python modules of Debian packages a release uses from the host, not from PyPI: the
# libvirt bindings must match the host's libvirt (python3-libvirt; libvirt-python on
# PyPI is a source package that needs a compiler and libvirt's headers). ADR 0019.
DEBIAN_MODULES_DIR = Path("/usr/lib/python3/dist-packages")
DEBIAN_MODULES = ("libvirt.py", "libvirt_qemu.py", "libvirt_lxc.py", "libvirtaio.py",
                  "libvirtmod*.so")


def link_debian_modules(target: Path, source: Path = DEBIAN_MODULES_DIR) -> list[str]:
    """Symlink the Debian modules present on this machine into the release folder's
    site-packages (the same path on every host it is shipped to, whose package
    provides the files); returns the names linked. Idempotent."""
    linked: list[str] = []
    for site_dir in (target / "lib").glob("python3*/site-packages"):
        for pattern in DEBIAN_MODULES:
            for module in sorted(source.glob(pattern)):
                link = site_dir / module.name
                if not link.is_symlink():
                    link.unlink(missing_ok=True)
                    link.symlink_to(module)
                linked.append(module.name)
    return linked


# One build of a release folder (and of its archive) at a time in this process: the
# steps of several hosts run in threads, and each remote host's needs the local build.
_BUILD_LOCK = threading.RLock()


def create_venv(bundle: ReleaseBundle, venv: Path, wheelhouse: Path | None = None,
                progress: Progress | None = None, compile_bytecode: bool = True) -> None:
    """Create the immutable venv of a bundle at ``venv`` (see ``_create_venv``)."""
    with _BUILD_LOCK:
        _create_venv(bundle, venv, wheelhouse, progress, compile_bytecode)


def _create_venv(bundle: ReleaseBundle, venv: Path, wheelhouse: Path | None,
                 progress: Progress | None, compile_bytecode: bool) -> None:
    """Create the immutable venv of a bundle at ``venv``, hash-verified, idempotent.

    With ``wheelhouse`` the install is offline (no index); otherwise from the index,
    still verified against the lock. Uses uv when available, pip otherwise.
    ``compile_bytecode`` (default) pre-compiles every module: ~15 s more to install, and
    each service process starts seconds faster, with nothing written into the venv later.
    """
    report = progress or _quiet
    if venv_matches(bundle, venv):
        report(f"venv of release {bundle.version} already in place at {venv}")
        return
    venv.parent.mkdir(parents=True, exist_ok=True)
    target = release_dir_for(bundle, venv)
    if not venv_matches(bundle, target):
        _build_release_dir(bundle, target, wheelhouse, report, compile_bytecode)
    _point_at(venv, target)
    report(f"venv of release {bundle.version} ready at {venv}")


def _build_release_dir(bundle: ReleaseBundle, target: Path, wheelhouse: Path | None,
                       report: Progress, compile_bytecode: bool) -> None:
    if target.exists():
        shutil.rmtree(target)  # a partial build from an interrupted run
    uv = find_uv()
    started = time.monotonic()
    try:
        _make_venv(bundle, target, uv)
        reqs = target / "onestack-requirements.txt"
        text = offline_requirements(bundle, wheelhouse) if wheelhouse else bundle.lock_text
        reqs.write_text(text)
        where = f"wheelhouse {wheelhouse}" if wheelhouse else "the package index"
        report(f"installing {len(bundle.lock.packages)} packages from {where} "
               f"with {'uv' if uv else 'pip'} (hashes verified)")
        _install(bundle, target, reqs, wheelhouse, uv, compile_bytecode)
        _check_commands(bundle, target)
        link_debian_modules(target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    _write_json_atomic(target / MARKER_FILE, {
        "bundle": bundle.version, "series": bundle.series, "lock_sha256": bundle.lock_sha256,
        "installer": "uv" if uv else "pip", "offline": wheelhouse is not None,
        "bytecode": compile_bytecode,
        "seconds": round(time.monotonic() - started, 1)})
    report(f"installed release {bundle.version} in {time.monotonic() - started:.1f}s")


# --- shipping a release to other hosts -----------------------------------------------


@dataclass(frozen=True)
class ReleaseArchive:
    """A release folder packed for another host: a tar of it, and its sha256."""

    path: Path
    sha256: str
    folder: str  # the release folder's name, the archive's only top-level entry


def release_archive(bundle: ReleaseBundle, venv: Path, wheelhouse: Path | None = None,
                    progress: Progress | None = None) -> ReleaseArchive:
    """The archive of this machine's release folder, built (and the folder first, if
    need be) on first use and kept beside it for every other host, with a record of its
    sha256 tied to the bundle's lock. Before it is returned (to be sent), its sha256 is
    checked against that record: ReleaseArchiveError if it changed since it was packed.

    A release folder is only valid at the same path and with the same interpreter as
    where it was built: the receiving host unpacks it at the same path, after checking
    its interpreter (``interpreter_id``)."""
    report = progress or _quiet
    with _BUILD_LOCK:
        _create_venv(bundle, venv, wheelhouse, progress, True)
        target = release_dir_for(bundle, venv)
        path = target.with_name(f"{target.name}.tar")
        sha256 = _recorded_archive_digest(bundle, target, path)
        if sha256 is None:
            report(f"packing release {bundle.version} for other hosts")
            sha256 = _pack_release(bundle, target, path)
        archive = ReleaseArchive(path, sha256, target.name)
        _check_archive(archive)
        return archive


def archive_record_path(archive: Path) -> Path:
    """Where the archive's sha256 is recorded, with the lock and release it was packed from."""
    return archive.with_name(f"{archive.name}.json")


def _archive_record(bundle: ReleaseBundle, target: Path) -> dict[str, str]:
    """What an archive's record must say besides its digest: packed from this bundle's
    lock, and from this build of its release folder (its marker)."""
    return {"bundle": bundle.version, "lock_sha256": bundle.lock_sha256,
            "release_marker_sha256": sha256_file(target / MARKER_FILE)}


def _recorded_archive_digest(bundle: ReleaseBundle, target: Path, path: Path) -> str | None:
    """The archive's sha256 as recorded when it was packed from this lock and this build
    of the release folder; None if it must be packed (again)."""
    try:
        record = json.loads(archive_record_path(path).read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(record, dict) and path.is_file()):
        return None
    if any(record.get(k) != v for k, v in _archive_record(bundle, target).items()):
        return None
    sha256 = record.get("archive_sha256")
    return sha256 if isinstance(sha256, str) else None


def _pack_release(bundle: ReleaseBundle, target: Path, path: Path) -> str:
    """Pack the release folder into ``path`` and record its sha256; returns it."""
    record = archive_record_path(path)
    record.unlink(missing_ok=True)  # never an old record beside a new archive
    path.with_name(f"{path.name}.sha256").unlink(missing_ok=True)  # the older bare digest
    partial = path.with_name(f".{path.name}.partial")
    with tarfile.open(partial, "w") as tar:
        tar.add(target, arcname=target.name)
    sha256 = sha256_file(partial)
    os.replace(partial, path)
    _write_json_atomic(record, {**_archive_record(bundle, target), "archive_sha256": sha256})
    _CHECKED_ARCHIVES[path] = _file_identity(path)
    return sha256


# Archives whose sha256 this process checked, by what identifies their content on disk
# (a write changes the size, mtime or ctime): every host's step asks for the archive,
# and ~500 MiB is hashed once per run, not once per host.
_CHECKED_ARCHIVES: dict[Path, tuple[int, ...]] = {}


def _file_identity(path: Path) -> tuple[int, ...]:
    info = path.stat()
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _check_archive(archive: ReleaseArchive) -> None:
    """Hash the archive about to be sent (streaming) and compare with its record: the
    receiving host's check covers only the transfer."""
    seen = _file_identity(archive.path)
    if _CHECKED_ARCHIVES.get(archive.path) == seen:
        return
    found = sha256_file(archive.path)
    if found != archive.sha256:
        raise ReleaseArchiveError(str(archive.path), archive.sha256, found)
    _CHECKED_ARCHIVES[archive.path] = seen


# What a release folder's interpreter is: a host whose Python differs cannot use it.
INTERPRETER_ID_SCRIPT = "import sys; print(sys.executable, sys.version.split()[0])"


def interpreter_id(bundle: ReleaseBundle) -> tuple[str, str]:
    """(path, version) of the interpreter a release folder of this machine is built on."""
    python = find_python(bundle)
    out = _run([python, "-c", INTERPRETER_ID_SCRIPT], f"python {python}")
    path, version = out.split()
    return python, version


# --- inspection -------------------------------------------------------------------------


def installed_versions(venv: Path) -> dict[str, str]:
    """Canonical project name -> version of every distribution installed in ``venv``."""
    site_dirs = [str(p) for p in (venv / "lib").glob("python*/site-packages")]
    if not site_dirs:
        return {}
    return {canonical_name(d.metadata["Name"]): d.version
            for d in metadata.distributions(path=site_dirs) if d.metadata["Name"]}


def lock_mismatches(bundle: ReleaseBundle, venv: Path) -> dict[str, tuple[str, str]]:
    """Locked packages whose installed version differs: name -> (locked, installed or '')."""
    installed = installed_versions(venv)
    return {p.key: (p.version, installed.get(p.key, ""))
            for p in bundle.lock.packages if installed.get(p.key) != p.version}
