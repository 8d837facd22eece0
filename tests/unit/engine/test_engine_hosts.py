"""The engine across hosts: fan-out batches, failures per host, the journal's host key,
the pre-flight of SSH hosts, progress naming hosts."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from onestack.core.progress import JsonProgress, PlainProgress, SilentProgress
from onestack.core.step import Step, make_plan
from onestack.drivers.ssh_host import SshHost, SshTarget
from onestack.engine import operations
from onestack.engine.runner import apply_plan
from onestack.errors import HostStepsFailed, HostUnreachableError, OnestackError
from onestack.model.paths import SitePaths
from onestack.model.site import ConnectionKind, Host, Site
from onestack.state.journal import Journal
from onestack.state.site import SiteHandle


@dataclass(frozen=True)
class HostAction:
    """Records (host, name) in a shared log; can wait on a barrier or fail."""

    name: str
    log: list[tuple[str, str]] = field(compare=False)
    barrier: threading.Barrier | None = field(default=None, compare=False)
    fail: bool = False
    kind: str = "fake"

    def fingerprint(self) -> str:
        return self.name

    def probe(self, ctx: Any) -> Any:
        return None

    def needed(self, fact: Any, done: str | None) -> bool:
        return done is None

    def apply(self, ctx: Any) -> None:
        if self.barrier is not None:
            self.barrier.wait(timeout=5)  # only passes if every host runs at once
        self.log.append((ctx, self.name))
        if self.fail:
            raise OnestackError(f"{self.name} broke")


def _fanned(log: list[tuple[str, str]], hosts: list[str], fail_on: str = "",
            barrier: threading.Barrier | None = None) -> list[Step]:
    steps = [Step("base/first", "first", "base", hosts[0], HostAction("first", log))]
    for host in hosts:
        steps += [Step(f"svc/{host}/a", "a", "svc", host,
                       HostAction("a", log, barrier, fail=host == fail_on), "fan"),
                  Step(f"svc/{host}/b", "b", "svc", host, HostAction("b", log), "fan")]
    steps.append(Step("base/last", "last", "base", hosts[0], HostAction("last", log)))
    return steps


def _contexts(hosts: list[str]) -> dict[str, str]:
    return {h: h for h in hosts}  # the action logs its context: here, the host name


def test_fan_out_runs_hosts_at_once_in_plan_order(tmp_path: Path) -> None:
    hosts = ["h1", "h2", "h3"]
    log: list[tuple[str, str]] = []
    steps = _fanned(log, hosts, barrier=threading.Barrier(3))
    journal = Journal(tmp_path / "state.db")
    apply_plan(make_plan("up", steps, {}, {}), _contexts(hosts), journal, SilentProgress())
    assert log[0] == ("h1", "first") and log[-1] == ("h1", "last")
    for host in hosts:  # each host's own steps in order
        assert [n for h, n in log if h == host and n in "ab"] == ["a", "b"]
    assert len(journal.completed()) == len(steps)


def test_failure_on_one_host_lets_the_others_finish_and_names_it(tmp_path: Path) -> None:
    hosts = ["h1", "h2", "h3"]
    log: list[tuple[str, str]] = []
    journal = Journal(tmp_path / "state.db")
    with pytest.raises(HostStepsFailed) as info:
        apply_plan(make_plan("up", _fanned(log, hosts, fail_on="h2"), {}, {}),
                   _contexts(hosts), journal, SilentProgress())
    assert info.value.hosts == ["h2"] and "h2: a broke" in str(info.value)
    assert ("h2", "b") not in log and ("h1", "b") in log and ("h3", "b") in log
    assert ("h1", "last") not in log
    done = {step for _, step in journal.completed()}
    assert "svc/h3/b" in done and "svc/h2/a" not in done
    assert journal.runs()[0].status == "failed"
    # Running again resumes: only h2's steps and what follows the batch.
    log.clear()
    steps = _fanned(log, hosts)
    apply_plan(make_plan("up", steps, {}, journal.done_for(steps)), _contexts(hosts),
               journal, SilentProgress())
    assert sorted(log) == [("h1", "last"), ("h2", "a"), ("h2", "b")]


def test_same_step_id_on_two_hosts_is_two_completions(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.db")
    run = journal.start_run("up")
    journal.step_started(run, "nova/dirs", "nova", "dirs", "h1")
    journal.step_finished(run, "nova/dirs", "fp1", "h1")
    journal.step_started(run, "nova/dirs", "nova", "dirs", "h2")
    journal.step_finished(run, "nova/dirs", "fp2", "h2")
    assert journal.completed() == {("h1", "nova/dirs"): "fp1", ("h2", "nova/dirs"): "fp2"}
    on_h2 = Step("nova/dirs", "dirs", "nova", "h2", HostAction("dirs", []))
    assert journal.done_for([on_h2]) == {"nova/dirs": "fp2"}
    assert [s["host"] for s in journal.steps_of(run)] == ["h1", "h2"]


OLD_SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, operation TEXT NOT NULL,
  pid INTEGER NOT NULL, started REAL NOT NULL, finished REAL, status TEXT NOT NULL,
  detail TEXT);
CREATE TABLE run_steps (run_id INTEGER NOT NULL, step_id TEXT NOT NULL, service TEXT,
  summary TEXT, status TEXT NOT NULL, started REAL NOT NULL, finished REAL, error TEXT,
  PRIMARY KEY (run_id, step_id));
CREATE TABLE completed_steps (step_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
  at REAL NOT NULL);
CREATE TABLE site_facts (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO runs VALUES (1, 'up', 1, 1.0, 2.0, 'done', NULL);
INSERT INTO run_steps VALUES (1, 'host/packages', 'host', 'install', 'done', 1.0, 2.0, NULL);
INSERT INTO completed_steps VALUES ('host/packages', 'fp-packages', 2.0);
INSERT INTO completed_steps VALUES ('nova/start:nova-compute', 'fp-compute', 2.0);
INSERT INTO site_facts VALUES ('release', '"2026.1"');
"""


def test_journal_from_before_hosts_is_migrated_to_the_controller(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    journal = Journal(path, legacy_host="aio")
    assert journal.completed() == {("aio", "host/packages"): "fp-packages",
                                   ("aio", "nova/start:nova-compute"): "fp-compute"}
    assert journal.steps_of(1)[0]["host"] == "aio"
    assert journal.fact("release") == "2026.1"
    step = Step("host/packages", "install", "host", "aio", HostAction("packages", []))
    assert journal.done_for([step]) == {"host/packages": "fp-packages"}
    journal.close()
    assert Journal(path, legacy_host="other").completed()[("aio", "host/packages")]


def test_plain_progress_names_hosts_and_keeps_lines_whole() -> None:
    out = io.StringIO()
    progress = PlainProgress(out)
    a = Step("nova/cmp1/dirs", "create state directories", "nova", "cmp1",
             HostAction("a", []))
    b = Step("nova/cmp2/dirs", "create state directories", "nova", "cmp2",
             HostAction("b", []))
    progress.step_started(a, 1, 2)
    progress.step_started(b, 2, 2)  # another host's thread
    progress.step_done(a, 0.5)
    progress.step_done(b, 0.25)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[0].endswith("cmp1 nova       create state directories ...")
    assert lines[2].endswith("cmp1 nova       create state directories ... ok (0.5s)")
    assert lines[3].endswith(" ok (0.2s)") and "cmp2" in lines[1]


def test_json_progress_names_hosts() -> None:
    out = io.StringIO()
    step = Step("nova/cmp1/dirs", "dirs", "nova", "cmp1", HostAction("a", []))
    JsonProgress(out).step_started(step, 1, 1)
    assert json.loads(out.getvalue())["host"] == "cmp1"


def _handle(tmp_path: Path, hosts: list[Host]) -> SiteHandle:
    site = Site(name="multi", release="2026.1", hosts=hosts)
    return SiteHandle(site, SitePaths(tmp_path, "multi"), None)


def test_connections_from_the_site_model(tmp_path: Path) -> None:
    from ipaddress import IPv4Address

    handle = _handle(tmp_path, [
        Host(name="ctl", roles=[]),
        Host(name="cmp1", address=IPv4Address("198.18.20.12"), connection=ConnectionKind.SSH,
             ssh_user="deploy", ssh_port=2222)])
    contexts = operations.host_contexts(handle, SilentProgress())
    assert type(contexts["ctl"].host).__name__ == "LocalHost"
    remote = contexts["cmp1"].host
    assert isinstance(remote, SshHost)
    assert remote.target == SshTarget("cmp1", "198.18.20.12", handle.paths.ssh_key,
                                      handle.paths.known_hosts, port=2222, user="deploy")


def test_preflight_names_the_host_before_anything_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ipaddress import IPv4Address

    def refuse(self: SshHost) -> None:
        if self.name == "cmp2":
            raise HostUnreachableError(self.name, self.target.address, "no route to host")

    monkeypatch.setattr(SshHost, "connect", refuse)
    handle = _handle(tmp_path, [Host(name="ctl")] + [
        Host(name=f"cmp{i}", address=IPv4Address(f"198.18.20.{10 + i}"),
             connection=ConnectionKind.SSH) for i in (1, 2)])
    with pytest.raises(HostUnreachableError, match="cannot reach host cmp2"):
        operations.preflight(operations.host_contexts(handle, SilentProgress()))
    assert not (tmp_path / "sites").exists()  # nothing written


def test_preflight_names_a_host_whose_key_file_is_missing(tmp_path: Path) -> None:
    from ipaddress import IPv4Address

    handle = _handle(tmp_path, [Host(name="ctl"), Host(
        name="cmp1", address=IPv4Address("198.18.20.12"), connection=ConnectionKind.SSH)])
    with pytest.raises(OnestackError, match=r"host cmp1: no private key .*id_ed25519"):
        operations.preflight(operations.host_contexts(handle, SilentProgress()))


def test_contexts_reach_each_hosts_own_supervisor_and_every_host(tmp_path: Path) -> None:
    from ipaddress import IPv4Address

    from onestack.drivers.supervisor import HostSupervisor, Supervisor

    handle = _handle(tmp_path, [
        Host(name="ctl", roles=[]),
        Host(name="cmp1", address=IPv4Address("198.18.20.12"), connection=ConnectionKind.SSH)])
    contexts = operations.host_contexts(handle, SilentProgress())
    assert type(contexts["ctl"].supervisor) is Supervisor
    remote = contexts["cmp1"].supervisor
    assert isinstance(remote, HostSupervisor) and remote.host is contexts["cmp1"].host
    assert contexts["cmp1"].hosts["ctl"] is contexts["ctl"].host


def test_the_site_key_is_generated_once_private_and_only_when_used(tmp_path: Path) -> None:
    from ipaddress import IPv4Address

    local = _handle(tmp_path / "a", [Host(name="aio")])
    assert not operations.ensure_site_key(local) and not local.paths.ssh_key.exists()
    handle = _handle(tmp_path / "b", [
        Host(name="ctl", roles=[]),
        Host(name="cmp1", address=IPv4Address("198.18.20.12"), connection=ConnectionKind.SSH)])
    assert operations.ensure_site_key(handle)
    key = handle.paths.ssh_key
    assert key.stat().st_mode & 0o777 == 0o600 and key.parent.stat().st_mode & 0o777 == 0o700
    assert key.with_suffix(".pub").read_text().startswith("ssh-ed25519 ")
    before = key.read_text()
    assert not operations.ensure_site_key(handle) and key.read_text() == before
