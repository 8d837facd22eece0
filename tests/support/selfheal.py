"""Crash a supervised program under API load and watch it come back (issue 14).

Shared by the e2e test (tests/e2e/test_cloud_lifecycle.py) and the benchmark
(bench/self_heal): real processes are SIGKILLed, real requests go through HAProxy.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from onestack.drivers import processes
from onestack.drivers.host import LocalHost
from onestack.drivers.supervisor import program_marker
from onestack.services import registry
from onestack.state.site import SiteHandle, open_site, service_context

# Each API's load: one authenticated request that reaches its database.
API_REQUESTS: dict[str, tuple[str, str]] = {
    "keystone": ("identity", "/v3/auth/projects"),
    "placement": ("placement", "/resource_providers"),
    "glance": ("image", "/v2/images"),
    "neutron": ("network", "/v2.0/networks"),
    "nova": ("compute", "/servers"),
}


@dataclass
class ApiLoad:
    """Continuous authenticated requests to every API through HAProxy, one thread each;
    a token is issued once and again whenever one is refused."""

    clouds_yaml: Path
    failures: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _token: str = ""
    _endpoints: dict[str, str] = field(default_factory=dict)
    _verify: str | bool = True  # the site CA's certificate (clouds.yaml's cacert)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._authenticate()
        for api in API_REQUESTS:
            thread = threading.Thread(target=self._run, args=(api,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def failed_between(self, api: str, t0: float, t1: float) -> list[tuple[float, str]]:
        with self._lock:
            return [f for f in self.failures.get(api, []) if t0 <= f[0] <= t1]

    def _authenticate(self) -> None:
        cloud = yaml.safe_load(self.clouds_yaml.read_text())["clouds"]["onestack"]
        auth = cloud["auth"]
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "domain": {"name": "Default"},
            "password": auth["password"]}}},
            "scope": {"project": {"name": auth["project_name"],
                                  "domain": {"name": "Default"}}}}}
        self._verify = cloud.get("cacert") or True
        resp = requests.post(auth["auth_url"] + "/auth/tokens", json=body, timeout=30,
                             verify=self._verify)
        resp.raise_for_status()
        self._token = resp.headers["X-Subject-Token"]
        catalog = resp.json()["token"]["catalog"]
        self._endpoints = {s["type"]: next(e["url"] for e in s["endpoints"]
                                           if e["interface"] == "public") for s in catalog}

    def _run(self, api: str) -> None:
        kind, path = API_REQUESTS[api]
        while not self.stop.is_set():
            url = self._endpoints[kind].rstrip("/") + path
            if api == "keystone":
                url = self._endpoints[kind].rstrip("/").removesuffix("/v3") + path
            error = self._one(url)
            with self._lock:
                self.sent[api] = self.sent.get(api, 0) + 1
                if error:
                    self.failures.setdefault(api, []).append((time.time(), error))
            time.sleep(0.05)

    def _one(self, url: str) -> str:
        headers = {"X-Auth-Token": self._token,
                   "OpenStack-API-Version": "placement 1.0"}
        try:
            resp = requests.get(url, headers=headers, timeout=30, verify=self._verify)
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {str(exc)[:160]}"
        if resp.status_code == 401:
            try:  # an expired or revoked token is not the API failing
                self._authenticate()
            except requests.RequestException as exc:
                return f"re-authentication: {type(exc).__name__}"
            return ""
        return "" if resp.status_code < 400 else f"HTTP {resp.status_code}"


@dataclass
class Recovery:
    """One crash and what followed."""

    program: str
    how: str
    killed: list[int]
    seconds: float | None  # until RUNNING, a new process, healthy, nothing orphaned
    orphans: tuple[int, ...]
    failed: dict[str, int]

    def as_row(self) -> dict[str, Any]:
        return {"program": self.program, "how": self.how, "killed": len(self.killed),
                "recovered_s": None if self.seconds is None else round(self.seconds, 1),
                "orphans": list(self.orphans), "failed_requests": self.failed}


@dataclass
class SiteWatch:
    """A deployed site's programs, their processes and health, read in-process."""

    handle: SiteHandle
    host: LocalHost = field(default_factory=LocalHost)

    @classmethod
    def open(cls, home: Path, site: str) -> SiteWatch:
        return cls(open_site(home, site))

    def programs(self) -> list[str]:
        ctx = service_context(self.handle, generate=False)
        return [p.name for m in registry.ALL for p in m.programs(ctx)]

    def probe(self, program: str) -> Callable[[], bool]:
        ctx = service_context(self.handle, generate=False)
        for module in registry.ALL:
            for check in module.checks(ctx):
                if check.name == program:
                    return lambda: check.probe.check()[0]
        return lambda: True

    def supervised_pid(self, program: str) -> int | None:
        info = self.handle.supervisor().states().get(program, {})
        return int(info["pid"]) if info.get("statename") == "RUNNING" and info.get("pid") else None

    def tree(self, program: str) -> list[int]:
        pid = self.supervised_pid(program)
        return sorted(processes.descendants(processes.parents(self.host), pid)) if pid else []

    def main_pid(self, program: str) -> int | None:
        """The program itself: below the wrapper (``unshare``) and ``tini``."""
        return processes.main_pid(processes.parents(self.host), self.supervised_pid(program))

    def orphans(self, program: str) -> tuple[int, ...]:
        marker = program_marker(self.handle.paths.log, program)
        return processes.program_processes(self.host, marker,
                                           self.supervised_pid(program)).outside

    def crash(self, program: str, how: str, load: ApiLoad | None,
              timeout: float = 60) -> Recovery:
        """SIGKILL the program's main process (``main``) or its whole tree at once
        (``tree``); wait until it is RUNNING again as a new process, healthy, with
        nothing of it left outside supervision."""
        before = self.supervised_pid(program)
        main = self.main_pid(program)
        if how == "main" and not main:  # never os.kill(0): that is our own group
            raise AssertionError(f"{program}: no running main process to kill")
        victims = [main] if how == "main" and main else self.tree(program)
        healthy = self.probe(program)
        t0 = time.time()
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # the kernel took it with the namespace already
                pass
        seconds = self._wait_back(program, before, healthy, t0, timeout)
        time.sleep(1.0)  # requests already waiting at HAProxy finish or fail
        failed = {api: len(load.failed_between(api, t0, time.time()))
                  for api in API_REQUESTS} if load else {}
        return Recovery(program, how, victims, seconds, self.orphans(program), failed)

    def _wait_back(self, program: str, before: int | None, healthy: Callable[[], bool],
                   t0: float, timeout: float) -> float | None:
        while time.time() - t0 < timeout:
            now = self.supervised_pid(program)
            if now and now != before and healthy() and not self.orphans(program):
                return time.time() - t0
            time.sleep(0.2)
        return None
