"""Build onestack's test image: a small bootable qcow2 made from Debian packages only.

``build_image(output_dir)`` returns a :class:`GuestImage` (path and facts). The
whole root file system is an initramfs (busybox, dropbear, a few kernel modules
and the scripts of ``catalog/guest``) beside the Debian cloud kernel on a FAT
partition booted by SYSLINUX (ADR 0013). Nothing is mounted and no loop device is
used: mtools writes into the image file, and the initramfs and the partition table
are written by ``boot_formats``.

The build is idempotent: its inputs (the recipe, the exact Debian packages, the
boot loader) are digested, and an image whose manifest records the same digest is
reused as it is.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from onestack.catalog import guest_image as recipe
from onestack.core.digest import digest
from onestack.drivers import apt
from onestack.drivers import boot_formats as fmt
from onestack.drivers.host import LocalHost
from onestack.errors import CommandError, GuestImageError, PrerequisiteError

Say = Callable[[str], None]

LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib")
PARTITION_START = 2048  # sectors: 1 MiB, where every partitioning tool starts today
MIB = 1 << 20
FIXED_TIME = 946684800  # 2000-01-01: file times on the FAT file system (FAT starts at 1980)
# Guest facts for whoever uploads and boots the image (glance properties, tests).
MIN_RAM_MB = 128
SSH_USER = "root"  # keys from the config drive or metadata service go to root
CONSOLE_MARKERS = {"dhcp": "onestack-guest: dhcp ok", "ssh": "onestack-guest: ssh ready",
                   "done": "onestack-guest: boot done"}


@dataclass(frozen=True)
class DebianPackage:
    """One exact Debian package version, as apt knows it."""

    name: str
    version: str
    sha256: str

    def line(self) -> str:
        return f"{self.name} {self.version} {self.sha256}"


@dataclass(frozen=True)
class GuestImage:
    """A built test image and what a user of it needs to know."""

    path: Path
    manifest: Path
    inputs_digest: str
    sha256: str
    size: int
    kernel: str
    packages: dict[str, str]
    reused: bool = False
    seconds: float = 0.0
    disk_format: str = "qcow2"
    container_format: str = "bare"
    min_ram_mb: int = MIN_RAM_MB
    ssh_user: str = SSH_USER
    console_markers: dict[str, str] = field(default_factory=lambda: dict(CONSOLE_MARKERS))

    def to_dict(self) -> dict[str, Any]:
        """The image's facts as JSON-ready data."""
        data = asdict(self)
        data.update(path=str(self.path), manifest=str(self.manifest))
        return data


def image_paths(output_dir: Path) -> tuple[Path, Path]:
    """Where the image and its manifest are in an output folder."""
    return (output_dir / f"{recipe.IMAGE_NAME}.qcow2",
            output_dir / f"{recipe.IMAGE_NAME}.json")


def build_image(output_dir: Path, *, cache_dir: Path | None = None, force: bool = False,
                say: Say | None = None, host: LocalHost | None = None) -> GuestImage:
    """Build the test image into ``output_dir`` (or reuse the one already there).

    Debian packages are downloaded with ``apt-get download`` into ``cache_dir``
    (default ``output_dir/cache``); missing build tools are installed with apt."""
    started = time.monotonic()
    report = _reporter(say, started)
    local = host or LocalHost()
    ensure_build_tools(local, report)
    packages = resolve_packages(local, report)
    inputs = inputs_digest(local, packages)
    with _build_lock(output_dir, report):
        existing = None if force else reusable_image(output_dir, inputs)
        if existing is not None:
            report(f"image is up to date: {existing.path}")
            return replace(existing, reused=True, seconds=time.monotonic() - started)
        debs = download_packages(local, packages, cache_dir or output_dir / "cache", report)
        image = _assemble(local, output_dir, packages, debs, inputs, report)
    report(f"image ready: {image.path} ({image.size / MIB:.1f} MiB)")
    return replace(image, seconds=time.monotonic() - started)


@contextmanager
def _build_lock(output_dir: Path, say: Say) -> Iterator[None]:
    """One build at a time per output folder: a second one waits, then reuses."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / ".build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another build of this image is running: waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _reporter(say: Say | None, started: float) -> Say:
    def report(message: str) -> None:
        if say:
            say(f"[{time.monotonic() - started:6.1f}s] {message}")

    return report


# --- build tools ---------------------------------------------------------------------


def missing_tools(host: LocalHost) -> dict[str, str]:
    """Build tools (commands or files) not on this machine -> their Debian package."""
    missing = {tool: package for tool, package in recipe.BUILD_TOOLS.items()
               if host.which(tool) is None}
    missing.update({path: package for path, package in recipe.BUILD_FILES.items()
                    if not Path(path).is_file()})
    return missing


def ensure_build_tools(host: LocalHost, say: Say) -> None:
    """Install the Debian packages of missing build tools (as root), else say which."""
    missing = missing_tools(host)
    if not missing:
        return
    packages = sorted(set(missing.values()))
    named = ", ".join(f"{tool} (Debian package {package})" for tool, package in missing.items())
    if os.geteuid() != 0 or host.which("apt-get") is None:
        raise PrerequisiteError(f"the image build needs {named}",
                                f"install them: apt-get install {' '.join(packages)}")
    say(f"installing build tools: {' '.join(packages)}")
    apt.install(host, packages, say=say)


# --- Debian packages -------------------------------------------------------------------


def resolve_packages(host: LocalHost, say: Say) -> list[DebianPackage]:
    """The exact versions apt would download now: the kernel, then the guest packages."""
    records = _apt_show(host, [recipe.KERNEL_PACKAGE, *recipe.GUEST_PACKAGES], say)
    kernels = [n for n in fmt.depends_names(records[recipe.KERNEL_PACKAGE].get("Depends", ""))
               if n.startswith("linux-image-")]
    if not kernels:
        raise GuestImageError("packages", f"{recipe.KERNEL_PACKAGE} depends on no kernel")
    records.update(_apt_show(host, kernels[:1], say))
    return [_package(records[name], name) for name in [kernels[0], *recipe.GUEST_PACKAGES]]


def _package(record: dict[str, str], name: str) -> DebianPackage:
    if "Version" not in record or "SHA256" not in record:
        raise GuestImageError("packages", f"apt has no version and SHA256 for {name}")
    return DebianPackage(name, record["Version"], record["SHA256"])


def _apt_show(host: LocalHost, names: list[str], say: Say) -> dict[str, dict[str, str]]:
    """apt's candidate record of each package, after an index update if apt lacks one."""
    found = _candidates(host, names)
    if len(found) < len(names):
        say(f"apt does not know {', '.join(sorted(set(names) - set(found)))}: apt-get update")
        try:
            host.run(["apt-get", "update", "-q"], env={"DEBIAN_FRONTEND": "noninteractive"},
                     timeout=900)
        except CommandError as exc:
            raise GuestImageError("packages", f"apt-get update failed: {exc}") from None
        found = _candidates(host, names)
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise GuestImageError("packages", f"no Debian package {', '.join(unknown)} in the "
                              "apt sources", "the image is built from Debian 12 (bookworm) main")
    return found


def _candidates(host: LocalHost, names: list[str]) -> dict[str, dict[str, str]]:
    out = host.run(["apt-cache", "show", "--no-all-versions", *names], check=False)
    records = {r.get("Package", ""): r for r in fmt.apt_records(out)}
    return {name: records[name] for name in names if name in records}


def inputs_digest(host: LocalHost, packages: list[DebianPackage]) -> str:
    """Everything the image is made of: recipe, packages, boot loader (MBR and installer)."""
    syslinux = apt.version(host, "syslinux") or "?"
    mbr = Path(recipe.SYSLINUX_MBR).read_bytes()
    lines = [recipe.recipe_digest(), f"syslinux {syslinux}", digest(mbr),
             *(p.line() for p in packages)]
    return digest("\n".join(lines))


def download_packages(host: LocalHost, packages: list[DebianPackage], cache: Path,
                      say: Say) -> dict[str, Path]:
    """Each package's .deb in the cache (kept: a rebuild downloads nothing)."""
    cache.mkdir(parents=True, exist_ok=True)
    debs = {p.name: _cached_deb(cache, p) for p in packages}
    wanted = [p for p in packages if debs[p.name] is None]
    if wanted:
        say(f"downloading {len(wanted)} Debian packages: {' '.join(p.name for p in wanted)}")
        _apt_download(host, wanted, cache)
    found = {p.name: _cached_deb(cache, p) for p in packages}
    lost = [name for name, path in found.items() if path is None]
    if lost:
        raise GuestImageError("packages", f"apt-get download left no .deb for {', '.join(lost)}")
    ready = {name: path for name, path in found.items() if path is not None}
    prune_cache(cache, ready)
    return ready


def prune_cache(cache: Path, keep: dict[str, Path]) -> list[Path]:
    """Remove other versions of these packages from the cache (``keep``: name -> .deb in
    use); a .deb of any other package is left alone, whoever put it there."""
    removed = [path for name, wanted in keep.items()
               for path in cache.glob(f"{name}_*.deb") if path != wanted]
    for path in removed:
        path.unlink()
    return removed


def _apt_download(host: LocalHost, packages: list[DebianPackage], cache: Path) -> None:
    # As root, apt drops to the _apt user to download, who cannot write into a
    # private cache folder: download as root instead (the files are hash-checked).
    sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
    argv = ["apt-get", *sandbox, "download", *(f"{p.name}={p.version}" for p in packages)]
    try:
        host.run(argv, cwd=cache, timeout=1800)
    except CommandError as exc:
        raise GuestImageError("packages", f"apt-get download failed: {exc}",
                              "check the apt sources (apt-get update)") from None


def _cached_deb(cache: Path, package: DebianPackage) -> Path | None:
    for path in sorted(cache.glob(f"{package.name}_*.deb")):
        if digest(path.read_bytes()) == package.sha256:
            return path
    return None


# --- reuse ---------------------------------------------------------------------------


def reusable_image(output_dir: Path, inputs: str) -> GuestImage | None:
    """The image already in ``output_dir`` if it was built from these inputs, intact."""
    image_path, manifest_path = image_paths(output_dir)
    try:
        manifest = json.loads(manifest_path.read_text())
        data = image_path.read_bytes()
    except (OSError, ValueError):
        return None
    if manifest.get("inputs_digest") != inputs or manifest.get("sha256") != digest(data):
        return None
    return GuestImage(path=image_path, manifest=manifest_path, inputs_digest=inputs,
                      sha256=manifest["sha256"], size=len(data), kernel=manifest["kernel"],
                      packages=dict(manifest["packages"]))


def write_manifest(image: GuestImage, packages: list[DebianPackage]) -> None:
    """The manifest beside the image: inputs digest, packages (with hashes), facts."""
    data = image.to_dict()
    for transient in ("reused", "seconds", "manifest"):
        data.pop(transient)
    data["path"] = image.path.name
    data["debian_packages"] = [asdict(p) for p in packages]
    _write_atomically(image.manifest, (json.dumps(data, indent=2, sort_keys=True) + "\n")
                      .encode())


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --- assembly ------------------------------------------------------------------------


def _assemble(host: LocalHost, output_dir: Path, packages: list[DebianPackage],
              debs: dict[str, Path], inputs: str, say: Say) -> GuestImage:
    output_dir.mkdir(parents=True, exist_ok=True)
    # A scratch folder beside the output (same file system), removed afterwards.
    with tempfile.TemporaryDirectory(prefix=".build-", dir=output_dir) as scratch:
        work = Path(scratch)
        say("unpacking Debian packages")
        trees = {name: _unpack(host, deb, work / "debs" / name) for name, deb in debs.items()}
        kernel_tree = trees[packages[0].name]
        kernel = _kernel_version(kernel_tree)
        say(f"assembling the initramfs (kernel {kernel})")
        entries = _root_entries(host, trees, kernel_tree, kernel)
        initrd = gzip.compress(fmt.newc_archive(entries), compresslevel=9, mtime=0)
        (work / "initrd.img").write_bytes(initrd)
        shutil.copyfile(kernel_tree / "boot" / f"vmlinuz-{kernel}", work / "vmlinuz")
        (work / "syslinux.cfg").write_text(recipe.syslinux_cfg())
        say("writing the boot disk (FAT, SYSLINUX) and converting it to qcow2")
        raw = _boot_disk(host, work, ["vmlinuz", "initrd.img", "syslinux.cfg"])
        image_path, manifest_path = image_paths(output_dir)
        _to_qcow2(host, raw, image_path)
    data = image_path.read_bytes()
    image = GuestImage(path=image_path, manifest=manifest_path, inputs_digest=inputs,
                       sha256=digest(data), size=len(data), kernel=kernel,
                       packages={p.name: p.version for p in packages})
    write_manifest(image, packages)
    return image


def _unpack(host: LocalHost, deb: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    host.run(["dpkg-deb", "-x", str(deb), str(target)])
    return target


def _kernel_version(tree: Path) -> str:
    kernels = sorted(p.name.removeprefix("vmlinuz-") for p in (tree / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise GuestImageError("kernel", f"expected one kernel in the package, found {kernels}")
    return kernels[0]


def _root_entries(host: LocalHost, trees: dict[str, Path], kernel_tree: Path,
                  kernel: str) -> list[fmt.ArchiveEntry]:
    """Every file of the guest's root file system."""
    entries = [*_busybox_entries(host, trees["busybox-static"]),
               *_program_entries(trees),
               *_module_entries(kernel_tree, kernel),
               *_script_entries()]
    return _with_directories(entries)


def _busybox_entries(host: LocalHost, tree: Path) -> Iterator[fmt.ArchiveEntry]:
    busybox = tree / "bin" / "busybox"
    yield fmt.regular("bin/busybox", busybox.read_bytes(), 0o755)
    # The applets this busybox has, as links to it (it runs here: static amd64).
    for applet in host.run([str(busybox), "--list-full"]).split():
        if applet != "bin/busybox" and "/" in applet:
            yield fmt.symlink(applet, "/bin/busybox")


def _program_entries(trees: dict[str, Path]) -> list[fmt.ArchiveEntry]:
    """dropbear's programs, and every library they need, found in the guest packages."""
    roots = list(trees.values())
    entries: dict[str, fmt.ArchiveEntry] = {}
    pending: list[tuple[str, Path]] = []
    for program in recipe.GUEST_PROGRAMS:
        found = _find_file(roots, [program])
        if found is None:
            raise GuestImageError("programs", f"no {program} in the guest packages")
        pending.append((program, found))
    while pending:
        target, source = pending.pop()
        if target in entries:
            continue
        data = source.read_bytes()
        entries[target] = fmt.regular(target, data, 0o755)
        links = fmt.elf_links(data, target)
        interpreter = (links.interpreter or "").lstrip("/")
        if interpreter and interpreter not in entries:
            # The path compiled into the program (/lib64/...) leads to the real file.
            name = Path(interpreter).name
            entries[interpreter] = fmt.symlink(interpreter, f"/lib/x86_64-linux-gnu/{name}")
            pending.append(_library(roots, name, target))
        pending.extend(_library(roots, name, target) for name in links.needed)
    return list(entries.values())


def _library(roots: list[Path], name: str, needed_by: str) -> tuple[str, Path]:
    """Where a library goes in the guest (glibc's default path) and its file here."""
    found = _find_file(roots, [f"{folder}/{name}" for folder in LIB_DIRS])
    if found is None:
        raise GuestImageError("programs", f"{needed_by} needs {name}, which no guest package has",
                              "add the Debian package with it to GUEST_PACKAGES")
    return f"lib/x86_64-linux-gnu/{name}", found


def _find_file(roots: list[Path], candidates: list[str]) -> Path | None:
    """The first candidate path that is a file in one of the unpacked packages, with
    its symbolic links followed inside that package (never onto this machine)."""
    for root in roots:
        for candidate in candidates:
            found = _inside(root, candidate)
            if found is not None:
                return found
    return None


def _inside(root: Path, relative: str, depth: int = 0) -> Path | None:
    path = root / relative
    if depth > 8 or not (path.is_symlink() or path.is_file()):
        return None
    if not path.is_symlink():
        return path
    target = os.readlink(path)
    joined = target.lstrip("/") if target.startswith("/") else str(
        Path(relative).parent / target)
    return _inside(root, os.path.normpath(joined), depth + 1)


def _module_entries(tree: Path, kernel: str) -> list[fmt.ArchiveEntry]:
    """The wanted kernel modules and their dependencies, and the order to load them."""
    base = tree / "lib" / "modules" / kernel
    files = {fmt.module_name(p.name): p for p in base.rglob("*.ko*")}
    depends = {name: fmt.module_depends(path.read_bytes()) for name, path in files.items()}
    order = fmt.load_order(recipe.GUEST_MODULES, depends)
    relative = [str(files[name].relative_to(base)) for name in order]
    entries = [fmt.regular(f"lib/modules/{kernel}/{rel}", files[name].read_bytes())
               for name, rel in zip(order, relative, strict=True)]
    entries.append(fmt.regular("lib/onestack/modules.order", ("\n".join(relative) + "\n")
                               .encode()))
    return entries


def _script_entries() -> list[fmt.ArchiveEntry]:
    files = [fmt.regular(f.path, f.text.encode(), f.mode) for f in recipe.guest_scripts()]
    return [*files, fmt.char_device("dev/console", 5, 1), fmt.char_device("dev/null", 1, 3, 0o666)]


GUEST_DIRECTORIES = {"proc": 0o555, "sys": 0o555, "dev": 0o755, "run": 0o755, "tmp": 0o1777,
                     "var": 0o755, "mnt": 0o755, "root": 0o700, "etc/dropbear": 0o700}


def _with_directories(entries: list[fmt.ArchiveEntry]) -> list[fmt.ArchiveEntry]:
    """The entries with every directory they need (the kernel does not create any)."""
    wanted = dict.fromkeys(fmt.parent_directories(e.path for e in entries), 0o755)
    wanted.update(GUEST_DIRECTORIES)
    wanted.update(dict.fromkeys(fmt.parent_directories(GUEST_DIRECTORIES), 0o755))
    return [*entries, *(fmt.directory(path, mode) for path, mode in wanted.items())]


def _boot_disk(host: LocalHost, work: Path, files: list[str]) -> Path:
    """A raw disk: MBR, one FAT partition at 1 MiB with the files, SYSLINUX installed."""
    payload = sum((work / name).stat().st_size for name in files)
    fs_bytes = _round_up(payload + 4 * MIB, MIB)
    raw = work / "disk.raw"
    with raw.open("wb") as disk:
        disk.truncate(PARTITION_START * fmt.SECTOR + fs_bytes)
    offset = PARTITION_START * fmt.SECTOR
    # The same inputs give the same bytes: a fixed volume id, --invariant and
    # SOURCE_DATE_EPOCH instead of the clock for mkfs.vfat and mtools (under syslinux).
    env = {"MTOOLS_SKIP_CHECK": "1", "SOURCE_DATE_EPOCH": str(FIXED_TIME)}
    host.run(["mkfs.vfat", "--invariant", "-F", "16", "-n", "ONESTACK", "-i", "05e57ac4",
              f"--offset={PARTITION_START}", str(raw), str(fs_bytes // 1024)], env=env)
    for name in files:  # with -m, mcopy keeps these times: the disk depends on content only
        os.utime(work / name, (FIXED_TIME, FIXED_TIME))
    host.run(["mcopy", "-m", "-i", f"{raw}@@{offset}", *(str(work / n) for n in files), "::"],
             env=env)
    host.run(["syslinux", f"--offset={offset}", "--install", str(raw)], env=env)
    mbr = fmt.mbr_sector(Path(recipe.SYSLINUX_MBR).read_bytes(), PARTITION_START,
                         fs_bytes // fmt.SECTOR, partition_type=0x0E)
    with raw.open("r+b") as disk:
        disk.write(mbr)
    return raw


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _to_qcow2(host: LocalHost, raw: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    host.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", "-c", str(raw), str(tmp)],
             timeout=900)
    os.replace(tmp, target)
