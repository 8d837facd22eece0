"""Discovery and certification of a generated fleet, over HTTP, against sushy-tools.

The fleet mixes certified machines, uncertified models and components, firmware
below the baseline, sick, small, unreachable, wrongly-credentialed, malformed,
partial, slow and TLS-broken BMCs; each node's outcome is asserted exactly.
"""

from __future__ import annotations

import json
import sys
import time
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
HPE_PARTS = {
    "manufacturer": "HPE", "model": "ProLiant DL360 Gen10 Plus",
    "nic_model": ("Broadcom", "BCM57414"),
    "controller_model": "HPE Smart Array P408i-a SR Gen10",
    "drive_model": "HPE 1.92TB NVMe RI SFF", "drive_bytes": 1920 * 10**9,
    "firmware": {"BIOS": "U46 v1.72", "BMC": "2.81", "Broadcom BCM57414": "222.1.68.0"},
}


def _fleet(ports: list[int]) -> list[FakeBmc]:
    p = iter(ports)
    return [
        FakeBmc("r650-good", next(p)),
        FakeBmc("hpe-good", next(p), **HPE_PARTS),  # type: ignore[arg-type]
        FakeBmc("supermicro", next(p), manufacturer="Supermicro", model="SYS-1029U-TRT"),
        FakeBmc("realtek-nic", next(p), nic_model=("Realtek", "RTL8111"),
                firmware={"BIOS": "1.10.2", "BMC": "6.10.30.00", "Realtek RTL8111": "1.0"}),
        FakeBmc("old-bios", next(p), firmware={"BIOS": "1.7.0", "BMC": "6.10.30.00",
                                               "Intel E810-XXVDA2": "4.40"}),
        FakeBmc("bios-between", next(p), firmware={"BIOS": "1.9.0", "BMC": "6.10.30.00",
                                                   "Intel E810-XXVDA2": "4.40"}),
        FakeBmc("small-mem", next(p), memory_gib=64),
        FakeBmc("sick", next(p), health="Critical"),
        FakeBmc("r750-storage", next(p), model="PowerEdge R750", drive_count=6,
                drive_model="Dell Ent NVMe P5500 RI U.2 3.84TB", drive_bytes=3840 * 10**9),
        FakeBmc("wrong-creds", next(p)),
        FakeBmc("malformed", next(p), fault="malformed"),
        FakeBmc("storage-broken", next(p), fault="storage-error"),
        FakeBmc("slow", next(p), fault="slow"),
    ]


ROLES = {"r650-good": "compute", "small-mem": "compute", "r750-storage": "storage",
         "hpe-good": "storage"}


@pytest.fixture(scope="module")
def fleet_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[FakeBmc]]]:
    """A running fleet and an onestack home whose site declares every node."""
    work = tmp_path_factory.mktemp("hwfleet")
    ports = free_ports(15)
    bmcs = _fleet(ports[:13])
    closed_port, tls_port = ports[13], bmcs[0].port
    extra = [
        {"name": "unreachable", "bmc": f"http://127.0.0.1:{closed_port}",
         "credentials": "bmc-r650-good"},
        {"name": "tls-broken", "bmc": f"https://127.0.0.1:{tls_port}",
         "credentials": "bmc-r650-good"},
        {"name": "no-creds", "bmc": bmcs[0].url, "credentials": "nobody"},
    ]
    home = work / "home"
    paths = SitePaths(home, "hwlab")
    paths.site.mkdir(parents=True)
    paths.site_file.write_text(site_yaml(bmcs, extra, roles=ROLES))
    store = SecretStore(paths.secrets_file)
    for name, value in secrets_for(bmcs, wrong={"wrong-creds"}).items():
        store.set(name, value)
    with running_fleet(bmcs, work):
        yield home, bmcs


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), "--site", "hwlab", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def discovered(fleet_site: tuple[Path, list[FakeBmc]]) -> tuple[Path, dict[str, dict], float]:
    home, _ = fleet_site
    started = time.monotonic()
    code, out, err = run(home, "hardware", "discover", "--json", "--timeout", "1",
                         "--node-deadline", "20")
    took = time.monotonic() - started
    assert code == 1, err  # some nodes could not be read at all
    assert "discovering: 16/16 nodes" in err  # no-creds counts as done at once
    return home, {i["node"]: i for i in json.loads(out)}, took


def test_discovery_gives_each_node_its_own_status(discovered: tuple) -> None:
    _, inv, took = discovered
    status = {name: i["status"] for name, i in inv.items()}
    assert status == {
        "r650-good": "ok", "hpe-good": "ok", "supermicro": "ok", "realtek-nic": "ok",
        "old-bios": "ok", "bios-between": "ok", "small-mem": "ok", "sick": "ok",
        "r750-storage": "ok", "wrong-creds": "auth-failed", "malformed": "malformed",
        "storage-broken": "partial", "slow": "timeout", "unreachable": "unreachable",
        "tls-broken": "tls-error", "no-creds": "no-credentials",
    }
    # The slow BMC (3 s per answer, 1 s timeout) did not hold the others back.
    assert took < 8, took
    assert "Connection refused" in inv["unreachable"]["reason"]
    assert "SSL" in inv["tls-broken"]["reason"]
    assert inv["storage-broken"]["problems"] == [
        "storage: HTTP 500: storage subsystem not responding"]
    assert inv["storage-broken"]["cpus"] and inv["storage-broken"]["storage"] == []


def bmcs_by_name(fleet: tuple[Path, list[FakeBmc]]) -> dict[str, FakeBmc]:
    return {b.name: b for b in fleet[1]}


def test_discovery_reads_the_whole_machine(discovered: tuple,
                                           fleet_site: tuple[Path, list[FakeBmc]]) -> None:
    fleet = fleet_site
    _, inv, _ = discovered
    node = inv["r750-storage"]
    assert (node["manufacturer"], node["model"], node["serial"]) == (
        "Dell Inc.", "PowerEdge R750", "SN-r750-storage")
    assert [(c["model"], c["cores"]) for c in node["cpus"]] == [
        ("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 24)] * 2
    assert node["memory_gib"] == 512
    assert [(n["speed_mbps"], n["link"]) for n in node["nics"]] == [(25000, "LinkUp")] * 2
    assert node["nics"][0]["mac"].startswith("52:54:")
    drives = node["storage"][0]["drives"]
    assert len(drives) == 6 and drives[0]["media_type"] == "SSD"
    assert drives[0]["capacity_bytes"] == 3840 * 10**9
    chassis = bmcs_by_name(fleet)["r750-storage"].chassis_uuid
    assert node["nic_adapters"] == [{"name": "Intel E810-XXVDA2", "manufacturer": "Intel",
                                     "model": "E810-XXVDA2", "firmware_version": "4.40",
                                     "uri": f"/redfish/v1/Chassis/{chassis}/NetworkAdapters/"
                                            "NIC.Slot.1"}]
    assert {f["component"]: f["version"] for f in node["firmware"]} == {
        "BIOS": "1.10.2", "BMC": "6.10.30.00", "Intel E810-XXVDA2": "4.40"}
    assert node["power_state"] == "On" and node["health"] == "OK"
    assert node["discovered_at"]


def test_certification_outcome_of_every_node(discovered: tuple) -> None:
    home, _, _ = discovered
    code, out, _ = run(home, "hardware", "certify", "--json")
    assert code == 1
    got = {c["node"]: (c["certified"], sorted({r["code"] for r in c["reasons"]}),
                       c["eligible_roles"]) for c in json.loads(out)}
    assert got == {
        "r650-good": (True, [], ["controller", "compute"]),
        "hpe-good": (False, ["model-not-certified-for-role"], ["controller", "compute"]),
        "supermicro": (False, ["unknown-model"], []),
        "realtek-nic": (False, ["nic-not-certified"], []),
        "old-bios": (False, ["firmware-below-baseline"], []),
        "bios-between": (True, [], ["controller", "compute"]),
        "small-mem": (False, ["too-little-memory"], []),
        "sick": (False, ["health-not-ok"], []),
        "r750-storage": (True, [], ["controller", "compute", "storage"]),
        "wrong-creds": (False, ["not-discovered"], []),
        "malformed": (False, ["not-discovered"], []),
        "storage-broken": (False, ["inventory-partial"], []),
        "slow": (False, ["not-discovered"], []),
        "unreachable": (False, ["not-discovered"], []),
        "tls-broken": (False, ["not-discovered"], []),
        "no-creds": (False, ["not-discovered"], []),
    }


def test_certify_table_names_every_reason(discovered: tuple) -> None:
    home, _, _ = discovered
    code, out, _ = run(home, "hardware", "certify")
    assert code == 1
    assert "BIOS firmware 1.7.0 is below the 2026.1 minimum 1.8.2" in out
    assert "compute needs 256 GiB of memory, node has 64" in out
    assert "NIC Realtek RTL8111 is not certified" in out
    assert "server model Supermicro SYS-1029U-TRT is not certified" in out


def test_firmware_plan_lists_components_off_baseline(discovered: tuple) -> None:
    home, _, _ = discovered
    code, out, _ = run(home, "hardware", "firmware", "plan", "--json")
    assert code == 0
    plan = [(c["node"], c["component"], c["current"], c["expected"], c["below_minimum"],
             c["action"]) for c in json.loads(out)]
    assert plan == [  # in site-file order
        ("old-bios", "BIOS", "1.7.0", "1.10.2", True, "update"),
        ("bios-between", "BIOS", "1.9.0", "1.10.2", False, "update"),
    ]


def test_inventory_is_stored_in_site_state(discovered: tuple) -> None:
    home, _, _ = discovered
    code, out, _ = run(home, "hardware", "inventory", "r650-good", "--json")
    assert code == 0
    [stored] = json.loads(out)
    assert stored["model"] == "PowerEdge R650" and stored["status"] == "ok"
    code, out, _ = run(home, "hardware", "inventory")
    assert "r650-good" in out and "timeout" in out
