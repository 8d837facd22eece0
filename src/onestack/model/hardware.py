"""Hardware nodes as declared in the site file (reached through their BMC)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Node(BaseModel):
    """A physical machine with a Redfish BMC.

    ``credentials`` names an entry in the site's secrets store; the secrets hold
    ``<credentials>.username`` and ``<credentials>.password``. Credentials are
    never written inline in the site file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    bmc: str = Field(description="Redfish URL of the BMC, e.g. https://10.0.0.5")
    credentials: str = Field(description="Name of the credentials entry in the site secrets")
    system_id: str | None = Field(default=None,
                                  description="Redfish system identity; default: the only one")
    failure_domain: str | None = None
    role: str | None = None
    verify_tls: bool = True
