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


# How long "the identity API did not answer" stands for every probe of one plan: the
# first probe waits ANSWER_TIMEOUT, the others ask nothing (HAProxy holds a request to
# an API without an instance for 15 s, and keystoneauth retries its discovery).
ANSWER_TIMEOUT = 3.0
NOT_ANSWERING_FOR = 30.0
_not_answering: dict[str, float] = {}


def answers(auth_url: str, timeout: float = ANSWER_TIMEOUT, cacert: str = "") -> bool:
    """Whether the identity API at ``auth_url`` answers an HTTP request within
    ``timeout`` (any status). A negative answer is remembered NOT_ANSWERING_FOR
    seconds: facts gathered for a plan while the APIs are stopped cost one wait."""
    import ssl
    import time
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=cacert) if cacert else None
    if time.monotonic() - _not_answering.get(auth_url, -NOT_ANSWERING_FOR) < NOT_ANSWERING_FOR:
        return False
    try:
        with urllib.request.urlopen(auth_url, timeout=timeout,  # noqa: S310 (our URL)
                                    context=context):
            pass
    except urllib.error.HTTPError:
        pass  # it answered
    except (urllib.error.URLError, OSError):
        _not_answering[auth_url] = time.monotonic()
        return False
    _not_answering.pop(auth_url, None)
    return True


def connect(auth_url: str, password: str, region: str, username: str = "admin",
            project: str = "admin", *, cacert: str = "") -> Any:
    """An openstacksdk connection as a keystone user (``cacert``: the CA the APIs'
    certificate must chain to)."""
    import openstack

    tls: dict[str, Any] = {"cacert": cacert} if cacert else {}
    with translated("connect to keystone"):
        conn = openstack.connect(
            auth_url=auth_url, username=username, password=password, project_name=project,
            user_domain_name="Default", project_domain_name="Default", region_name=region,
            identity_api_version="3", interface="public", **tls)
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


# --- network ------------------------------------------------------------------------

# neutron's device owner of a network's metadata port (ML2/OVN: a localport per network).
METADATA_PORT_OWNER = "network:distributed"


def rewrite_ports(conn: Any, device_owner: str) -> list[str]:
    """Update every port of this owner with its own name: neutron's ML2 driver runs its
    ``update_port`` for each, so the back end's rows (OVN's logical switch ports) are
    written again by the server's code as it is now. Returns the ports' ids."""
    with translated(f"list ports of {device_owner}"):
        ports = list(conn.network.ports(device_owner=device_owner))
    for port in ports:
        with translated(f"update port {port.id}"):
            # By id, so the name is sent even though it did not change.
            conn.network.update_port(port.id, name=port.name or "")
    return [port.id for port in ports]


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
