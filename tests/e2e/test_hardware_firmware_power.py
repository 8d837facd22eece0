"""Firmware apply through Redfish UpdateService tasks, and power/boot control, over HTTP."""

from __future__ import annotations

import functools
import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.redfish.emulator import free_ports, running_fleet  # noqa: E402
from tests.support.redfish.fleet import FakeBmc, secrets_for, site_yaml  # noqa: E402

from onestack.cli.main import cli  # noqa: E402
from onestack.drivers.secrets import SecretStore  # noqa: E402
from onestack.hardware.store import InventoryStore  # noqa: E402
from onestack.model.paths import SitePaths  # noqa: E402

pytestmark = pytest.mark.e2e
OLD = {"BIOS": "1.7.0", "BMC": "6.10.30.00", "Intel E810-XXVDA2": "4.20"}
BETWEEN = {"BIOS": "1.9.0", "BMC": "6.10.30.00", "Intel E810-XXVDA2": "4.40"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("hwfirmware")
    p = iter(free_ports(5))
    bmcs = [
        FakeBmc("fw-a-old", next(p), firmware=dict(OLD)),
        FakeBmc("fw-b-fail", next(p), firmware=dict(BETWEEN), fault="firmware-fail"),
        FakeBmc("fw-c-hang", next(p), firmware=dict(BETWEEN), fault="firmware-hang"),
        FakeBmc("fw-d-between", next(p), firmware=dict(BETWEEN)),
        FakeBmc("pw-e", next(p), power_state="Off"),
    ]
    root = work / "home"
    paths = SitePaths(root, "hwlab")
    paths.site.mkdir(parents=True)
    paths.site_file.write_text(site_yaml(bmcs))
    store = SecretStore(paths.secrets_file)
    for name, value in secrets_for(bmcs).items():
        store.set(name, value)
    with running_fleet(bmcs, work, power_delay_s=0.5):
        code, _, err = run(root, "hardware", "discover")
        assert code == 0, err
        yield root


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), "--site", "hwlab", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _plan(home: Path) -> list[tuple[str, str, str]]:
    code, out, _ = run(home, "hardware", "firmware", "plan", "--json")
    assert code == 0
    return [(c["node"], c["component"], c["current"]) for c in json.loads(out)]


def test_firmware_apply_continue_updates_the_rest_and_marks_failures(home: Path) -> None:
    assert _plan(home) == [
        ("fw-a-old", "BIOS", "1.7.0"), ("fw-a-old", "Intel E810-XXVDA2", "4.20"),
        ("fw-b-fail", "BIOS", "1.9.0"), ("fw-c-hang", "BIOS", "1.9.0"),
        ("fw-d-between", "BIOS", "1.9.0"),
    ]
    code, out, _ = run(home, "hardware", "firmware", "apply", "--yes", "--json",
                       "--on-failure", "continue", "--task-timeout", "3")
    assert code == 1
    outcome = {(o["node"], o["component"]): (o["status"], o["version_after"])
               for o in json.loads(out)}
    assert outcome == {
        ("fw-a-old", "BIOS"): ("updated", "1.10.2"),
        ("fw-a-old", "Intel E810-XXVDA2"): ("updated", "4.40"),
        ("fw-b-fail", "BIOS"): ("failed", None),
        ("fw-c-hang", "BIOS"): ("timeout", None),
        ("fw-d-between", "BIOS"): ("updated", "1.10.2"),
    }
    details = {o["node"]: o["detail"] for o in json.loads(out)}
    assert "image verification failed" in details["fw-b-fail"]
    assert "still Running after 3s" in details["fw-c-hang"]
    # The stored inventory was re-read: only the failed nodes still differ.
    assert _plan(home) == [("fw-b-fail", "BIOS", "1.9.0"), ("fw-c-hang", "BIOS", "1.9.0")]
    marks = InventoryStore(SitePaths(home, "hwlab").state_db).firmware_marks()
    assert marks[("fw-b-fail", "BIOS")][0] == "failed"
    assert marks[("fw-c-hang", "BIOS")][0] == "timeout"
    assert marks[("fw-a-old", "BIOS")][0] == "updated"


def test_firmware_apply_stop_skips_the_rest_after_a_failure(home: Path) -> None:
    code, out, _ = run(home, "hardware", "firmware", "apply", "--yes", "--json",
                       "--on-failure", "stop", "--workers", "1", "--task-timeout", "3")
    assert code == 1
    assert [(o["node"], o["status"]) for o in json.loads(out)] == [
        ("fw-b-fail", "failed"), ("fw-c-hang", "skipped")]


def test_power_on_off_cycle_are_confirmed(home: Path) -> None:
    code, out, _ = run(home, "hardware", "power", "on", "pw-e", "--json", "--timeout", "10")
    assert code == 0
    assert [(o["node"], o["ok"], o["state"]) for o in json.loads(out)] == [("pw-e", True, "On")]
    code, out, _ = run(home, "hardware", "power", "off", "pw-e", "fw-a-old", "--json")
    assert code == 0
    assert {o["node"]: o["state"] for o in json.loads(out)} == {"pw-e": "Off", "fw-a-old": "Off"}
    code, out, _ = run(home, "hardware", "power", "cycle", "fw-a-old", "--json")
    assert code == 0 and json.loads(out)[0]["state"] == "On"


def test_boot_override_is_confirmed(home: Path) -> None:
    code, out, _ = run(home, "hardware", "boot", "pxe", "fw-d-between", "--json")
    assert code == 0
    assert json.loads(out)[0]["state"] == "Pxe"
    code, out, _ = run(home, "hardware", "boot", "disk", "fw-d-between")
    assert code == 0 and "Hdd" in out


def test_boot_from_virtual_media(home: Path, tmp_path: Path) -> None:
    (tmp_path / "tiny.iso").write_bytes(b"\0" * 4096)
    port = free_ports(1)[0]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        code, out, err = run(home, "hardware", "boot", "cd", "fw-d-between", "--json",
                             "--image", f"http://127.0.0.1:{port}/tiny.iso")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, out + err
    assert json.loads(out)[0]["state"] == "Cd"


def test_unknown_node_is_refused(home: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(home), "--site", "hwlab", "hardware",
                                      "power", "on", "nope"])
    assert result.exit_code != 0
    assert "unknown node(s): nope" in str(result.exception)
