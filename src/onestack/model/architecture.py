"""Reference architectures as data, and what they say about a site. Pure, no I/O.

An architecture (``catalog/architectures/<name>.yaml``) names the rules a site must
keep (how many hosts of each role, in how many failure domains) and the components
of the cloud: where each runs, how its instances back each other up, and what the
loss of the last one takes down. From those and a site this module derives the
placement of components per host, the rules the site breaks, and its single points
of failure: components, and failure domains as a whole, whose loss takes something
down (ADR 0024).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from onestack.errors import CatalogError
from onestack.model.site import ComputeDriver, Host, NetworkBackend, Role, Site

# The name sites had before architectures were data (``Site.architecture``'s default).
FORMER_NAMES = {"all-in-one": "aio"}
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"


class Severity(StrEnum):
    """How much the loss of a component's last instance takes down."""

    CRITICAL = "critical"  # the whole cloud: no API answers, or nothing can change
    HIGH = "high"  # a service of the cloud, or every guest's network
    MEDIUM = "medium"  # part of a service; running guests keep running
    LOW = "low"  # slower, or a convenience lost


SEVERITY_ORDER = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)


class Placement(StrEnum):
    """Which of the hosts with its roles run a component."""

    FIRST = "first"  # the first of them: one instance
    EVERY = "every"  # every one of them


class Redundancy(StrEnum):
    """How a component's instances back each other up: how many it needs left."""

    NONE = "none"  # every instance is needed
    ACTIVE = "active-active"  # any serves: it lives while one is left
    STANDBY = "active-standby"  # one serves, another takes over: lives while one is left
    QUORUM = "quorum"  # serves while a majority is left (Galera, Raft, quorum queues)

    def survives(self, instances: int, left: int) -> bool:
        """Whether the component still serves with ``left`` of its ``instances``."""
        if instances == 0:
            return True  # nothing was there to lose (reported as absent instead)
        if self in (Redundancy.ACTIVE, Redundancy.STANDBY):
            return left >= 1
        if self == Redundancy.QUORUM:
            return 2 * left > instances
        return left == instances


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleRule(_Strict):
    """How many hosts of a role a site of the architecture has, and how spread."""

    min: int = Field(default=0, ge=0, le=1000)
    max: int | None = Field(default=None, ge=1, le=1000)
    # Each of them in a failure domain of its own (named in the site file).
    distinct_failure_domains: bool = False
    # Spread over at least this many failure domains (named in the site file).
    min_failure_domains: int = Field(default=0, ge=0, le=1000)


class Component(_Strict):
    """One part of the cloud: where it runs and what its loss takes down."""

    name: str = Field(pattern=NAME_PATTERN)
    layer: str = Field(max_length=40)
    on: tuple[Role, ...] = Field(min_length=1)  # hosts with any of these roles
    placement: Placement
    redundancy: Redundancy
    severity: Severity
    loss: str = Field(max_length=200)  # what losing its last instance takes down
    # Only on sites with this network back end / compute driver (None: on every site).
    network: NetworkBackend | None = None
    compute_driver: ComputeDriver | None = None

    def applies_to(self, site: Site) -> bool:
        return (self.network in (None, site.network)
                and self.compute_driver in (None, site.compute_driver))

    def hosts(self, site: Site) -> list[Host]:
        """The hosts that run it on that site (none where it does not apply)."""
        if not self.applies_to(site):
            return []
        candidates = [h for h in site.hosts if any(r in h.roles for r in self.on)]
        return candidates[:1] if self.placement == Placement.FIRST else candidates


class Architecture(_Strict):
    """A reference architecture: its rules and components, shipped as data."""

    name: str = Field(pattern=NAME_PATTERN)
    summary: str = Field(max_length=400)
    # Whether this version of onestack deploys it (``up``); ``plan`` shows every one.
    deployable: bool
    roles: dict[Role, RoleRule]
    components: tuple[Component, ...] = Field(min_length=1)

    def component(self, name: str) -> Component:
        """The component of that name (a KeyError names it and the architecture)."""
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(f"architecture {self.name} has no component {name}")


def parse_architecture(document: Any, source: str) -> Architecture:
    """A catalog document as an architecture; CatalogError naming the file if invalid."""
    try:
        return Architecture.model_validate(document)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in err["loc"]) or "(top)"
        raise CatalogError(source, f"{where}: {err['msg']}") from None


def canonical_name(name: str) -> str:
    """An architecture's name, its former name translated."""
    return FORMER_NAMES.get(name, name)


# --- rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Breach:
    """A rule of the architecture the site breaks, and the hosts concerned."""

    rule: str
    problem: str
    hosts: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "problem": self.problem, "hosts": list(self.hosts)}


def failure_domain(host: Host) -> str | None:
    return host.failure_domain


def breaches(site: Site, architecture: Architecture) -> list[Breach]:
    """Every rule of the architecture the site breaks, role by role."""
    found: list[Breach] = []
    for role, rule in architecture.roles.items():
        found += _role_breaches(site.hosts_with(role), role, rule, architecture.name)
    return found


def _role_breaches(hosts: list[Host], role: Role, rule: RoleRule,
                   architecture: str) -> list[Breach]:
    names = tuple(h.name for h in hosts)
    has = f"the site has {_count(len(hosts), role)}" + (f" ({', '.join(names)})" if names
                                                         else "")
    found: list[Breach] = []
    if rule.max is not None and rule.min == rule.max and len(hosts) != rule.min:
        found.append(Breach(f"{role.value} count", f"architecture {architecture} needs "
                            f"exactly {_count(rule.min, role)}; {has}", names))
    elif len(hosts) < rule.min:
        found.append(Breach(f"{role.value} count", f"architecture {architecture} needs at "
                            f"least {_count(rule.min, role)}; {has}", names))
    elif rule.max is not None and len(hosts) > rule.max:
        found.append(Breach(f"{role.value} count", f"architecture {architecture} allows at "
                            f"most {_count(rule.max, role)}; {has}", names))
    if rule.distinct_failure_domains or rule.min_failure_domains:
        found += _spread_breaches(hosts, role, rule, architecture)
    return found


def _count(number: int, role: Role) -> str:
    return f"{number} {role.value}{'' if number == 1 else 's'}"


def _spread_breaches(hosts: list[Host], role: Role, rule: RoleRule,
                     architecture: str) -> list[Breach]:
    unset = tuple(h.name for h in hosts if failure_domain(h) is None)
    if unset:
        return [Breach(f"{role.value} failure domains", f"architecture {architecture} places "
                       f"{role.value}s by failure domain: give {', '.join(unset)} a "
                       "failure_domain (the rack, room or power feed it shares with others)",
                       unset)]
    domains = _group_by_domain(hosts)
    if rule.distinct_failure_domains:
        shared = {d: members for d, members in domains.items() if len(members) > 1}
        if shared:
            domain, members = sorted(shared.items())[0]
            return [Breach(f"{role.value} failure domains", f"architecture {architecture} "
                           f"needs each {role.value} in a failure domain of its own; "
                           f"{', '.join(members)} share {domain}", tuple(members))]
    if len(domains) < rule.min_failure_domains:
        names = tuple(h.name for h in hosts)
        return [Breach(f"{role.value} failure domains", f"architecture {architecture} needs "
                       f"{role.value}s in at least {rule.min_failure_domains} failure "
                       f"domains; {', '.join(names) or 'none'} "
                       f"{'are' if len(names) > 1 else 'is'} in {len(domains)}", names)]
    return []


def _group_by_domain(hosts: Sequence[Host]) -> dict[str, list[str]]:
    """Hosts by failure domain; a host without one is a domain of its own."""
    domains: dict[str, list[str]] = {}
    for host in hosts:
        domains.setdefault(failure_domain(host) or f"host {host.name}", []).append(host.name)
    return domains


# --- placement and single points of failure -------------------------------------------


def placement(site: Site, architecture: Architecture) -> dict[str, list[str]]:
    """The components each host runs, hosts in the site file's order."""
    placed: dict[str, list[str]] = {h.name: [] for h in site.hosts}
    for component in architecture.components:
        for host in component.hosts(site):
            placed[host.name].append(component.name)
    return placed


@dataclass(frozen=True)
class SinglePoint:
    """Something whose loss takes part of the cloud down: one component (its only
    instance, or one of too few), or a failure domain as a whole."""

    what: str  # a component's name, or "failure domain <name>"
    kind: str  # "component", "failure domain" or "absent"
    hosts: tuple[str, ...]
    takes_down: str
    severity: Severity

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "kind": self.kind, "hosts": list(self.hosts),
                "takes_down": self.takes_down, "severity": self.severity.value}


def single_points_of_failure(site: Site, architecture: Architecture) -> list[SinglePoint]:
    """Components whose loss of one instance, and failure domains whose loss as a
    whole, takes something down; the most severe first."""
    found = [*_lone_components(site, architecture), *_domain_losses(site, architecture)]
    return sorted(found, key=lambda s: SEVERITY_ORDER.index(s.severity))


def _lone_components(site: Site, architecture: Architecture) -> list[SinglePoint]:
    found = []
    for component in architecture.components:
        if not component.applies_to(site):
            continue
        hosts = tuple(h.name for h in component.hosts(site))
        if not hosts:
            found.append(SinglePoint(component.name, "absent", (), component.loss,
                                     component.severity))
        elif not component.redundancy.survives(len(hosts), len(hosts) - 1):
            found.append(SinglePoint(component.name, "component", hosts,
                                     component.loss, component.severity))
    return found


def _domain_losses(site: Site, architecture: Architecture) -> list[SinglePoint]:
    """Each failure domain (a host without one is its own) lost at once."""
    domains = _group_by_domain(site.hosts)
    if len(domains) < 2 and not any(h.failure_domain for h in site.hosts):
        return []  # one host without a domain: its components are listed already
    found = []
    for domain, members in domains.items():
        lost = [c for c in architecture.components
                if _lost_with(c, site, set(members))]
        if lost:
            worst = min((c.severity for c in lost), key=SEVERITY_ORDER.index)
            found.append(SinglePoint(f"failure domain {domain}", "failure domain",
                                     tuple(members), ", ".join(c.name for c in lost), worst))
    return found


def _lost_with(component: Component, site: Site, hosts: set[str]) -> bool:
    placed = [h.name for h in component.hosts(site)]
    left = sum(1 for name in placed if name not in hosts)
    return len(placed) > left and not component.redundancy.survives(len(placed), left)


@dataclass(frozen=True)
class ArchitectureReport:
    """What ``plan`` shows before anything runs: placement, breaches, SPOFs."""

    architecture: str
    summary: str
    deployable: bool
    placement: Mapping[str, list[str]]
    breaches: tuple[Breach, ...]
    single_points: tuple[SinglePoint, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.architecture, "summary": self.summary,
                "deployable": self.deployable,
                "placement": {host: list(names) for host, names in self.placement.items()},
                "breaches": [b.to_dict() for b in self.breaches],
                "single_points_of_failure": [s.to_dict() for s in self.single_points]}


def report(site: Site, architecture: Architecture) -> ArchitectureReport:
    return ArchitectureReport(architecture.name, architecture.summary, architecture.deployable,
                              placement(site, architecture),
                              tuple(breaches(site, architecture)),
                              tuple(single_points_of_failure(site, architecture)))


def parse_architectures(documents: Mapping[str, tuple[str, Any]]) -> dict[str, Architecture]:
    """The catalog's documents (``catalog.architectures``) as architectures, by name."""
    return {name: parse_architecture(document, source)
            for name, (source, document) in documents.items()}
