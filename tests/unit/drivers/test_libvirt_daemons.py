"""Which libvirt daemons on a host are the site's own (found by program marker)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from onestack.drivers import libvirt

LOG = Path("/var/lib/onestack/sites/lab/log")


class FakeHost:
    """ps, /proc/<pid>/comm and environ of a few processes."""

    name = "c1"

    def __init__(self, procs: dict[int, tuple[str, str]], driver_pid: int | None) -> None:
        self.procs = procs  # pid -> (comm, marker or "")
        self.driver_pid = driver_pid

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 600, check: bool = True,
            input: str | None = None) -> str:
        if argv[0] == "ps":
            return "".join(f"{pid} {comm}\n" for pid, (comm, _) in self.procs.items())
        pid = int(argv[-1].split("/")[2])
        marker = self.procs.get(pid, ("", ""))[1]
        return f"PATH=/usr/bin\nONESTACK_PROGRAM={marker}\n" if marker else "PATH=/usr/bin\n"

    def read_file(self, path: Path) -> str | None:
        if path == libvirt.QEMU_DRIVER_PID:
            return None if self.driver_pid is None else f"{self.driver_pid}\n"
        pid = int(path.parts[2])
        return self.procs[pid][0] + "\n" if pid in self.procs else None


def test_the_sites_own_daemons_are_not_foreign() -> None:
    host = FakeHost({10: ("libvirtd", f"{LOG}/libvirtd"), 11: ("virtlogd", f"{LOG}/virtlogd"),
                     12: ("sshd", "")}, driver_pid=10)
    assert libvirt.foreign_daemons(host, LOG) == []  # type: ignore[arg-type]
    other_site = Path("/var/lib/onestack/sites/other/log")
    assert libvirt.foreign_daemons(host, other_site) == [  # type: ignore[arg-type]
        "libvirtd (pid 10)", "virtlogd (pid 11)"]


def test_a_packaged_daemon_is_foreign_even_under_another_name() -> None:
    host = FakeHost({20: ("virtqemud", "")}, driver_pid=20)
    assert libvirt.foreign_daemons(host, LOG) == ["virtqemud (pid 20)"]  # type: ignore[arg-type]


def test_a_stale_driver_pid_file_is_nobody() -> None:
    host = FakeHost({30: ("bash", "")}, driver_pid=30)  # the pid was reused
    assert libvirt.qemu_driver_holder(host) is None  # type: ignore[arg-type]
    assert libvirt.foreign_daemons(host, LOG) == []  # type: ignore[arg-type]


def test_uri_points_at_the_socket() -> None:
    assert libvirt.connection_uri(Path("/s/run/libvirt/libvirt-sock")) == (
        "qemu+unix:///system?socket=/s/run/libvirt/libvirt-sock")
