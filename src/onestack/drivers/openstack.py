"""OpenStack APIs through openstacksdk: catalog registration and cloud checks.

Foreign exceptions (keystoneauth, openstacksdk) become :class:`CloudApiError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from onestack.errors import OnestackError


@dataclass
class CloudApiError(OnestackError):
    """An OpenStack API call failed."""

    call: str
    reason: str

    def __str__(self) -> str:
        return f"{self.call}: {self.reason}"


@dataclass(frozen=True)
class CatalogEntry:
    """A service in the keystone catalog, with its user."""

    name: str
    type: str
    url: str
    user: str | None
    password: str | None


@contextmanager
def translated(call: str) -> Iterator[None]:
    """Turn any openstacksdk/keystoneauth error into CloudApiError."""
    try:
        yield
    except OnestackError:
        raise
    except Exception as exc:  # foreign exceptions end here, by design
        raise CloudApiError(call, f"{type(exc).__name__}: {exc}") from None


def connect(auth_url: str, password: str, region: str, username: str = "admin",
            project: str = "admin") -> Any:
    """An openstacksdk connection as a keystone user."""
    import openstack

    with translated("connect to keystone"):
        conn = openstack.connect(
            auth_url=auth_url, username=username, password=password, project_name=project,
            user_domain_name="Default", project_domain_name="Default", region_name=region,
            identity_api_version="3", interface="public")
        conn.authorize()
        return conn


def ensure_catalog(conn: Any, region: str, entries: list[CatalogEntry]) -> None:
    """Service project, roles, service users (admin + service roles), and the
    public and internal endpoint of every service. Idempotent."""
    with translated("register catalog"):
        project = (conn.identity.find_project("service", domain_id="default")
                   or conn.identity.create_project(name="service", domain_id="default"))
        roles = {r: conn.identity.find_role(r) or conn.identity.create_role(name=r)
                 for r in ("admin", "service", "member", "reader")}
        for entry in entries:
            if entry.user and entry.password:
                _ensure_user(conn, entry, project, [roles["admin"], roles["service"]])
            _ensure_endpoints(conn, region, entry)


def _ensure_user(conn: Any, entry: CatalogEntry, project: Any, roles: list[Any]) -> None:
    user = conn.identity.find_user(entry.user, domain_id="default")
    if user is None:
        user = conn.identity.create_user(name=entry.user, password=entry.password,
                                         domain_id="default", default_project_id=project.id)
    else:
        conn.identity.update_user(user, password=entry.password)
    for role in roles:
        conn.identity.assign_project_role_to_user(project, user, role)


def _ensure_endpoints(conn: Any, region: str, entry: CatalogEntry) -> None:
    service = conn.identity.find_service(entry.name)
    if service is None:
        service = conn.identity.create_service(name=entry.name, type=entry.type, enabled=True)
    existing = {e.interface: e for e in conn.identity.endpoints(service_id=service.id)}
    for interface in ("public", "internal", "admin"):
        endpoint = existing.get(interface)
        if endpoint is None:
            conn.identity.create_endpoint(service_id=service.id, interface=interface,
                                          url=entry.url, region_id=region)
        elif endpoint.url != entry.url:
            conn.identity.update_endpoint(endpoint, url=entry.url)


# --- compute hosts ------------------------------------------------------------------


@dataclass
class HostHasServersError(OnestackError):
    """A compute host still runs servers, so it cannot leave the cloud."""

    host: str
    servers: list[str]

    def __str__(self) -> str:
        shown = ", ".join(self.servers[:10]) + (" ..." if len(self.servers) > 10 else "")
        return (f"compute host {self.host} still has {len(self.servers)} server(s): {shown}; "
                f"it is disabled (no new server lands there): migrate or delete them, then "
                f"run the same command again")


def compute_service(conn: Any, host: str) -> Any | None:
    """The nova-compute service record of a host, or None."""
    with translated(f"find nova-compute of {host}"):
        found = list(conn.compute.services(binary="nova-compute", host=host))
    return found[0] if found else None


def disable_compute(conn: Any, host: str, reason: str) -> list[str]:
    """Disable a host's nova-compute (nothing new is scheduled there); return its
    servers (all projects) as ``name (id)``."""
    service = compute_service(conn, host)
    if service is None:
        return []
    with translated(f"disable nova-compute on {host}"):
        if service.status != "disabled":
            conn.compute.disable_service(service, host, "nova-compute",
                                         disabled_reason=reason)
    return servers_on(conn, host)


def servers_on(conn: Any, host: str) -> list[str]:
    """Every server (all projects) on a compute host, as ``name (id)``."""
    with translated(f"list servers on {host}"):
        # compute_host: openstacksdk drops a query parameter it does not map ("host").
        servers = conn.compute.servers(all_projects=True, compute_host=host)
        return [f"{s.name} ({s.id})" for s in servers]


def delete_compute(conn: Any, host: str) -> bool:
    """Delete a host's nova-compute record: nova removes its compute node, its resource
    provider and its cell mapping. False if there was none."""
    service = compute_service(conn, host)
    if service is None:
        return False
    with translated(f"delete nova-compute of {host}"):
        conn.compute.delete_service(service)
    return True
