"""Opening a site: its file, the release in force, secrets on demand."""

from __future__ import annotations

from pathlib import Path

import pytest

from onestack.errors import InvalidOptionError, SiteFileError, SiteNotFoundError
from onestack.plans.deploy import required_secrets
from onestack.state.journal import Journal
from onestack.state.site import open_site, series_of, service_context

SITE = 'name: edge\nrelease: "2026.2"\nport_offset: 7\nhosts:\n  - name: ctl1\n'


def test_open_site_default_lab(tmp_path: Path) -> None:
    handle = open_site(tmp_path, "lab")
    assert handle.site_file is None
    assert (handle.site.name, handle.site.release) == ("lab", "2026.1")
    assert handle.paths.site == tmp_path / "sites" / "lab"
    assert open_site(tmp_path, "lab", release="2026.2").site.release == "2026.2"
    assert not (tmp_path / "sites").exists()  # opening reads only


def test_open_site_explicit_file(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(SITE)
    handle = open_site(tmp_path, None, path)
    assert handle.site_file == path
    assert (handle.site.name, handle.site.release, handle.site.port_offset) == ("edge",
                                                                               "2026.2", 7)
    assert handle.paths.site == tmp_path / "sites" / "edge"


def test_open_site_uses_recorded_site_file(tmp_path: Path) -> None:
    own = tmp_path / "sites" / "lab" / "site.yaml"
    own.parent.mkdir(parents=True)
    own.write_text(SITE.replace("edge", "lab"))
    handle = open_site(tmp_path, "lab")
    assert handle.site_file == own
    assert handle.site.hosts[0].name == "ctl1"


def test_open_site_bad_files(tmp_path: Path) -> None:
    with pytest.raises(SiteFileError, match="cannot read site file"):
        open_site(tmp_path, None, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SITE.replace("port_offset: 7", "port_offset: -1"))
    with pytest.raises(SiteFileError, match=f"{bad}:3: port_offset: "):
        open_site(tmp_path, None, bad)


def test_site_option_and_site_file_must_agree(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(SITE)
    assert open_site(tmp_path, "edge", path).site.name == "edge"
    with pytest.raises(InvalidOptionError, match="describes site edge"):
        open_site(tmp_path, "lab", path)


def test_unknown_release_is_refused_when_the_site_is_opened(tmp_path: Path) -> None:
    # issue 12.12: found only after the lock and secrets were written, naming no file.
    path = tmp_path / "edge.yaml"
    path.write_text(SITE.replace("2026.2", "2099.1"))
    with pytest.raises(SiteFileError) as info:
        open_site(tmp_path, None, path)
    assert (info.value.path, info.value.line, info.value.field_path) == (str(path), 2,
                                                                         "release")
    assert list(tmp_path.iterdir()) == [path]


def test_a_site_that_does_not_exist_is_refused_creating_nothing(tmp_path: Path) -> None:
    with pytest.raises(SiteNotFoundError) as info:
        open_site(tmp_path, "lab", must_exist=True)
    assert "no site lab under" in str(info.value)
    assert not (tmp_path / "sites").exists()
    own = tmp_path / "sites" / "edge" / "site.yaml"
    own.parent.mkdir(parents=True)
    own.write_text(SITE)
    with pytest.raises(SiteNotFoundError) as info:
        open_site(tmp_path, "lab", must_exist=True)
    assert info.value.hint == f"sites under {tmp_path}: edge"
    assert open_site(tmp_path, "edge", must_exist=True).site_file == own


def test_series_recorded_in_journal_wins(tmp_path: Path) -> None:
    handle = open_site(tmp_path, "lab")
    assert series_of(handle) == "2026.1"
    journal = Journal(handle.paths.state_db)
    journal.set_fact("release", "2026.2")
    journal.close()
    assert series_of(handle) == "2026.2"


def test_service_context_generates_secrets_only_when_asked(tmp_path: Path) -> None:
    handle = open_site(tmp_path, "lab")
    ctx = service_context(handle, generate=False)
    assert not handle.paths.secrets_file.exists()
    assert set(ctx.secrets.values()) == {""}
    ctx = service_context(handle)
    assert handle.paths.secrets_file.stat().st_mode & 0o777 == 0o600
    assert sorted(ctx.secrets) == sorted(required_secrets())
    assert ctx.secrets == service_context(handle).secrets  # stable
    assert ctx.venv == tmp_path / "releases" / "2026.1" / "venv"
