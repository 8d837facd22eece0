"""The upgrade and rollback plans as data: phases, order, what each step moves."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from onestack.core.step import Step
from onestack.plans.upgrade import PHASES, flipped, phase_of, rollback_steps, upgrade_steps
from onestack.services import registry
from onestack.services.base import ServiceContext
from onestack.steps.actions import UpdateSupervisor
from onestack.steps.upgrade_actions import RetireRelease, SwapApi

ContextFactory = Callable[..., ServiceContext]


@pytest.fixture
def contexts(make_service_context: ContextFactory) -> tuple[ServiceContext, ServiceContext]:
    old = make_service_context(series="2026.1")
    new = make_service_context(series="2026.2")
    old = dataclasses.replace(old, colors={m.name: "blue" for m in registry.OPENSTACK})
    new = dataclasses.replace(new, colors=flipped(old.colors), secrets=old.secrets)
    return old, new


def _noop(_: object) -> None:
    return None


@pytest.fixture
def upgrade(contexts: tuple[ServiceContext, ServiceContext], tmp_path: Path) -> list[Step]:
    old, new = contexts
    return upgrade_steps(old, new, tmp_path / "backup", None, _noop, _noop)


@pytest.fixture
def rollback(contexts: tuple[ServiceContext, ServiceContext]) -> list[Step]:
    return rollback_steps(*contexts)


def _ids(steps: list[Step], service: str) -> list[str]:
    return [s.id.split("/", 3)[3] for s in steps if s.service == service]


def test_phases_in_order_and_ids_unique(upgrade: list[Step]) -> None:
    phases = [phase_of(s.id) for s in upgrade]
    assert [p for i, p in enumerate(phases) if p not in phases[:i]] == list(PHASES)
    assert len({s.id for s in upgrade}) == len(upgrade)


def test_services_roll_in_upstream_order(upgrade: list[Step]) -> None:
    rolled = [s.service for s in upgrade if phase_of(s.id) == "roll" and s.service
              in {m.name for m in registry.OPENSTACK}]
    assert list(dict.fromkeys(rolled)) == ["keystone", "placement", "glance", "neutron", "nova"]


def test_nova_rolls_conductor_first_and_compute_last_then_settles(upgrade: list[Step]) -> None:
    nova = [i for i in _ids(upgrade, "nova") if i.startswith(("restart:", "swap-", "settle:"))]
    assert nova == ["restart:nova-conductor", "restart:nova-scheduler", "swap-api",
                    "restart:nova-metadata-api", "restart:nova-compute", "settle:nova-conductor",
                    "settle:nova-scheduler", "settle:nova-compute"]


def test_rollback_goes_back_in_reverse_service_order(rollback: list[Step]) -> None:
    services = [s.service for s in rollback if s.service != "haproxy"]
    assert list(dict.fromkeys(services)) == ["nova", "neutron", "glance", "placement",
                                             "keystone"]


def test_rollback_moves_the_api_first_and_restarts_nothing_twice(rollback: list[Step]) -> None:
    """The API goes back first (nothing sends the newer release's messages any more),
    the newer back end drains its queues, then stops, the stored objects are made
    readable, and each older process starts among older ones only: no second restart."""
    nova = _ids(rollback, "nova")
    moves = [i for i in nova if i.startswith(("restart:", "swap-", "settle:", "ready:"))]
    assert moves == ["swap-api", "restart:nova-conductor", "restart:nova-scheduler",
                     "restart:nova-metadata-api", "restart:nova-compute", "ready:nova-compute"]
    order = ["supervisor:api", "swap-api", "drain", "supervisor", "before-rollback",
             "restart:nova-conductor"]
    assert [nova.index(i) for i in order] == sorted(nova.index(i) for i in order)
    # every version marker goes back before any older nova process starts
    befores = [i for i in nova if i.startswith("before:")]
    assert befores == ["before:nova-conductor", "before:nova-scheduler",
                       "before:nova-metadata-api", "before:nova-compute", "before:nova-api"]
    assert nova.index("before:nova-api") < nova.index("supervisor:api")


def test_rollback_loads_only_the_api_before_its_swap(rollback: list[Step]) -> None:
    """Loading the back end's older definitions stops its newer processes: not before
    the API is back and the queues are drained."""
    loads = {s.id.split("/", 3)[3]: s.action.programs for s in rollback
             if s.service == "nova" and isinstance(s.action, UpdateSupervisor)}
    assert loads == {"supervisor:api": ("nova-api",),
                     "supervisor": ("nova-compute", "nova-conductor", "nova-scheduler"),
                     # the metadata path's: stopped by its own load, just before its start
                     "supervisor:nova-metadata-api": ("nova-metadata-api",)}
    glance = [i for i in _ids(rollback, "glance") if not i.startswith("program:")]
    assert glance == ["supervisor", "swap-api"]


def test_rollback_waits_for_the_compute_heartbeat_last(rollback: list[Step]) -> None:
    """The other services move back while nova-compute starts reporting."""
    ids = [s.id.split("/", 2)[2] for s in rollback]
    # Then only what must hold once every service is back (the metadata proxies).
    assert ids[-2:] == ["nova/ready:nova-compute", "neutron/metadata-provisioned"]
    assert max(i for i, s in enumerate(ids) if s.endswith("swap-api")) < len(ids) - 2


def test_neutron_rewrites_its_ovn_rows_before_its_agent_moves(
        upgrade: list[Step], rollback: list[Step]) -> None:
    """Both ways: the servers of the release the site lands on write the metadata
    ports' rows again (2026.2's agent reads the MTU 2026.1 left empty), then the agent."""
    for steps, phase in ((upgrade, "roll"), (rollback, "rollback")):
        ids = [i for i in _ids([s for s in steps if phase_of(s.id) == phase], "neutron")
               if not i.startswith(("program:", "before:"))]
        rewrite = ids.index("before-agents")
        assert ids.index("restart:neutron-rpc-server") < rewrite
        assert ids.index("restart:neutron-periodic-workers") < rewrite
        # the agent's new definition is loaded (which stops it) just before its start,
        # not with the others: the metadata path is down for its restart only
        assert ids[rewrite + 1:rewrite + 3] == ["supervisor:neutron-ovn-agent",
                                                "restart:neutron-ovn-agent"]
        assert "neutron-ovn-agent" not in [
            p for s in steps if s.id.endswith("/neutron/supervisor")
            for p in s.action.programs]  # type: ignore[attr-defined]
        # nova's metadata API restarts only once the agent serves again: one outage
        # of the metadata path at a time, not the two back to back
        assert ids[rewrite + 3] == "ready:neutron-ovn-agent"


def test_neutron_api_leaves_the_hash_ring_before_it_stops(
        upgrade: list[Step], rollback: list[Step]) -> None:
    """The older API at commit, the newer one in a rollback: out of neutron's OVN hash
    ring (and every worker reloaded it) before the process stops; the instance kept
    warm in the roll stays in it."""
    commit = [s.id.split("/", 2)[2] for s in upgrade if phase_of(s.id) == "commit"]
    assert commit.index("neutron/before-stop:blue") < commit.index("site/retire-2026.1")
    swap_back = next(s for s in rollback if s.id.endswith("neutron/swap-api"))
    assert isinstance(swap_back.action, SwapApi) and swap_back.action.before_stop is not None
    roll = next(s for s in upgrade if s.id.endswith("roll/neutron/swap-api"))
    assert isinstance(roll.action, SwapApi) and roll.action.keep_warm
    others = [s for s in rollback if s.id.endswith("swap-api") and s.service != "neutron"]
    assert others and all(isinstance(s.action, SwapApi) and s.action.before_stop is None
                          for s in others)


def test_the_verify_phase_checks_the_metadata_proxies_before_the_smoke_tests(
        upgrade: list[Step]) -> None:
    verify = [s.id.split("/", 2)[2] for s in upgrade if phase_of(s.id) == "verify"]
    assert verify == ["site/health-gate", "neutron/metadata-provisioned", "site/smoke-tests"]


def test_a_retried_rollback_restarts_the_settle_programs_once(
        rollback: list[Step], contexts: tuple[ServiceContext, ServiceContext]) -> None:
    """After a failed rollback (a process stuck with something of the newer release
    cached), the retry restarts nova's settle programs instead of only waiting; every
    other step keeps its id, so what the failed run did stays done."""
    retry = rollback_steps(*contexts, retry=True)
    nova = [i for i in _ids(retry, "nova") if i.startswith(("settle:", "ready:"))]
    assert nova == ["settle:nova-conductor", "settle:nova-scheduler", "settle:nova-compute"]
    same = {s.id for s in rollback if "/ready:" not in s.id}
    assert same <= {s.id for s in retry}


def test_roll_keeps_the_old_api_instances_up_and_rollback_stops_the_new(
        upgrade: list[Step], rollback: list[Step]) -> None:
    roll = [s.action for s in upgrade if isinstance(s.action, SwapApi)]
    back = [s.action for s in rollback if isinstance(s.action, SwapApi)]
    assert len(roll) == len(back) == len(registry.OPENSTACK)
    assert all(swap.keep_warm for swap in roll)
    assert not any(swap.keep_warm for swap in back)


def test_swaps_point_back_to_the_old_colors(rollback: list[Step],
                                            contexts: tuple[ServiceContext, ServiceContext]
                                            ) -> None:
    old, new = contexts
    swaps = {s.service: s.action for s in rollback if isinstance(s.action, SwapApi)}
    assert set(swaps) == {m.name for m in registry.OPENSTACK}
    for service, swap in swaps.items():
        assert swap.from_server == f"{service}-{new.color(service)}"
        assert swap.to_server == f"{service}-{old.color(service)}"


def test_nothing_in_rollback_runs_schema_migrations(rollback: list[Step]) -> None:
    assert not [s.id for s in rollback if "db-" in s.id or "contract" in s.id]


def test_commit_retires_the_old_release_before_any_contract(
        upgrade: list[Step], contexts: tuple[ServiceContext, ServiceContext]) -> None:
    old, new = contexts
    commit = [s for s in upgrade if "/commit/" in s.id]
    assert commit[0].id.endswith("/commit/site/point-of-no-return")
    assert commit[1].id.endswith("/commit/neutron/before-stop:blue")
    first = commit[2]
    assert first.id.endswith("/commit/site/retire-2026.1")
    assert [s for s in commit[3:] if "contract" in s.id or "migrations" in s.id] == commit[3:]
    retire = first.action
    assert isinstance(retire, RetireRelease)
    assert retire.config_dir == old.paths.etc("2026.1")
    assert "keystone-api-green" in retire.keep and "nova-compute" in retire.keep
    assert "keystone-api" not in retire.keep and "mariadb" in retire.keep


def test_files_the_upgrade_writes_keep_the_deploys_owner_and_mode(
        contexts: tuple[ServiceContext, ServiceContext], upgrade: list[Step],
        rollback: list[Step]) -> None:
    """Else the first `up` after an upgrade rewrites them (found: haproxy.cfg, 0644 in
    the upgrade but 0600 in the deploy, which holds the stats password)."""
    from onestack.plans.deploy import deploy_steps
    from onestack.steps.actions import WriteFile

    old, new = contexts
    deployed = {s.action.path: (s.action.mode, s.action.owner)
                for ctx in (old, new) for s in deploy_steps(ctx)
                if isinstance(s.action, WriteFile)}
    written = [s.action for s in [*upgrade, *rollback] if isinstance(s.action, WriteFile)
               and s.action.path in deployed]
    assert any(a.path.name == "haproxy.cfg" for a in written)
    for action in written:
        assert (action.mode, action.owner) == deployed[action.path], action.path
