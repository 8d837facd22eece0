"""neutron's part in an upgrade, as data: which networks its agent provisioned since
it started, read from the agent's own log lines."""

from __future__ import annotations

import time

from onestack.services import neutron

NET_A = "967b7746-3176-4bf6-bdd4-9c8d7ba4bf60"
NET_B = "648d59a7-b922-4530-9f32-a303afae6c49"


def _at(stamp: str) -> float:
    return time.mktime(time.strptime(stamp, neutron.LOG_TIME))


def test_only_what_the_agent_provisioned_since_its_start_counts() -> None:
    log = "\n".join([
        f"2026-12-07 06:55:39.330 6546 INFO neutron.agent.ovn.metadata.agent [-] "
        f"Provisioning metadata for network {NET_A}",
        "2026-12-07 07:10:01.001 7001 INFO oslo.privsep.daemon [-] privsep daemon running",
        f"2026-12-07 07:10:02.500 7001 INFO neutron.agent.ovn.metadata.agent [-] "
        f"Provisioning metadata for network {NET_B}",
        "2026-12-07 07:10:03.000 7001 ERROR ovsdbapp.event [-] Unexpected exception in "
        "notify_loop: ValueError: invalid literal for int() with base 10: ''",
    ])
    assert neutron.provisioned_since(log, _at("2026-12-07 07:10:00")) == {NET_B}
    assert neutron.provisioned_since(log, _at("2026-12-07 06:00:00")) == {NET_A, NET_B}
    assert neutron.provisioned_since("", 0) == set()


def test_the_agent_counts_as_started_once_it_logs_so_after_its_start() -> None:
    log = "\n".join([
        "2026-12-07 13:32:37.275 4288 INFO neutron.agent.ovn.agent.ovn_neutron_agent [-] "
        "OVN Neutron Agent started",
        "2026-12-07 13:35:51.273 4222 INFO cotyledon._service_manager [-] Caught SIGTERM",
        "2026-12-07 13:36:17.085 5273 INFO neutron.agent.agent_extensions_manager [-] "
        "Loaded agent extensions: ['metadata']",
    ])
    restarted = _at("2026-12-07 13:36:16")
    assert not neutron.logged_since(neutron.AGENT_STARTED, log, restarted)  # the old one's
    log += ("\n2026-12-07 13:36:30.323 5273 INFO neutron.agent.ovn.agent.ovn_neutron_agent "
            "[-] OVN Neutron Agent started")
    assert neutron.logged_since(neutron.AGENT_STARTED, log, restarted)
    assert not neutron.logged_since(neutron.AGENT_STARTED, "", 0)
