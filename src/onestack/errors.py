"""One exception root for onestack; specific errors carry structured fields.

Every error an operator can see derives from :class:`OnestackError`. The CLI
prints ``str(error)`` (and ``error.hint`` when set) and exits non-zero; it never
shows a traceback for these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


class OnestackError(Exception):
    """Root of every error onestack reports to an operator."""

    hint: str | None = None
    exit_code: int = 1

    def to_dict(self) -> dict[str, object]:
        """Structured form for ``--json`` output."""
        return {"error": type(self).__name__, "message": str(self), "hint": self.hint}


@dataclass
class SiteFileError(OnestackError):
    """The site file is malformed or invalid: names file, line and field."""

    path: str
    line: int | None
    field_path: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field_path}: {self.problem}"


@dataclass
class CatalogError(OnestackError):
    """Shipped catalog data (release bundle, HCL, architecture) is missing or invalid."""

    what: str
    problem: str

    def __str__(self) -> str:
        return f"{self.what}: {self.problem}"


@dataclass
class PrerequisiteError(OnestackError):
    """The host cannot run the operation (not root, no apt, wrong Python...)."""

    problem: str
    hint_text: str | None = None

    def __post_init__(self) -> None:
        self.hint = self.hint_text

    def __str__(self) -> str:
        return self.problem


@dataclass
class NotDeployableError(OnestackError):
    """The site's architecture is one this version of onestack does not deploy yet."""

    architecture: str

    def __post_init__(self) -> None:
        self.hint = (f"`onestack plan` shows architecture {self.architecture}'s placement and "
                     "single points of failure; use architecture aio to deploy now")

    def __str__(self) -> str:
        return (f"this version of onestack cannot deploy architecture {self.architecture} "
                "yet; nothing was changed")


@dataclass
class PortInUseError(OnestackError):
    """A port onestack needs is already taken by another process."""

    host: str
    port: int
    holder: str

    def __str__(self) -> str:
        return f"port {self.port} on {self.host} is already in use by {self.holder}"


@dataclass
class CommandError(OnestackError):
    """A command run on a host failed."""

    command: str
    returncode: int
    output: str = ""

    def __str__(self) -> str:
        tail = "\n".join(self.output.strip().splitlines()[-15:])
        return f"command failed ({self.returncode}): {self.command}\n{tail}".rstrip()


@dataclass
class PackageInstallError(OnestackError):
    """A system or Python package could not be installed."""

    packages: list[str]
    output: str = ""

    def __str__(self) -> str:
        tail = "\n".join(self.output.strip().splitlines()[-15:])
        return f"could not install {', '.join(self.packages)}\n{tail}".rstrip()


@dataclass
class ReleaseArchiveError(OnestackError):
    """The packed release on this machine is not what was recorded when it was packed:
    it changed since, so it is sent to no host."""

    path: str
    recorded: str
    found: str

    def __post_init__(self) -> None:
        self.hint = (f"nothing was sent; find out what changed it, then delete {self.path} "
                     "and its .json record: the next run packs the release folder again")

    def __str__(self) -> str:
        return (f"release archive {self.path}: its sha256 is {self.found[:16]}..., not "
                f"{self.recorded[:16]}... as recorded when it was packed: refusing to send it")


@dataclass
class ServiceStartError(OnestackError):
    """A service did not come up; carries its last log lines."""

    service: str
    reason: str
    log_tail: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.service} did not come up: {self.reason}"]
        if self.log_tail:
            lines.append(f"last log lines of {self.service}:")
            lines.extend("  " + line for line in self.log_tail)
        return "\n".join(lines)


@dataclass
class StepFailed(OnestackError):
    """A plan step failed; wraps the cause with the step name."""

    step: str
    cause: str

    def __str__(self) -> str:
        return f"step {self.step} failed: {self.cause}"


@dataclass
class HostStepsFailed(OnestackError):
    """Steps failed on some hosts (or lanes) of a fan-out; the others finished theirs."""

    hosts: list[str]
    causes: str

    def __post_init__(self) -> None:
        self.hint = "fix the cause and run the same command again: it resumes"

    def __str__(self) -> str:
        return f"steps failed on {', '.join(self.hosts)}: {self.causes}"


@dataclass
class SiteLockedError(OnestackError):
    """Another onestack operation holds the site lock."""

    site: str
    holder: str

    def __str__(self) -> str:
        return f"site {self.site} is locked by another operation ({self.holder})"


@dataclass
class SiteNameMismatch(OnestackError):
    """``--site`` names one site while the ``--site-file`` given declares another."""

    site_option: str
    site_file: str
    declared: str

    def __post_init__(self) -> None:
        self.hint = (f"the site file decides which site's secrets and state are used; drop "
                     f"--site, or pass --site {self.declared}")

    def __str__(self) -> str:
        return (f"--site {self.site_option} but {self.site_file} declares site "
                f"{self.declared}")


@dataclass
class ConfirmationNeeded(OnestackError):
    """A command that changes machines has no terminal to ask for confirmation on."""

    action: str
    exit_code: int = 2

    def __post_init__(self) -> None:
        self.hint = "run it again with --yes to confirm without a terminal"

    def __str__(self) -> str:
        return f"{self.action} needs confirmation and there is no terminal to ask on"


@dataclass
class BmcError(OnestackError):
    """A BMC could not be reached or answered badly."""

    node: str
    address: str
    reason: str

    def __str__(self) -> str:
        return f"{self.node} ({self.address}): {self.reason}"


def shown(value: str, limit: int = 60) -> str:
    """A user-supplied value as it may appear in a message: escaped and short."""
    text = value if value.isprintable() else value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass
class InvalidOptionError(OnestackError):
    """A command-line option's value is refused (before anything is read or written)."""

    option: str
    value: str
    problem: str

    def __str__(self) -> str:
        return f"{self.option} {shown(self.value)!r}: {self.problem}"


@dataclass
class EmptyOptionError(InvalidOptionError):
    """An option (or the environment variable standing for it) given as an empty string:
    a usage error (exit 2, as click's own), never read as "not given"."""

    exit_code: int = 2

    def __str__(self) -> str:
        return f"{self.option} is empty: {self.problem}"


@dataclass
class SiteNotFoundError(OnestackError):
    """A command that reads a site was given one that does not exist on this machine."""

    site: str
    home: str
    known: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hint = (f"sites under {self.home}: {', '.join(self.known)}" if self.known else
                     "deploy one with `onestack up` (or `onestack --site NAME up --site-file "
                     "FILE`)")

    def __str__(self) -> str:
        return f"no site {self.site} under {self.home}: nothing was changed"


@dataclass
class StateFileError(OnestackError):
    """A file of the site's state (state.db, secrets) cannot be read as what it should be.

    ``problem`` never quotes the file's content: a secrets file holds passwords.
    """

    path: str
    line: int | None
    problem: str

    def __post_init__(self) -> None:
        self.hint = (f"onestack did not change it; inspect or restore {self.path} "
                     "(from a backup), or move it aside to start that part of the state anew")

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.problem}"


@dataclass
class ContentConflictError(OnestackError):
    """An object of Day-1 content (a network, subnet, router) exists under its name with
    another shape: onestack never changes an operator's object, it names the difference."""

    kind: str
    name: str
    problem: str

    def __post_init__(self) -> None:
        self.hint = (f"rename or delete that {self.kind} (once nothing uses it), or make it "
                     "match, then run the same command again")

    def __str__(self) -> str:
        return f"{self.kind} {self.name} exists, but {self.problem}: onestack leaves it as it is"


@dataclass
class HostError(OnestackError):
    """A host cannot be reached or used; every subclass names the host.

    Subclasses set ``template`` (formatted with the instance's fields) and,
    where there is one, ``hint_template``: one place for each message's wording.
    """

    host: str
    template: ClassVar[str] = "host {host}: failed"
    hint_template: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        if self.hint_template:
            self.hint = self.hint_template.format(**self.__dict__)

    def __str__(self) -> str:
        return self.template.format(**self.__dict__)


@dataclass
class HostUnreachableError(HostError):
    """No SSH session could be opened to the host (refused, no route, timeout)."""

    address: str
    reason: str
    template: ClassVar[str] = "cannot reach host {host} at {address}: {reason}"
    hint_template: ClassVar[str | None] = (
        "is {host} powered on and its sshd running? (onestack lab hosts list)")


@dataclass
class HostConnectionLostError(HostUnreachableError):
    """An open session broke in the middle of a command or transfer: the step may be
    tried again on a new one (the runner does, once)."""


@dataclass
class HostKeyChangedError(HostError):
    """The host presented a key other than the one recorded for it."""

    address: str
    known_hosts: str
    template: ClassVar[str] = (
        "host key of {host} ({address}) does not match the one recorded in "
        "{known_hosts}: refusing to connect")
    hint_template: ClassVar[str | None] = (
        "if {host} was reinstalled on purpose, remove its old key with "
        "`ssh-keygen -f {known_hosts} -R {address}`; otherwise treat it as an attack")


@dataclass
class HostKeyUnknownError(HostError):
    """The host has no entry in the site's known_hosts file."""

    address: str
    known_hosts: str
    template: ClassVar[str] = (
        "host {host} ({address}) has no host key in {known_hosts}: refusing to connect")
    hint_template: ClassVar[str | None] = (
        "add {host}'s key to {known_hosts} (check its fingerprint first)")


@dataclass
class HostAuthError(HostError):
    """The host refused onestack's key."""

    user: str
    key_file: str
    template: ClassVar[str] = "host {host} refused the key {key_file} for user {user}"
    hint_template: ClassVar[str | None] = "add the key's .pub to {user}'s authorized_keys on {host}"


@dataclass
class HostPrerequisiteError(HostError):
    """The host lacks something onestack needs there (python3, root, a command...)."""

    problem: str
    template: ClassVar[str] = "host {host}: {problem}"


@dataclass
class LabHostError(HostError):
    """A lab host (namespaces, bridge, sshd on this machine) could not be set up."""

    problem: str
    template: ClassVar[str] = "{host}: {problem}"  # a lab host's name, or "lab" for all


@dataclass
class GuestImageError(OnestackError):
    """The test image could not be built: which part of the build, and why."""

    part: str
    problem: str
    hint_text: str | None = None

    def __post_init__(self) -> None:
        self.hint = self.hint_text

    def __str__(self) -> str:
        return f"guest image: {self.part}: {self.problem}"


@dataclass
class ForeignGuestsError(HostError):
    """The host's libvirt defines guests another site's nova made: this site's
    nova-compute, new to the host, would refuse to start beside them ("My hypervisor
    has existing instances"), and a purge of this site must not remove them."""

    guests: str
    template: ClassVar[str] = (
        "host {host}: libvirt defines guests of another site ({guests}); one site's "
        "guests per host")
    hint_template: ClassVar[str | None] = (
        "delete that site's servers or run `onestack --site <it> down --purge` (it "
        "removes its guests), then run up again")


@dataclass
class HypervisorInUseError(HostError):
    """Another libvirt daemon already runs the host's QEMU driver: libvirt keeps its
    state under /run/libvirt and /var/lib/libvirt, one daemon per host (ADR 0016)."""

    holder: str
    template: ClassVar[str] = (
        "host {host}: a libvirt daemon that is not this site's runs there ({holder}); "
        "one libvirtd per host")
    hint_template: ClassVar[str | None] = (
        "stop it on {host} (e.g. `systemctl disable --now libvirtd virtqemud`, or `onestack "
        "down` for another site), then run up again")


@dataclass
class KvmUnusableError(HostError):
    """The site asks for KVM but a probe guest does not boot under KVM on the host."""

    problem: str
    template: ClassVar[str] = "host {host}: virt_type kvm was asked for, but {problem}"
    hint_template: ClassVar[str | None] = (
        "set virt_type: auto (software emulation where KVM does not work) or qemu")


@dataclass
class InstanceCheckError(OnestackError):
    """A real-instance check of ``onestack verify`` saw the cloud misbehave. Subclasses
    set ``template`` (formatted with the instance's fields): one place for each wording."""

    template: ClassVar[str] = "instance check failed"

    def __str__(self) -> str:
        return self.template.format(**self.__dict__)


@dataclass
class ServerFaultError(InstanceCheckError):
    """A server went to ERROR: nova's own fault message says why."""

    server: str
    fault: str
    template: ClassVar[str] = "server {server} went to ERROR: {fault}"


@dataclass
class WaitTimeoutError(InstanceCheckError):
    """Something a check waits for did not happen in its bounded time."""

    what: str
    seconds: float
    last_seen: str
    template: ClassVar[str] = "{what}: not within {seconds:.0f}s (last seen: {last_seen})"


@dataclass
class GuestSshError(InstanceCheckError):
    """An SSH session to a guest could not be opened or a command in it failed to run."""

    address: str
    reason: str
    template: ClassVar[str] = "ssh to guest {address}: {reason}"


@dataclass
class MissingContentError(InstanceCheckError):
    """Day-1 content the checks use (image, flavor, network) is not in the cloud."""

    kind: str
    name: str
    template: ClassVar[str] = "{kind} {name} not found (Day-1 content of `onestack up`)"


@dataclass
class CheckFailedError(InstanceCheckError):
    """A guest or the cloud answered, but not as a working cloud would."""

    what: str
    seen: str
    template: ClassVar[str] = "{what}: {seen}"
