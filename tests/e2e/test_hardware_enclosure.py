"""Several systems behind one BMC with one shared firmware inventory (issue 13).

Three blades of one enclosure share an endpoint and a FirmwareInventory whose
members are linked to their system, manager or adapter through RelatedItem.
Discovery, plan and apply must keep each blade's firmware to itself, and a BMC
that installs an image on another blade must be reported as a failure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.redfish.emulator import free_ports, running_fleet  # noqa: E402
from tests.support.redfish.fleet import FakeBmc, secrets_for, site_yaml  # noqa: E402

from onestack.cli.main import cli  # noqa: E402
from onestack.drivers.secrets import SecretStore  # noqa: E402
from onestack.model.paths import SitePaths  # noqa: E402

pytestmark = pytest.mark.e2e
INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"


def _firmware(bios: str) -> dict[str, str]:
    return {"BIOS": bios, "BMC": "6.10.30.00", "Intel E810-XXVDA2": "4.40"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("hwenclosure")
    port = free_ports(1)[0]
    blades = [
        FakeBmc("blade-a", port, enclosure="encl1", firmware=_firmware("1.7.0")),
        FakeBmc("blade-b", port, enclosure="encl1", firmware=_firmware("1.9.0"),
                fault="firmware-wrong-node"),
        FakeBmc("blade-c", port, enclosure="encl1", firmware=_firmware("1.10.2")),
    ]
    root = work / "home"
    paths = SitePaths(root, "hwlab")
    paths.site.mkdir(parents=True)
    paths.site_file.write_text(site_yaml(blades))
    store = SecretStore(paths.secrets_file)
    for name, value in secrets_for(blades).items():
        store.set(name, value)
    with running_fleet(blades, work, power_delay_s=0.2):
        yield root


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), "--site", "hwlab", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _discovered(home: Path) -> dict[str, dict[str, tuple[str, str | None]]]:
    code, out, err = run(home, "hardware", "discover", "--json")
    assert code == 0, err
    return {i["node"]: {f["component"]: (f["version"], f["inventory_uri"])
                        for f in i["firmware"]} for i in json.loads(out)}


def _plan(home: Path) -> list[tuple[str, str, str, str]]:
    code, out, _ = run(home, "hardware", "firmware", "plan", "--json")
    assert code == 0
    return [(c["node"], c["component"], c["current"], c["target"]) for c in json.loads(out)]


def test_shared_inventory_firmware_stays_with_its_blade(home: Path) -> None:
    found = _discovered(home)
    assert {node: fw["BIOS"] for node, fw in found.items()} == {
        "blade-a": ("1.7.0", f"{INVENTORY}/blade-a-BIOS"),
        "blade-b": ("1.9.0", f"{INVENTORY}/blade-b-BIOS"),
        "blade-c": ("1.10.2", f"{INVENTORY}/blade-c-BIOS"),
    }
    assert found["blade-b"]["Intel E810-XXVDA2"] == (
        "4.40", f"{INVENTORY}/blade-b-Intel-E810-XXVDA2")
    assert _plan(home) == [
        ("blade-a", "BIOS", "1.7.0", f"{INVENTORY}/blade-a-BIOS"),
        ("blade-b", "BIOS", "1.9.0", f"{INVENTORY}/blade-b-BIOS"),
    ]


def test_apply_on_one_blade_touches_only_its_members(home: Path) -> None:
    _discovered(home)
    code, out, err = run(home, "hardware", "firmware", "apply", "blade-a", "--yes", "--json",
                         "--task-timeout", "10")
    assert code == 0, err
    assert [(o["node"], o["component"], o["status"], o["version_after"])
            for o in json.loads(out)] == [("blade-a", "BIOS", "updated", "1.10.2")]
    bios = {node: fw["BIOS"][0] for node, fw in _discovered(home).items()}
    assert bios == {"blade-a": "1.10.2", "blade-b": "1.9.0", "blade-c": "1.10.2"}


def test_update_landing_on_another_blade_is_caught(home: Path) -> None:
    _discovered(home)
    code, out, err = run(home, "hardware", "firmware", "apply", "blade-b", "--yes", "--json",
                         "--task-timeout", "10")
    assert code == 1
    [outcome] = json.loads(out)
    assert (outcome["node"], outcome["status"], outcome["version_after"]) == (
        "blade-b", "failed", "1.9.0")
    assert "the update did not reach this node" in outcome["detail"]
    assert "1 of 1 firmware updates did not succeed" in err
    assert _plan(home) == [("blade-b", "BIOS", "1.9.0", f"{INVENTORY}/blade-b-BIOS")]
