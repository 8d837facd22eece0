"""Golden plans: the deploy steps of reference sites, pinned as reviewed data.

A change to any file under ``golden/`` is a change to what ``onestack up`` does on a
real site: step ids, hosts and fingerprints decide what an existing journal counts as
done. Regenerate after an intended change, and review the diff:

    ONESTACK_REGEN_GOLDEN=1 .venv/bin/pytest -p no:cacheprovider \
        tests/unit/plans/test_plans_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from onestack.core.step import Step
from onestack.model.loader import parse_site
from onestack.model.paths import SitePaths
from onestack.model.ports import Ports
from onestack.model.site import Site, default_lab_site
from onestack.plans.deploy import deploy_steps, required_secrets
from onestack.services.base import ServiceContext

GOLDEN = Path(__file__).parent / "golden"
HOME = Path("/var/lib/onestack")

THREE_HOSTS = """\
name: three
release: "2026.1"
hosts:
  - name: ctl1
    address: 198.18.20.11
    connection: ssh
    roles: [controller, network]
  - name: cmp1
    address: 198.18.20.12
    connection: ssh
    roles: [compute]
  - name: cmp2
    address: 198.18.20.13
    connection: ssh
    roles: [compute]
"""


def golden_context(site: Site, series: str = "2026.1") -> ServiceContext:
    """A context with fixed paths and secrets, so fingerprints are reproducible."""
    paths = SitePaths(HOME, site.name)
    secrets = {name: f"golden-{name}" for name in required_secrets()}
    return ServiceContext(site=site, series=series, paths=paths, secrets=secrets,
                          venv=paths.venv(series), ports=Ports(site.port_offset))


def plan_data(steps: list[Step]) -> list[dict[str, str]]:
    """What ``plan --json`` shows of each step (no facts), plus its fingerprint."""
    return [{"id": s.id, "host": s.host, "service": s.service, "kind": s.action.kind,
             "summary": s.summary, "fanout": s.fanout, "fingerprint": s.fingerprint()}
            for s in steps]


def _check(name: str, steps: list[Step]) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(plan_data(steps), indent=1) + "\n"
    if os.environ.get("ONESTACK_REGEN_GOLDEN"):
        path.write_text(text)
    expected = path.read_text()
    assert text == expected, f"{path.name} changed: review, then regenerate (module doc)"


def test_all_in_one_plan_is_pinned() -> None:
    """Ids and fingerprints of the all-in-one plan: existing journals must still match."""
    _check("all-in-one", deploy_steps(golden_context(default_lab_site())))


def test_three_host_plan_is_pinned() -> None:
    """One controller and two computes: per-host ids, hosts and fan-outs."""
    site = parse_site(THREE_HOSTS, "three.yaml")
    _check("three-hosts", deploy_steps(golden_context(site)))
