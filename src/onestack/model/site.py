"""The typed site model: what the operator declares. Pure data, no I/O."""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Address

from pydantic import BaseModel, ConfigDict, Field, field_validator

from onestack.model.hardware import Node
from onestack.model.ports import MAX_PORT_OFFSET


class Role(StrEnum):
    """What a host does in the cloud."""

    CONTROLLER = "controller"
    COMPUTE = "compute"
    NETWORK = "network"
    STORAGE = "storage"


class ConnectionKind(StrEnum):
    LOCAL = "local"
    SSH = "ssh"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Host(Strict):
    """A machine that runs part of the cloud."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    address: IPv4Address = IPv4Address("127.0.0.1")
    connection: ConnectionKind = ConnectionKind.LOCAL
    roles: list[Role] = Field(default_factory=lambda: [Role.CONTROLLER, Role.COMPUTE,
                                                       Role.NETWORK])
    failure_domain: str | None = None


class Site(Strict):
    """A whole cloud: its release bundle, its hosts, its hardware."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    release: str = Field(description="Release bundle series, e.g. 2026.1")
    architecture: str = "all-in-one"
    region: str = "RegionOne"
    hosts: list[Host] = Field(min_length=1)
    nodes: list[Node] = Field(default_factory=list)
    port_offset: int = Field(default=0, ge=0, le=MAX_PORT_OFFSET,
                             description="Added to every listening port (to run beside others)")

    @field_validator("hosts")
    @classmethod
    def _unique_host_names(cls, hosts: list[Host]) -> list[Host]:
        names = [h.name for h in hosts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate host names: {', '.join(dupes)}")
        return hosts

    @field_validator("nodes")
    @classmethod
    def _unique_node_names(cls, nodes: list[Node]) -> list[Node]:
        names = [n.name for n in nodes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate node names: {', '.join(dupes)}")
        return nodes

    def hosts_with(self, role: Role) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]

    @property
    def controller(self) -> Host:
        """The first controller: where the control plane of a lab runs."""
        controllers = self.hosts_with(Role.CONTROLLER)
        return controllers[0] if controllers else self.hosts[0]


def default_lab_site(name: str = "lab", release: str = "2026.1") -> Site:
    """The embedded default: one local host doing everything."""
    return Site(name=name, release=release, hosts=[Host(name="aio")])
