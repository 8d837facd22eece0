"""``onestack hardware`` front-end: which site, confirmation, missing credentials, notes.

Nodes point at closed loopback ports (connection refused at once), so no
emulator is needed; the inventory for firmware apply is stored directly.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hardware"))

from hw_builders import r650  # noqa: E402
from tests.support.redfish.emulator import free_ports  # noqa: E402

from onestack.cli.main import main  # noqa: E402
from onestack.drivers.secrets import SecretStore  # noqa: E402
from onestack.hardware.store import InventoryStore  # noqa: E402
from onestack.model.paths import SitePaths  # noqa: E402


def _site(name: str, ports: list[int], creds: list[str]) -> str:
    lines = [f"name: {name}", 'release: "2026.1"', "hosts:", "  - name: aio", "nodes:"]
    for port, cred in zip(ports, creds, strict=True):
        lines += [f"  - name: n{port}", f"    bmc: http://127.0.0.1:{port}",
                  f"    credentials: {cred}"]
    return "\n".join(lines) + "\n"


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
          *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["onestack", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture
def other_site(tmp_path: Path) -> tuple[Path, Path, list[int]]:
    """A home, and a site file elsewhere declaring site ``other`` with two nodes."""
    ports = free_ports(2)
    site_file = tmp_path / "other.yaml"
    site_file.write_text(_site("other", ports, ["bmc", "nobody"]))
    home = tmp_path / "home"
    store = SecretStore(SitePaths(home, "other").secrets_file)
    store.set("bmc.username", "admin")
    store.set("bmc.password", "pw")
    return home, site_file, ports


def test_site_file_decides_whose_state_and_secrets(
        other_site: tuple[Path, Path, list[int]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home, site_file, ports = other_site
    code, out, err = _main(monkeypatch, capsys, "--home", str(home), "hardware", "discover",
                           "--json", "--site-file", str(site_file))
    assert code == 1, err
    status = {i["node"]: i["status"] for i in json.loads(out)}
    # The credentials came from site "other"'s secrets (so the node was tried).
    assert status == {f"n{ports[0]}": "unreachable", f"n{ports[1]}": "no-credentials"}
    db = SitePaths(home, "other").state_db
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert not SitePaths(home, "lab").site.exists()
    assert "discovering" not in err  # fewer than 10 nodes: no progress line


def test_explicit_site_naming_another_site_is_refused(
        other_site: tuple[Path, Path, list[int]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home, site_file, _ = other_site
    code, _, err = _main(monkeypatch, capsys, "--home", str(home), "--site", "lab",
                         "hardware", "discover", "--site-file", str(site_file))
    assert code == 1
    assert f"error: --site 'lab': {site_file} describes site other" in err
    assert "Traceback" not in err
    assert not SitePaths(home, "lab").site.exists()


def test_discover_table_names_the_bmc_it_could_not_reach(
        other_site: tuple[Path, Path, list[int]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home, site_file, ports = other_site
    _, out, err = _main(monkeypatch, capsys, "--home", str(home), "hardware", "discover",
                        "--site-file", str(site_file))
    row = next(line for line in out.splitlines() if line.startswith(f"n{ports[0]} "))
    assert f"http://127.0.0.1:{ports[0]}: cannot connect: " in row
    assert row.endswith("Connection refused")
    assert "2 of 2 nodes could not be read" in err  # no-credentials counts as unread


def test_power_acts_on_nodes_with_credentials_and_reports_the_others(
        other_site: tuple[Path, Path, list[int]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home, site_file, ports = other_site
    code, out, _ = _main(monkeypatch, capsys, "--home", str(home), "hardware", "power", "on",
                         f"n{ports[1]}", f"n{ports[0]}", "--json", "--site-file",
                         str(site_file))
    assert code == 1
    got = [(o["node"], o["ok"], o["detail"]) for o in json.loads(out)]
    # Site-file order; the node with credentials was attempted (its BMC refused).
    assert got[0][0] == f"n{ports[0]}" and "Connection refused" in got[0][2]
    assert got[1] == (f"n{ports[1]}", False,
                      "not attempted: secrets have no nobody.username/.password")


def test_firmware_apply_without_terminal_asks_for_yes(
        other_site: tuple[Path, Path, list[int]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home, site_file, ports = other_site
    InventoryStore(SitePaths(home, "other").state_db).save(
        [r650(node=f"n{ports[0]}", firmware={"BIOS": "1.7.0", "BMC": "6.10.30.00"})])
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    code, out, err = _main(monkeypatch, capsys, "--home", str(home), "hardware", "firmware",
                           "apply", "--site-file", str(site_file))
    assert code == 2
    assert "error: firmware apply needs confirmation and there is no terminal" in err
    assert "hint: run it again with --yes" in err
    assert "BIOS" in out  # the plan was shown before refusing
