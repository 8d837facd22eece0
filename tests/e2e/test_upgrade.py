"""End to end: atomic upgrade 2026.1 -> 2026.2 on real services (issue 4).

One ordered scenario on one site (tests run in file order and share it):
refusals -> injected failure in the roll phase (automatic rollback) -> kill in prepare
then rollback -> concurrent apply refused, kill in the roll phase, resources created
mid-upgrade, resume, kill in commit, rollback refused, resume to done -> restore.
Every case asserts on what the real clients see: resources, image bytes, versions.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.model.ports import API_HEALTH_PATHS, Ports

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("ONESTACK_E2E_HOME", "/var/tmp/onestack-e2e"))
SITE = "upg"
OFFSET = 200
SITE_FILE = HOME / "upg-site.yaml"
TO = "2026.2"
BEFORE_IMAGE = HOME / "upg-before.raw"
DURING_IMAGE = HOME / "upg-during.raw"


def onestack(*args: str, check: bool = True, fault: str | None = None,
             timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    cmd = [str(REPO / "onestack"), "--home", str(HOME), "--site", SITE, *args]
    env = {**os.environ}
    env.pop("ONESTACK_FAULT", None)
    if fault:
        env["ONESTACK_FAULT"] = fault
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    sys.stdout.write(f"$ {' '.join(args)} (fault={fault})\n{proc.stdout}{proc.stderr[-3000:]}\n")
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def cli(*args: str, check: bool = True) -> str:
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(HOME / "sites" / SITE / "clouds.yaml")}
    cmd = [str(REPO / ".venv" / "bin" / "openstack"), "--os-cloud", "onestack", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}"
    return proc.stdout


def names(kind: str) -> set[str]:
    return set(cli(kind, "list", "-f", "value", "-c", "Name").split())


def image_bytes(name: str) -> bytes:
    out = HOME / f"{name}.saved"
    cli("image", "save", "--file", str(out), name)
    return out.read_bytes()


def status() -> dict:  # type: ignore[type-arg]
    return json.loads(onestack("status", "--json", check=False).stdout)


def versions() -> dict[str, str]:
    return {c["process"].split("-api")[0]: c["version"] for c in status()["components"]
            if "-api" in c["process"]}


def assert_healthy_on(series: str) -> None:
    data = status()
    assert data["release"] == series
    bad = [(c["process"], c["detail"]) for c in data["components"] if not c["healthy"]]
    assert not bad, bad
    expected = {"2026.1": "29.1.0", "2026.2": "30.0.0"}[series]
    assert versions()["keystone"] == expected
    result = json.loads(onestack("verify", "--json", check=False).stdout)
    assert result["passed"], [c for c in result["checks"] if not c["passed"]]


def assert_resources_from_before() -> None:
    assert image_bytes("upg-before") == BEFORE_IMAGE.read_bytes()
    assert "upg-flavor" in names("flavor")
    assert "upg-net" in names("network")
    assert "upg-server" in names("server")


def backend_answers(service: str, color: str) -> bool:
    """Whether this API instance answers on its own port (not through HAProxy)."""
    url = f"http://127.0.0.1:{Ports(OFFSET).backend(service, color)}{API_HEALTH_PATHS[service]}"
    try:
        with urllib.request.urlopen(url, timeout=10):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def upgrade_state() -> dict:  # type: ignore[type-arg]
    return json.loads(onestack("upgrade", "status", "--json").stdout)


@pytest.fixture(scope="module", autouse=True)
def site() -> Iterator[None]:
    if (HOME / "sites" / SITE).exists():
        onestack("down", "--purge", "--yes", check=False)
    HOME.mkdir(parents=True, exist_ok=True)
    SITE_FILE.write_text(f'name: {SITE}\nrelease: "2026.1"\nport_offset: {OFFSET}\n'
                         'compute_driver: fake\nnetwork: none\n'
                         "hosts:\n  - name: aio\n    address: 127.0.0.1\n")
    onestack("up", "--site-file", str(SITE_FILE))
    yield
    if os.environ.get("ONESTACK_E2E_KEEP") != "1":
        onestack("down", "--purge", "--yes", check=False)


def test_resources_before_the_upgrade() -> None:
    BEFORE_IMAGE.write_bytes(os.urandom(200_000))
    cli("image", "create", "--file", str(BEFORE_IMAGE), "--disk-format", "raw",
        "--container-format", "bare", "upg-before")
    cli("flavor", "create", "--ram", "64", "--vcpus", "1", "--disk", "0", "upg-flavor")
    cli("network", "create", "upg-net")
    cli("server", "create", "--image", "upg-before", "--flavor", "upg-flavor", "--nic", "none",
        "--wait", "upg-server")
    assert_resources_from_before()


def test_bad_targets_are_refused_before_any_change() -> None:
    for target, reason in (("2027.1", "2027.1"), ("2026.1", "already runs")):
        proc = onestack("upgrade", "apply", "--to", target, check=False)
        assert proc.returncode != 0 and reason in proc.stderr, proc.stderr
    assert upgrade_state()["upgrade"] is None


def test_plan_shows_checks_and_steps() -> None:
    data = json.loads(onestack("upgrade", "plan", "--to", TO, "--json").stdout)
    assert not data["blocked"], data["checks"]
    ids = [s["id"] for s in data["plan"]["steps"]]
    phases = [i.split("/")[1] for i in ids]
    assert phases == sorted(phases, key=["prepare", "roll", "verify", "commit"].index)
    assert f"upgrade-{TO}/roll/keystone/swap-api" in ids
    assert upgrade_state()["upgrade"] is None  # plan changed nothing


def test_failure_in_roll_rolls_back_automatically() -> None:
    proc = onestack("upgrade", "apply", "--to", TO, check=False,
                    fault=f"fail:upgrade-{TO}/roll/neutron/swap-api")
    assert proc.returncode != 0
    assert "rolled back" in proc.stderr
    assert upgrade_state()["upgrade"]["status"] == "rolled-back"
    assert_healthy_on("2026.1")
    assert_resources_from_before()


@pytest.mark.long  # make test-long (2 minutes); the site stays on its release without it
def test_kill_in_prepare_then_rollback() -> None:
    proc = onestack("upgrade", "apply", "--to", TO, check=False,
                    fault=f"kill:upgrade-{TO}/prepare/keystone/db-expand")
    assert proc.returncode == -9
    state = upgrade_state()
    assert state["upgrade"]["status"] == "running"
    assert state["stopped_at"] == f"upgrade-{TO}/prepare/keystone/db-expand"
    # The rollback itself fails (nova-compute "never reports healthy"); it is retried.
    failed = onestack("rollback", check=False,
                      fault=f"fail:rollback-{TO}/rollback/nova/ready:nova-compute")
    assert failed.returncode != 0 and "run `onestack rollback` again" in failed.stderr
    state = upgrade_state()
    assert state["upgrade"]["status"] == "rollback-failed"
    assert "`onestack rollback` again" in state["what_next"]
    retried = onestack("rollback")
    assert "retrying it" in retried.stderr
    assert "restart nova-conductor once all of nova runs 2026.1" in retried.stderr
    assert upgrade_state()["upgrade"]["status"] == "rolled-back"
    assert_healthy_on("2026.1")
    assert_resources_from_before()


def _started(step: str, since: float) -> bool:
    """Whether a run that began after ``since`` has started ``step``."""
    db = HOME / "sites" / SITE / "state.db"
    with sqlite3.connect(db, timeout=5) as conn:
        rows = conn.execute("SELECT 1 FROM run_steps WHERE step_id=? AND started>?",
                            (step, since)).fetchall()
    return bool(rows)


def test_kill_in_roll_resume_kill_in_commit_resume() -> None:
    kill_at = f"upgrade-{TO}/roll/glance/swap-api"
    env = {**os.environ, "ONESTACK_FAULT": f"kill:{kill_at}"}
    cmd = [str(REPO / "onestack"), "--home", str(HOME), "--site", SITE, "upgrade", "apply",
           "--to", TO]
    since = time.time()
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not _started(f"upgrade-{TO}/prepare/mariadb/backup", since):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.5)
    second = onestack("upgrade", "apply", "--to", TO, check=False)
    assert second.returncode != 0 and "locked" in second.stderr
    assert first.wait(timeout=900) == -9
    # keystone has moved: its 2026.1 instance stays up, without traffic, until commit.
    assert backend_answers("keystone", "blue") and backend_answers("keystone", "green")

    # Written while the site is half-way through its upgrade.
    DURING_IMAGE.write_bytes(os.urandom(150_000))
    cli("image", "create", "--file", str(DURING_IMAGE), "--disk-format", "raw",
        "--container-format", "bare", "upg-during")
    cli("network", "create", "upg-net-during")

    proc = onestack("upgrade", "apply", "--to", TO, check=False,
                    fault=f"kill:upgrade-{TO}/commit/glance/db-contract")
    assert proc.returncode == -9
    assert upgrade_state()["upgrade"]["status"] == "committing"
    refused = onestack("rollback", check=False)
    assert refused.returncode != 0 and "restore" in refused.stderr

    onestack("upgrade", "apply", "--to", TO)
    assert upgrade_state()["upgrade"]["status"] == "done"
    assert not backend_answers("keystone", "blue")  # retired at commit
    assert_healthy_on(TO)
    assert_resources_from_before()
    assert image_bytes("upg-during") == DURING_IMAGE.read_bytes()
    assert "upg-net-during" in names("network")


def test_after_upgrade_up_and_plan_change_nothing() -> None:
    # Commit retired 2026.1: its configuration and its API programs are gone.
    site_dir = HOME / "sites" / SITE
    assert not (site_dir / "etc" / "2026.1").exists()
    assert not (site_dir / "supervisor" / "keystone-api.conf").exists()
    assert (site_dir / "supervisor" / "keystone-api-green.conf").exists()
    assert all(c["healthy"] for c in status()["components"])
    assert "nothing to do" in onestack("plan").stdout
    t0 = time.monotonic()
    assert "nothing to do" in onestack("up").stdout
    assert time.monotonic() - t0 < 30


@pytest.mark.long  # make test-long (2.5 minutes): the last test, nothing follows it
def test_restore_returns_to_the_backup_and_says_what_is_lost() -> None:
    backup = upgrade_state()["upgrade"]["backup"]
    proc = onestack("restore", "--backup", backup, "--yes")
    assert "LOST" in proc.stderr
    assert_healthy_on("2026.1")
    assert_resources_from_before()
    assert "upg-during" not in names("image")  # written after the backup: gone, as warned
