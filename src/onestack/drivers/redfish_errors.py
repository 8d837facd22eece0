"""Errors a BMC can cause, one class per status an operator sees for a node.

They subclass :class:`onestack.errors.BmcError`; ``status`` is the node's
discovery status when the error ends a read.
"""

from __future__ import annotations

from typing import ClassVar

from onestack.errors import BmcError
from onestack.model.hardware import DiscoveryStatus


class BmcFault(BmcError):
    """A BMC error that also says which discovery status it leaves the node in."""

    status: ClassVar[DiscoveryStatus] = DiscoveryStatus.ERROR


class BmcUnreachable(BmcFault):
    """No TCP connection to the BMC (refused, no route, DNS)."""

    status: ClassVar[DiscoveryStatus] = DiscoveryStatus.UNREACHABLE
    hint: str | None = ("check the BMC address in the site file and that the BMC network "
                        "is reachable")


class BmcAuthFailed(BmcFault):
    """The BMC refused the credentials (401/403)."""

    status: ClassVar[DiscoveryStatus] = DiscoveryStatus.AUTH_FAILED
    hint: str | None = "check the node's credentials entry in the site secrets"


class BmcTlsError(BmcFault):
    """TLS handshake or certificate verification failed."""

    status: ClassVar[DiscoveryStatus] = DiscoveryStatus.TLS_ERROR
    hint: str | None = "install the BMC's CA certificate, or set verify_tls: false for this node"


class BmcTimeout(BmcFault):
    """The BMC did not answer within the time allowed."""

    status: ClassVar[DiscoveryStatus] = DiscoveryStatus.TIMEOUT


class BmcMalformedResponse(BmcFault):
    """The BMC answered with JSON that is invalid or lacks required fields."""

    status: ClassVar[DiscoveryStatus] = DiscoveryStatus.MALFORMED


class BmcRequestFailed(BmcFault):
    """The BMC answered with an HTTP error or refused an action."""

    status: ClassVar[DiscoveryStatus] = DiscoveryStatus.ERROR
