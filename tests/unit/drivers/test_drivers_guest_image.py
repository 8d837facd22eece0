"""The image builder's decisions: which tools are missing, when an image is reused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from onestack.cli.main import main
from onestack.core.digest import digest
from onestack.drivers import guest_image
from onestack.drivers.guest_image import (
    DebianPackage,
    GuestImage,
    image_paths,
    reusable_image,
    write_manifest,
)
from onestack.errors import GuestImageError, PrerequisiteError

PACKAGES = [DebianPackage("linux-image-6.1.0-57-cloud-amd64", "6.1.192-3", "a" * 64),
            DebianPackage("busybox-static", "1:1.35.0-4", "b" * 64)]


def _built(folder: Path, inputs: str = "inputs-1") -> GuestImage:
    folder.mkdir(parents=True, exist_ok=True)
    path, manifest = image_paths(folder)
    path.write_bytes(b"QFI\xfb qcow2 bytes")
    image = GuestImage(path=path, manifest=manifest, inputs_digest=inputs,
                       sha256=digest(path.read_bytes()), size=path.stat().st_size,
                       kernel="6.1.0-57-cloud-amd64",
                       packages={p.name: p.version for p in PACKAGES})
    write_manifest(image, PACKAGES)
    return image


def test_an_image_built_from_the_same_inputs_is_reused(tmp_path: Path) -> None:
    built = _built(tmp_path)
    found = reusable_image(tmp_path, "inputs-1")
    assert found is not None
    assert (found.path, found.sha256, found.kernel) == (built.path, built.sha256, built.kernel)
    assert found.packages == {"linux-image-6.1.0-57-cloud-amd64": "6.1.192-3",
                              "busybox-static": "1:1.35.0-4"}


def test_other_inputs_or_a_changed_image_are_not_reused(tmp_path: Path) -> None:
    built = _built(tmp_path)
    assert reusable_image(tmp_path, "inputs-2") is None
    built.path.write_bytes(b"truncated")
    assert reusable_image(tmp_path, "inputs-1") is None


def test_nothing_to_reuse_in_an_empty_or_broken_folder(tmp_path: Path) -> None:
    assert reusable_image(tmp_path / "none", "x") is None
    built = _built(tmp_path)
    built.manifest.write_text("{not json")
    assert reusable_image(tmp_path, "inputs-1") is None


def test_manifest_records_packages_and_facts(tmp_path: Path) -> None:
    import json

    built = _built(tmp_path)
    manifest = json.loads(built.manifest.read_text())
    assert manifest["path"] == "onestack-guest.qcow2"
    assert manifest["debian_packages"][0] == {"name": "linux-image-6.1.0-57-cloud-amd64",
                                              "version": "6.1.192-3", "sha256": "a" * 64}
    assert manifest["disk_format"] == "qcow2" and manifest["ssh_user"] == "root"
    assert "reused" not in manifest and "seconds" not in manifest


class _Host:
    """A LocalHost with only some commands installed."""

    def __init__(self, present: set[str]) -> None:
        self.present = present

    def which(self, program: str) -> str | None:
        return f"/usr/bin/{program}" if program in self.present else None


def test_missing_tools_name_their_packages() -> None:
    host = _Host({"apt-get", "dpkg-deb", "mcopy", "syslinux", "qemu-img"})
    missing = guest_image.missing_tools(host)  # type: ignore[arg-type]
    assert missing["mkfs.vfat"] == "dosfstools"
    assert "mcopy" not in missing


def test_without_root_a_missing_tool_is_an_error_naming_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest_image.os, "geteuid", lambda: 1000)
    host = _Host({"apt-get", "dpkg-deb", "mcopy", "syslinux"})
    with pytest.raises(PrerequisiteError) as info:
        guest_image.ensure_build_tools(host, print)  # type: ignore[arg-type]
    assert "qemu-img (Debian package qemu-utils)" in str(info.value)
    assert info.value.hint is not None and "qemu-utils" in info.value.hint


def _run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["onestack", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:  # main() exits only on errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_cli_builds_into_the_home_and_reports(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    seen: list[Path] = []

    def fake_build(output: Path, **_: object) -> GuestImage:
        seen.append(output)
        return _built(output)

    monkeypatch.setattr("onestack.cli.image.build_image", fake_build)
    code, out, _ = _run_cli(monkeypatch, capsys, "--home", str(tmp_path), "image", "build")
    assert code == 0 and seen == [tmp_path / "images"]
    assert "onestack-guest.qcow2" in out and "kernel 6.1.0-57-cloud-amd64" in out
    code, out, _ = _run_cli(monkeypatch, capsys, "--home", str(tmp_path), "image", "build",
                            "--output", str(tmp_path / "elsewhere"), "--json")
    assert code == 0 and '"disk_format": "qcow2"' in out
    assert seen[-1] == tmp_path / "elsewhere"


def test_cli_reports_a_build_error_without_traceback(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    def failing(output: Path, **_: object) -> GuestImage:
        raise GuestImageError("packages", "no Debian package dropbear-bin in the apt sources",
                              "the image is built from Debian 12 (bookworm) main")

    monkeypatch.setattr("onestack.cli.image.build_image", failing)
    code, _, err = _run_cli(monkeypatch, capsys, "--home", str(tmp_path), "image", "build")
    assert code == 1
    assert "error: guest image: packages: no Debian package dropbear-bin" in err
    assert "hint: the image is built from Debian 12" in err


def test_symlinks_of_a_package_are_followed_inside_it(tmp_path: Path) -> None:
    tree = tmp_path / "libc6"
    (tree / "lib/x86_64-linux-gnu").mkdir(parents=True)
    (tree / "lib64").mkdir()
    real = tree / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    real.write_bytes(b"\x7fELF")
    # An absolute link names a path of the guest, never of this machine.
    (tree / "lib64/ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    (tree / "lib/x86_64-linux-gnu/libz.so.1").symlink_to("libz.so.1.2.13")
    (tree / "lib/x86_64-linux-gnu/libz.so.1.2.13").write_bytes(b"zlib")
    (tree / "lib/x86_64-linux-gnu/libpasswd.so").symlink_to("/etc/passwd")
    assert guest_image._find_file([tree], ["lib64/ld-linux-x86-64.so.2"]) == real
    assert guest_image._find_file([tree], ["lib/x86_64-linux-gnu/libz.so.1"]) == (
        tree / "lib/x86_64-linux-gnu/libz.so.1.2.13")
    assert guest_image._find_file([tree], ["lib/x86_64-linux-gnu/libpasswd.so"]) is None


def test_a_library_no_package_has_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(GuestImageError, match="usr/sbin/dropbear needs libgmp.so.10"):
        guest_image._library([tmp_path], "libgmp.so.10", "usr/sbin/dropbear")


def test_prune_cache_removes_other_versions_of_the_packages_only(tmp_path: Path) -> None:
    kept = tmp_path / "busybox-static_1.35_amd64.deb"
    old = tmp_path / "busybox-static_1.34_amd64.deb"
    unrelated = tmp_path / "openssh-client_9.2_amd64.deb"
    for path in (kept, old, unrelated):
        path.write_text("x")
    assert guest_image.prune_cache(tmp_path, {"busybox-static": kept}) == [old]
    assert kept.exists() and unrelated.exists() and not old.exists()
