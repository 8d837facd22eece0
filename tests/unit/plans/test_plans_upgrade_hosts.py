"""The upgrade and rollback plans of a site of one controller and two computes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from onestack.core.step import Step, batches
from onestack.plans.upgrade import flipped, rollback_steps, upgrade_steps
from onestack.services import registry
from onestack.services.base import ServiceContext
from onestack.steps.actions import ShipReleaseEnv
from onestack.steps.upgrade_actions import RetireRelease
from support.sites import site_of

ContextFactory = Callable[..., ServiceContext]



@pytest.fixture
def contexts(make_service_context: ContextFactory) -> tuple[ServiceContext, ServiceContext]:
    return _releases(make_service_context, real=False)


def _releases(make_service_context: ContextFactory, *, real: bool
              ) -> tuple[ServiceContext, ServiceContext]:
    """The releases before and after an upgrade of a controller and two computes (on
    libvirt and OVN when ``real``, else the fake driver without a network back end)."""
    site = site_of(2, real=real)
    old = dataclasses.replace(make_service_context(site, series="2026.1"),
                              colors={m.name: "blue" for m in registry.OPENSTACK})
    new = dataclasses.replace(make_service_context(site, series="2026.2"),
                              colors=flipped(old.colors), secrets=old.secrets)
    return old, new


def _noop(_: object) -> None:
    return None


@pytest.fixture
def upgrade(contexts: tuple[ServiceContext, ServiceContext], tmp_path: Path) -> list[Step]:
    return upgrade_steps(*contexts, tmp_path / "backup", None, _noop, _noop)


def _index(steps: list[Step], step_id: str) -> int:
    return [s.id for s in steps].index(step_id)


def test_every_compute_gets_the_new_release_and_config_at_once_in_prepare(
        upgrade: list[Step]) -> None:
    shipped = [s for s in upgrade if isinstance(s.action, ShipReleaseEnv)]
    assert [s.host for s in shipped] == ["cmp1", "cmp2"]
    assert all(s.id.startswith("upgrade-2026.2/prepare/") for s in shipped)
    batch = next(b for b in batches(upgrade) if shipped[0] in b)
    assert {s.host for s in batch} == {"cmp1", "cmp2"}  # both hosts at once
    assert {s.id.rsplit("/", 1)[1] for s in batch} == {"release-env", "config:nova.conf"}


def test_computes_roll_one_after_the_other_after_the_control_plane_then_settle(
        upgrade: list[Step]) -> None:
    p = "upgrade-2026.2/roll/nova"
    scheduler = _index(upgrade, f"{p}/restart:nova-scheduler")
    cmp1 = [_index(upgrade, f"{p}/cmp1/{n}") for n in
            ("program:nova-compute", "supervisor", "restart:nova-compute", "ready:nova-compute")]
    cmp2_start = _index(upgrade, f"{p}/cmp2/program:nova-compute")
    settle = _index(upgrade, f"{p}/settle:nova-conductor")
    assert scheduler < cmp1[0] and cmp1 == sorted(cmp1) and cmp1[-1] < cmp2_start < settle
    assert not [s for s in upgrade if s.host != "ctl1" and s.fanout == ""
                and "/roll/" not in s.id]  # only the roll goes host by host
    # the controller runs no nova-compute: nothing restarts or settles one there
    assert not [s.id for s in upgrade if s.host == "ctl1" and s.id.endswith(":nova-compute")]


def test_commit_retires_the_old_configuration_on_every_compute(
        make_service_context: ContextFactory, tmp_path: Path) -> None:
    # issue 19: with the default drivers, commit once removed the switch's, OVN's and
    # libvirt's programs from every compute (it kept nova-compute and the agent only).
    old, new = _releases(make_service_context, real=True)
    upgrade = upgrade_steps(old, new, tmp_path / "backup", None, _noop, _noop)
    retired = [s for s in upgrade if isinstance(s.action, RetireRelease) and s.host != "ctl1"]
    assert [s.host for s in retired] == ["cmp1", "cmp2"]
    for step in retired:  # each keeps every program the site places there
        assert step.action.keep == (  # type: ignore[attr-defined]
            "libvirtd", "neutron-ovn-agent", "nova-compute", "ovn-controller",
            "ovs-vswitchd", "ovsdb-server", "virtlogd")


def test_the_agents_on_other_chassis_get_their_release_and_roll_after_neutrons_servers(
        make_service_context: ContextFactory, tmp_path: Path) -> None:
    # issue 19: every chassis runs neutron's OVN agent; an upgrade moves each of them.
    old, new = _releases(make_service_context, real=True)
    upgrade = upgrade_steps(old, new, tmp_path / "backup", None, _noop, _noop)
    configs = {(s.host, s.id.rsplit("/", 1)[1]) for s in upgrade
               if "/prepare/neutron/" in s.id and s.host != "ctl1"}
    assert configs == {(h, f"config:{f}") for h in ("cmp1", "cmp2")
                       for f in ("ovn_agent.ini", "rootwrap.conf", "host-key.pem",
                                 "host-cert.pem", "internal-ca.pem")}
    p = "upgrade-2026.2/roll/neutron"
    local = _index(upgrade, f"{p}/restart:neutron-ovn-agent")
    cmp1 = [_index(upgrade, f"{p}/cmp1/{n}") for n in
            ("program:neutron-ovn-agent", "supervisor", "restart:neutron-ovn-agent",
             "ready:neutron-ovn-agent")]
    cmp2 = _index(upgrade, f"{p}/cmp2/restart:neutron-ovn-agent")
    assert local < cmp1[0] and cmp1 == sorted(cmp1) and cmp1[-1] < cmp2
    back = [s.id for s in rollback_steps(old, new)]
    assert back.index("rollback-2026.2/rollback/neutron/restart:neutron-ovn-agent") < \
        back.index("rollback-2026.2/rollback/neutron/cmp1/restart:neutron-ovn-agent")


def test_rollback_resets_the_compute_version_and_moves_computes_after_conductor(
        contexts: tuple[ServiceContext, ServiceContext]) -> None:
    steps = rollback_steps(*contexts)
    p = "rollback-2026.2/rollback/nova"
    before = _index(steps, f"{p}/before:nova-compute")
    swap = _index(steps, f"{p}/swap-api")
    conductor = _index(steps, f"{p}/restart:nova-conductor")
    computes = [_index(steps, f"{p}/{h}/restart:nova-compute") for h in ("cmp1", "cmp2")]
    assert before < swap < conductor < computes[0] < computes[1]
    assert f"{p}/cmp2/ready:nova-compute" in {s.id for s in steps}


def test_every_compute_is_restarted_once_more_after_the_conductor_settles(
        upgrade: list[Step]) -> None:
    p = "upgrade-2026.2/roll/nova"
    conductor = _index(upgrade, f"{p}/settle:nova-conductor")
    scheduler = _index(upgrade, f"{p}/settle:nova-scheduler")
    computes = [_index(upgrade, f"{p}/{h}/settle:nova-compute") for h in ("cmp1", "cmp2")]
    assert conductor < scheduler < computes[0] < computes[1]
    assert [upgrade[i].host for i in computes] == ["cmp1", "cmp2"]


def test_a_controller_over_ssh_is_sent_the_new_release(
        make_service_context: ContextFactory, tmp_path: Path) -> None:
    # issue 22 (ADR 0027): the new release was built on the deploy host only, and
    # the remote controller's next steps found no 2026.2 environment there.
    from onestack.model.site import ConnectionKind
    from onestack.steps.actions import CreateReleaseEnv

    old, new = _releases(make_service_context, real=False)
    assert isinstance(next(s.action for s in upgrade_steps(old, new, tmp_path, None, _noop,
                                                            _noop)
                           if s.id == "upgrade-2026.2/prepare/host/release-env"),
                      CreateReleaseEnv)  # the controller is this machine
    hosts = [h.model_copy(update={"connection": ConnectionKind.SSH}) if i == 0 else h
             for i, h in enumerate(old.site.hosts)]
    site = old.site.model_copy(update={"hosts": hosts})
    old, new = (dataclasses.replace(c, site=site) for c in (old, new))
    step = next(s for s in upgrade_steps(old, new, tmp_path, None, _noop, _noop)
                if s.id == "upgrade-2026.2/prepare/host/release-env")
    assert isinstance(step.action, ShipReleaseEnv) and step.host == "ctl1"
