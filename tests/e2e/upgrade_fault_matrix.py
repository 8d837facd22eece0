#!/usr/bin/env python3
"""The full per-step fault matrix of the upgrade (issue 4). Long: run by hand.

For every step of `onestack upgrade plan --to TO` (or those matching --steps), on a
site running FROM:

* kill:  SIGKILL onestack when it reaches the step; then `onestack rollback` (before
  the commit phase) or `onestack upgrade apply` (in the commit phase, where rollback
  refuses). With ``--recover apply``, `onestack upgrade apply` resumes the upgrade in
  every phase; the site, checked on TO, is then restored from its backup.
* fail:  inject a failure at the step; `upgrade apply` must roll back by itself
  (before commit) or stop with the site resumable (in commit; then apply again).

With ``--during rollback``, the fault is in the rollback instead: the upgrade is
killed once its roll phase is complete (at the health gate), ``onestack rollback`` is
run with the fault at the named rollback step (``--steps``, required: e.g.
``rollback-2026.2/rollback/nova/drain``), then ``onestack rollback`` again must finish.

After each case the site must be healthy on FROM (or on TO after a commit-phase case,
or a resumed one, which is then restored from its backup to start the next case on
FROM), `onestack verify` must pass, and the marker image must be intact. On the
default all-in-one (libvirt, OVN) `verify` includes its real instances: two servers
reach ACTIVE, answer SSH on a floating IP, get their metadata and ping each other.
One line per case; a JSON summary at the end. Example:

    .venv/bin/python tests/e2e/upgrade_fault_matrix.py --mode kill --steps '*roll*'
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class Site:
    def __init__(self, home: Path, name: str) -> None:
        self.home, self.name = home, name

    def run(self, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "ONESTACK_FAULT"}
        if fault:
            env["ONESTACK_FAULT"] = fault
        cmd = [str(REPO / "onestack"), "--home", str(self.home), "--site", self.name, *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env)

    def json(self, *args: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self.run(*args, "--json").stdout)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ,
               "OS_CLIENT_CONFIG_FILE": str(self.home / "sites" / self.name / "clouds.yaml")}
        return subprocess.run([str(REPO / ".venv/bin/openstack"), "--os-cloud", "onestack",
                               *args], capture_output=True, text=True, env=env)


def healthy(site: Site, series: str, marker: bytes) -> str | None:
    status = site.json("status")
    if status.get("release") != series:
        return f"release {status.get('release')} != {series}"
    bad = [c["process"] for c in status["components"] if not c["healthy"]]
    if bad:
        return f"unhealthy: {bad}"
    if not site.json("verify").get("passed"):
        return "verify failed"
    out = site.home / "matrix-marker.back"
    site.cli("image", "save", "--file", str(out), "matrix-marker")
    return None if out.exists() and out.read_bytes() == marker else "marker image changed"


def back_to_from(site: Site) -> None:
    """Whatever an earlier case (or run) left, return the site to the release before."""
    state = site.json("upgrade", "status")["upgrade"]
    if state and state["status"] == "done":
        site.run("restore", "--backup", state["backup"], "--yes")
    elif state and state["status"] == "rollback-failed":
        site.run("rollback")  # retries: restarts the settle processes
    elif state and state["status"] in ("running", "committing"):
        if site.run("rollback").returncode != 0:
            site.run("upgrade", "apply", "--to", state["to"])
            back_to_from(site)


def case(site: Site, mode: str, step: str, to: str, base: str, marker: bytes,
         recover: str = "rollback") -> dict:  # type: ignore[type-arg]
    t0 = time.monotonic()
    first = site.run("upgrade", "apply", "--to", to, fault=f"{mode}:{step}")
    if first.returncode == 0:  # the step was not run, so the fault never fired
        back_to_from(site)
        return {"step": step, "mode": mode, "first_exit": 0, "recovery_exit": None,
                "ok": False, "problem": "the fault was never reached",
                "seconds": round(time.monotonic() - t0, 1)}
    in_commit = "/commit/" in step or (mode == "kill" and recover == "apply")
    if mode == "kill" and not in_commit:
        after = site.run("rollback")
    elif in_commit:
        after = site.run("upgrade", "apply", "--to", to)
    else:
        after = first  # the automatic rollback already ran
    expect = to if in_commit else base
    problem = healthy(site, expect, marker)
    if in_commit and problem is None:
        back_to_from(site)
        problem = healthy(site, base, marker)
    return {"step": step, "mode": mode, "first_exit": first.returncode,
            "recovery_exit": after.returncode, "ok": problem is None, "problem": problem,
            "seconds": round(time.monotonic() - t0, 1)}


def rollback_case(site: Site, mode: str, step: str, to: str, base: str,
                  marker: bytes) -> dict:  # type: ignore[type-arg]
    t0 = time.monotonic()
    site.run("upgrade", "apply", "--to", to, fault=f"kill:upgrade-{to}/verify/site/health-gate")
    first = site.run("rollback", fault=f"{mode}:{step}")
    after = site.run("rollback")
    problem = healthy(site, base, marker)
    if first.returncode == 0:
        problem = "the fault was never reached"
    elif after.returncode != 0:
        problem = f"the second rollback exited {after.returncode}: {after.stderr[-300:]}"
    return {"step": step, "mode": mode, "first_exit": first.returncode,
            "recovery_exit": after.returncode, "ok": problem is None, "problem": problem,
            "seconds": round(time.monotonic() - t0, 1)}


def blocked_plan_waited(site: Site, to: str) -> dict:  # type: ignore[type-arg]
    """The upgrade plan, once its checks pass (a site just brought up may still be
    waiting for nova-compute's first heartbeat)."""
    for _ in range(12):
        data = site.json("upgrade", "plan", "--to", to)
        if data.get("plan"):
            return data["plan"]  # type: ignore[no-any-return]
        time.sleep(10)
    failed = [c for c in data.get("checks", []) if not c["passed"]]
    sys.exit(f"the upgrade stays blocked: {failed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("/var/tmp/onestack-matrix"))
    parser.add_argument("--site", default="matrix")
    parser.add_argument("--to", default="2026.2")
    parser.add_argument("--mode", choices=["kill", "fail"], default="kill")
    parser.add_argument("--steps", action="append", default=[],
                        help="glob of step ids to cover (repeatable; default: every step)")
    parser.add_argument("--recover", choices=["rollback", "apply"], default="rollback",
                        help="after a kill before the commit phase: roll back, or resume "
                             "the upgrade with upgrade apply (then restore)")
    parser.add_argument("--during", choices=["upgrade", "rollback"], default="upgrade",
                        help="where the fault is: an upgrade step, or a rollback step "
                             "(then --steps names the rollback steps)")
    args = parser.parse_args()
    if args.during == "rollback" and not args.steps:
        parser.error("--during rollback needs --steps (rollback step ids or globs)")
    site = Site(args.home, args.site)
    if (args.home / "sites" / args.site / "state.db").exists():
        back_to_from(site)
    if site.run("up").returncode != 0:
        sys.exit("could not bring the site up")
    base = site.json("status")["release"]
    marker = os.urandom(100_000)
    (args.home / "matrix-marker.raw").write_bytes(marker)
    site.cli("image", "delete", "matrix-marker")
    site.cli("image", "create", "--file", str(args.home / "matrix-marker.raw"),
             "--disk-format", "raw", "--container-format", "bare", "matrix-marker")
    plan = blocked_plan_waited(site, args.to)
    # Only the steps an upgrade of this site runs (a step already satisfied, such as
    # an installed release environment, is skipped and cannot be interrupted).
    globs = args.steps or ["*"]
    steps = [s["id"] for s in plan["steps"]
             if s["needed"] and any(fnmatch.fnmatchcase(s["id"], g) for g in globs)]
    if args.during == "rollback":
        steps = args.steps
    print(f"{len(steps)} steps, mode {args.mode} during the {args.during}", flush=True)
    results = []
    for step in steps:
        if args.during == "rollback":
            result = rollback_case(site, args.mode, step, args.to, base, marker)
        else:
            result = case(site, args.mode, step, args.to, base, marker, args.recover)
        results.append(result)
        if not result["ok"]:  # repair, so that the next cases start from a sound site
            back_to_from(site)
            site.run("up")
        print(f"{'ok  ' if result['ok'] else 'FAIL'} {result['seconds']:6.1f}s {step} "
              f"{result['problem'] or ''}", flush=True)
    passed = sum(r["ok"] for r in results)
    print(json.dumps({"cases": len(results), "passed": passed, "results": results}))
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
