"""The network back end's service modules (ADR 0015), in deploy order: the switch on
every chassis before OVN, whose ovn-controller needs it (both are in
``registry.INFRASTRUCTURE``; the OVN data-path e2e runs these two alone)."""

from __future__ import annotations

from onestack.services import ovn, ovs
from onestack.services.base import InfraService

BACK_END: tuple[InfraService, ...] = (ovs, ovn)
