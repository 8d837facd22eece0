"""libvirt on a host: is the site's daemon answering, and is another one in the way.

Everything goes through the host's connection (``virsh``, ``/proc``), so it works
the same on this machine and on a compute host reached over SSH.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from onestack.core.host import HostConnection
from onestack.drivers.host import LocalHost
from onestack.drivers.probes import RunsOnAHost
from onestack.drivers.processes import MARKER_VARIABLE
from onestack.errors import CommandError

# The QEMU driver of a privileged libvirtd locks this file (libvirt's own guard
# against two daemons sharing /run/libvirt/qemu): whoever holds it is *the* libvirt
# of the host, whichever socket it listens on.
QEMU_DRIVER_PID = Path("/run/libvirt/qemu/driver.pid")
DAEMONS = ("libvirtd", "virtqemud")
# Where a privileged libvirtd keeps guest definitions (fixed, one per host).
DOMAIN_DIR = Path("/etc/libvirt/qemu")
# The namespace of nova's metadata in a guest definition: a guest nova made.
NOVA_XMLNS = "http://openstack.org/xmlns/libvirt/nova/"


def connection_uri(socket: Path) -> str:
    """nova's and virsh's URI of the system QEMU driver behind this daemon socket."""
    return f"qemu+unix:///system?socket={socket}"


# virtlogd's admin interface (its socket is fixed: /run/libvirt/virtlogd-admin-sock).
VIRTLOGD_ADMIN_URI = "virtlogd:///system"


@dataclass(frozen=True)
class LibvirtProbe(RunsOnAHost):
    """Healthy when libvirtd answers on its socket with the QEMU driver loaded (``virsh
    uri``: a qemu:/// connection opens only then; ``virsh version`` would wait for
    libvirt's probe of QEMU's capabilities, 4-12 s at each start on a busy 2-core
    host); with ``admin``, when a daemon's admin socket answers (``virt-admin``:
    virtlogd)."""

    uri: str
    admin: bool = False
    runs_on: str = ""  # the compute host it is on (empty: this machine)
    via: HostConnection | None = field(default=None, compare=False, repr=False)

    def check(self, timeout: float = 5.0) -> tuple[bool, str]:
        host = self.via or LocalHost()
        tool, command, wanted = (("virt-admin", "version", "library") if self.admin
                                 else ("virsh", "uri", "qemu"))
        try:
            out = host.run([tool, "-c", self.uri, command], timeout=max(timeout, 5))
        except CommandError as exc:
            return False, f"{tool} -c {self.uri}: {exc.output.strip()[-200:]}"
        line = next((ln for ln in out.splitlines() if wanted in ln.lower()), "")
        return bool(line), line.strip() or f"{self.uri}: no {wanted} in `{tool} {command}`"


def qemu_driver_holder(host: HostConnection) -> int | None:
    """The live libvirt daemon whose QEMU driver owns the host, if any."""
    text = host.read_file(QEMU_DRIVER_PID)
    pid = int(text.strip()) if text and text.strip().isdigit() else None
    if pid is None:
        return None
    comm = (host.read_file(Path(f"/proc/{pid}/comm")) or "").strip()
    return pid if comm in DAEMONS else None  # a stale file, or the pid reused


def foreign_daemons(host: HostConnection, log_dir: Path) -> list[str]:
    """Libvirt daemons on the host that are not programs of the site whose log folder
    this is (``drivers.supervisor.program_marker``): the QEMU driver's holder and any
    running ``libvirtd``/``virtqemud``/``virtlogd``, as ``"<name> (pid N)"``."""
    candidates = set(_pids_named(host, (*DAEMONS, "virtlogd")))
    holder = qemu_driver_holder(host)
    if holder is not None:
        candidates.add(holder)
    found = []
    for pid in sorted(candidates):
        if not _of_site(host, pid, log_dir):
            comm = (host.read_file(Path(f"/proc/{pid}/comm")) or "?").strip()
            found.append(f"{comm} (pid {pid})")
    return found


def foreign_guests(host: HostConnection, instances: Path,
                   domains: Path = DOMAIN_DIR) -> list[str]:
    """Guests nova made that the host's libvirt defines but whose disks are not in
    ``instances`` (a site's nova instances folder): another site's, as their names.
    nova-compute of a site that is new to the host refuses to start beside them."""
    script = nova_definitions(instances, ours=False, domains=domains) + \
        'basename "$f" .xml; done; true'
    return host.run(["sh", "-c", script], check=False).split()


def nova_definitions(instances: Path, ours: bool, domains: Path = DOMAIN_DIR) -> str:
    """Shell: the head of a loop over the definitions (``$f``) of guests nova made,
    those of the site whose instances folder this is (``ours``) or every other site's;
    the caller writes the body and ``done``."""
    return (f'for f in "{domains}"/*.xml; do [ -f "$f" ] || continue; '
            f'grep -q "{NOVA_XMLNS}" "$f" || continue; '
            f'grep -q "{instances}/" "$f" {"||" if ours else "&&"} continue; ')


def _pids_named(host: HostConnection, names: tuple[str, ...]) -> list[int]:
    out = host.run(["ps", "-e", "-o", "pid=,comm="], check=False)
    return [int(f[0]) for f in (line.split() for line in out.splitlines())
            if len(f) == 2 and f[0].isdigit() and f[1] in names]


def _of_site(host: HostConnection, pid: int, log_dir: Path) -> bool:
    """Whether a process carries the marker of one of the site's programs."""
    out = host.run(["sh", "-c", 'tr "\\0" "\\n" < "$1" 2>/dev/null; exit 0', "sh",
                    f"/proc/{pid}/environ"], check=False)
    prefix = f"{log_dir}/"
    values = [line.split("=", 1)[1] for line in out.splitlines()
              if line.startswith(f"{MARKER_VARIABLE}=")]
    return any(v.startswith(prefix) for v in values)
