"""The network back end's service modules (ADR 0015), in deploy order: the switch on
every chassis before OVN, whose ovn-controller needs it.

Not in ``registry`` yet: listing them there deploys them with every site. Typed here
so mypy checks both modules against ``InfraService`` meanwhile.
"""

from __future__ import annotations

from onestack.services import ovn, ovs
from onestack.services.base import InfraService

BACK_END: tuple[InfraService, ...] = (ovs, ovn)
