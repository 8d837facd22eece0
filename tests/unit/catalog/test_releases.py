"""Release bundles shipped in the package: loading, locks, upgrade rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from onestack.catalog.releases import (
    ReleaseBundle,
    available_series,
    can_upgrade,
    canonical_name,
    check_upgrade,
    list_bundles,
    load_bundle,
    load_bundle_from,
    parse_lock,
    releases_dir,
)
from onestack.errors import CatalogError

# The shared reference folder sits beside the repository (also in CI).
REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "reference"
SERIES = ["2026.1", "2026.2"]
EXPECTED_SERVICES = {
    "2026.1": {"keystone": "29.1.0", "glance": "32.0.0", "openstack-placement": "15.0.0",
               "nova": "33.0.2", "neutron": "28.0.2"},
    "2026.2": {"keystone": "30.0.0", "glance": "33.0.0", "openstack-placement": "16.0.0",
               "nova": "34.0.0", "neutron": "29.0.0"},
}
RUNTIME = {"pymysql", "pymemcache", "python-memcached", "pyuwsgi", "python-openstackclient",
           "openstacksdk"}


def test_shipped_series() -> None:
    assert available_series() == SERIES
    assert [b.series for b in list_bundles()] == SERIES


@pytest.mark.parametrize("series", SERIES)
def test_bundle_identity(series: str) -> None:
    bundle = load_bundle(series)
    assert bundle.series == series
    assert bundle.version == f"{series}.{bundle.revision}"
    assert bundle.python == "3.11"
    assert bundle.services == EXPECTED_SERVICES[series]


@pytest.mark.parametrize("series", SERIES)
def test_every_locked_package_is_pinned_and_hashed(series: str) -> None:
    text = (releases_dir() / series / "lock.txt").read_text()
    lock = load_bundle(series).lock
    assert len(lock.packages) > 150
    assert len(lock.packages) == len(re.findall(r"^[A-Za-z0-9]", text, re.M))
    for package in lock.packages:
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", package.version), package
        assert package.hashes, f"{package.name} has no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in package.hashes)
    keys = [p.key for p in lock.packages]
    assert len(keys) == len(set(keys)), "a package is locked twice"


@pytest.mark.parametrize("series", SERIES)
def test_services_and_runtime_in_lock_match_bundle(series: str) -> None:
    bundle = load_bundle(series)
    versions = bundle.lock.versions()
    for name, version in bundle.services.items():
        assert versions[canonical_name(name)] == version
    runtime = {canonical_name(n) for n in bundle.runtime}
    assert runtime >= RUNTIME
    assert runtime <= set(versions)


@pytest.mark.parametrize("series", SERIES)
def test_lock_follows_upstream_constraints_except_declared_overrides(series: str) -> None:
    bundle = load_bundle(series)
    upstream = REFERENCE / bundle.constraints.source
    if not upstream.exists():
        pytest.skip(f"{upstream} not available here")
    pins = {}
    for line in upstream.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)===([^;\s]+)(;.*)?$", line.strip())
        if match and not match.group(3):
            pins[canonical_name(match.group(1))] = match.group(2)
    overrides = {canonical_name(n): o.version for n, o in bundle.constraints.overrides.items()}
    for package in bundle.lock.packages:
        expected = overrides.get(package.key, pins.get(package.key))
        if expected is not None:
            assert package.version == expected, package.name
    noted = {canonical_name(d.package) for d in bundle.deviations}
    assert set(overrides) <= noted


@pytest.mark.parametrize("series", SERIES)
def test_build_from_source_packages_are_locked(series: str) -> None:
    bundle = load_bundle(series)
    for name in bundle.build_from_source:
        assert bundle.lock.get(name) is not None, name
    assert {"ovs", "simplegeneric"} <= {canonical_name(n) for n in bundle.build_from_source}


@pytest.mark.parametrize("series", SERIES)
def test_infrastructure_and_firmware(series: str) -> None:
    bundle = load_bundle(series)
    packages = {i.package for i in bundle.infrastructure.values()}
    assert packages == {"mariadb-server", "rabbitmq-server", "haproxy", "memcached",
                        "openvswitch-switch", "ovn-central", "ovn-host", "libvirt-daemon",
                        "qemu-system-x86"}
    assert bundle.firmware.hcl
    assert "uwsgi" in bundle.commands and "keystone-manage" in bundle.commands


def test_parse_lock_joins_continuations_and_skips_comments() -> None:
    text = (
        "# header\n"
        "foo==1.0 \\\n"
        "    --hash=sha256:" + "a" * 64 + " \\\n"
        "    --hash=sha256:" + "b" * 64 + "\n"
        "    # via bar\n"
        "Bar_Baz==2.0.post1 --hash=sha256:" + "c" * 64 + "  # via -r in\n"
    )
    lock = parse_lock(text)
    assert [(p.name, p.version, len(p.hashes)) for p in lock.packages] == [
        ("foo", "1.0", 2), ("Bar_Baz", "2.0.post1", 1)]
    bar = lock.get("bar-baz")
    assert bar is not None
    assert bar.requirement_line() == "Bar_Baz==2.0.post1 --hash=sha256:" + "c" * 64


def test_parse_lock_rejects_ranges() -> None:
    with pytest.raises(CatalogError):
        parse_lock("foo>=1.0 --hash=sha256:" + "a" * 64 + "\n")


def test_unknown_series() -> None:
    with pytest.raises(CatalogError, match="no such release bundle"):
        load_bundle("1999.1")


def _copy_bundle(tmp_path: Path, series: str, edit: str = "", replace: str = "") -> Path:
    folder = tmp_path / series
    folder.mkdir()
    source = releases_dir() / "2026.1"
    text = (source / "bundle.yaml").read_text()
    text = text.replace('series: "2026.1"', f'series: "{series}"')
    if edit:
        text = text.replace(edit, replace)
    (folder / "bundle.yaml").write_text(text)
    (folder / "lock.txt").write_text((source / "lock.txt").read_text())
    return folder


def test_invalid_bundle_names_field(tmp_path: Path) -> None:
    folder = _copy_bundle(tmp_path, "2026.1", "revision: 0", "revision: -1")
    with pytest.raises(CatalogError, match="revision"):
        load_bundle_from(folder)


def test_unknown_field_rejected(tmp_path: Path) -> None:
    folder = _copy_bundle(tmp_path, "2026.1", "slurp: true", "slurp: true\nsurprise: 1")
    with pytest.raises(CatalogError, match="surprise"):
        load_bundle_from(folder)


def test_series_must_match_folder(tmp_path: Path) -> None:
    folder = _copy_bundle(tmp_path, "2026.1", 'series: "2026.1"', 'series: "2026.3"')
    with pytest.raises(CatalogError, match="does not match"):
        load_bundle_from(folder)


def _bundle(series: str, revision: int, upgrade_from: list[str]) -> ReleaseBundle:
    base = load_bundle("2026.1")
    return base.model_copy(update={"series": series, "revision": revision,
                                   "upgrade_from": upgrade_from})


def test_upgrade_rules() -> None:
    assert load_bundle("2026.2").upgrade_from == ["2026.1"]
    target = load_bundle("2026.2")
    assert can_upgrade("2026.1.0", target)
    assert can_upgrade("2026.2.0", target)  # same bundle: nothing to do, allowed
    assert not can_upgrade("2025.2.0", target)  # skips are only allowed if declared
    with pytest.raises(CatalogError, match="downgrade"):
        check_upgrade("2026.2.0", load_bundle("2026.1"))
    assert can_upgrade("2026.1.0", _bundle("2026.1", 1, []))  # newer revision, same series
    assert not can_upgrade("2026.1.2", _bundle("2026.1", 1, []))
