"""Steps of issue 21: users joining groups, a host folder kept closed, the guest filter."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from onestack.core.progress import SilentProgress
from onestack.drivers.host import LocalHost
from onestack.model.paths import SitePaths
from onestack.steps.actions import EnsureSystemUser, KeepFolderClosed
from onestack.steps.context import HostContext
from onestack.steps.ovs_actions import EnsureGuestFilter


class Recorder:
    """Answers ``getent``/``id`` from a table; records every other command."""

    name = "c1"

    def __init__(self, answers: Mapping[str, str]) -> None:
        self.answers = answers
        self.ran: list[tuple[str, ...]] = []
        self.inputs: list[str | None] = []

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 600, check: bool = True,
            input: str | None = None) -> str:
        key = " ".join(argv)
        if argv[0] in ("getent", "id") or key in self.answers:
            return self.answers.get(key, "")
        self.ran.append(tuple(argv))
        self.inputs.append(input)
        return ""


def _ctx(host: object) -> HostContext:
    return HostContext(host, SitePaths(Path("/h"), "lv"), None, SilentProgress())


def test_a_packaged_user_joins_missing_groups_only() -> None:
    host = Recorder({"getent passwd mysql": "mysql:x:101:101::/:/bin/false",
                     "id -nG mysql": "mysql", "getent group onestack": "onestack:x:990:"})
    action = EnsureSystemUser("mysql", ("onestack",))
    fact = action.probe(_ctx(host))
    assert fact == ["mysql"] and action.needed(fact, "done")
    action.apply(_ctx(host))
    assert host.ran == [("usermod", "--append", "--groups", "onestack", "mysql")]
    assert not action.needed(["mysql", "onestack"], "done")


def test_a_new_user_is_made_and_a_missing_group_created() -> None:
    host = Recorder({})
    EnsureSystemUser("nova", ("onestack", "memcache")).apply(_ctx(host))
    assert host.ran[0][:2] == ("useradd", "--system") and host.ran[0][-1] == "nova"
    assert host.ran[1:] == [("groupadd", "--system", "onestack"),
                            ("groupadd", "--system", "memcache"),
                            ("usermod", "--append", "--groups", "onestack,memcache", "nova")]


def test_a_user_without_groups_keeps_its_old_fingerprint() -> None:
    # Plans of sites deployed before do not change for users that join nothing.
    assert EnsureSystemUser("x").fingerprint() != EnsureSystemUser("x", ("g",)).fingerprint()
    assert EnsureSystemUser("x").needed(["x"], None) is False
    assert EnsureSystemUser("x").needed(None, None) is True


@pytest.mark.skipif(os.geteuid() != 0, reason="chown root:root needs root")
def test_a_folder_opened_wide_is_closed_again(tmp_path: Path) -> None:
    # issue 21: neutron's privileged helper (umask 0) made /run/netns 0777.
    folder = tmp_path / "netns"
    action = KeepFolderClosed(folder)
    ctx = _ctx(LocalHost())
    assert action.needed(action.probe(ctx), "done")  # missing: made
    action.apply(ctx)
    assert action.probe(ctx) == ["root:root", 0o755]
    assert not action.needed(action.probe(ctx), "done")
    folder.chmod(0o777)
    assert action.needed(action.probe(ctx), "done")  # opened behind onestack's back
    action.apply(ctx)
    assert folder.stat().st_mode & 0o7777 == 0o755


def test_the_guest_filter_is_loaded_whole_through_nft() -> None:
    host = Recorder({"nft list table inet onestack_lv": ""})
    action = EnsureGuestFilter("onestack_lv", "table inet onestack_lv {}\n")
    assert action.needed(action.probe(_ctx(host)), "done")  # no table: load it
    action.apply(_ctx(host))
    assert host.ran == [("nft", "-f", "-")] and host.inputs == ["table inet onestack_lv {}\n"]
    loaded = Recorder({"nft list table inet onestack_lv": "chain guests-in {\n type filter "
                                                          "hook input priority filter;"})
    assert not action.needed(action.probe(_ctx(loaded)), "done")
