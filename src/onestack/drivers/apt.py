"""Debian packages through dpkg-query and apt-get."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from onestack.core.host import HostConnection
from onestack.errors import CommandError, PackageInstallError, PrerequisiteError


def installed(host: HostConnection, packages: Iterable[str]) -> set[str]:
    """Which of the packages are installed."""
    names = list(packages)
    out = host.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n", *names],
                   check=False)
    found = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("ii"):
            found.add(parts[0])
    return found


def missing(host: HostConnection, packages: Iterable[str]) -> set[str]:
    names = set(packages)
    if host.which("dpkg-query") is None:
        return names
    return names - installed(host, names)


def install(host: HostConnection, packages: Iterable[str],
            say: Callable[[str], None] | None = None) -> None:
    """apt-get install the packages (with an index update first)."""
    names = sorted(packages)
    if host.which("apt-get") is None:
        raise PrerequisiteError("apt-get not found: onestack's lab needs a Debian 12 host",
                                "install on Debian 12 (bookworm)")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if say:
        say(f"apt-get install {' '.join(names)}")
    try:
        host.run(["apt-get", "update", "-q"], env=env, timeout=900)
        host.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *names],
                 env=env, timeout=1800)
    except CommandError as exc:
        raise PackageInstallError(names, exc.output) from None
    still = missing(host, names)
    if still:
        raise PackageInstallError(sorted(still), "apt-get finished but they are not installed")


def version(host: HostConnection, package: str) -> str | None:
    out = host.run(["dpkg-query", "-W", "-f", "${Version}", package], check=False)
    return out.strip() or None
