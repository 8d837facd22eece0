"""Debian packages for end-to-end tests, installed without starting their services."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from onestack.drivers import apt
from onestack.drivers.host import LocalHost

POLICY = Path("/usr/sbin/policy-rc.d")


def _policy_refuses_starts() -> bool:
    return POLICY.exists() and subprocess.run(
        [str(POLICY), "any", "start"], check=False).returncode == 101


def install_without_starting(packages: Iterable[str]) -> list[str]:
    """apt-get install what is missing, with Debian's own switch that keeps a
    package's maintainer scripts from starting its service (policy-rc.d exiting 101),
    then put the machine's policy back as it was. Returns what was installed.

    Test sites run their own instances: a distribution daemon started on install
    (the system Open vSwitch, OVN's central databases) must not run beside them."""
    host = LocalHost()
    missing = sorted(apt.missing(host, packages))
    if not missing:
        return []
    refuses = _policy_refuses_starts()
    saved = POLICY.read_bytes() if POLICY.exists() else None
    if not refuses:
        POLICY.write_text("#!/bin/sh\nexit 101\n")
        POLICY.chmod(0o755)
    try:
        apt.install(host, missing)
    finally:
        if not refuses and saved is None:
            POLICY.unlink()
        elif not refuses and saved is not None:
            POLICY.write_bytes(saved)
    return missing
