"""The log lines a failed start shows: the cause of a chained traceback, then the tail."""

from __future__ import annotations

from onestack.drivers.supervisor import failure_excerpt

P = "2026-12-03 10:20:58.689 2 ERROR nova"
NOVA_CRASH = "\n".join([
    "2026-12-03 10:20:57.001 2 INFO nova.service [-] Starting compute node",
    f"{P}.compute.manager [None req-1 - - - - - -] Error starting: x",
    f"{P} Traceback (most recent call last):",
    f'{P}   File "nova/virt/libvirt/host.py", line 9, in _connect',
    f"{P}     raise exception.HypervisorUnavailable(host=host)",
    f"{P} nova.exception.HypervisorUnavailable: Connection to the hypervisor is broken",
    f"{P} During handling of the above exception, another exception occurred:",
    *[f'{P}   File "oslo_service/service.py", line {n}, in stop\n{P}     self.stop()'
      for n in range(30)],
    f"{P} AttributeError: 'ComputeManager' object has no attribute 'rpcserver_alt'",
    f"{P}",
])


def test_the_first_exception_of_a_chain_comes_before_the_tail() -> None:
    lines = failure_excerpt(NOVA_CRASH, 10)
    assert lines[0].endswith("HypervisorUnavailable: Connection to the hypervisor is broken")
    assert lines[1] == "[…]"
    assert lines[2:] == NOVA_CRASH.splitlines()[-10:]
    assert len(lines) == 12


def test_a_cause_repeated_by_restarts_is_shown_once() -> None:
    lines = failure_excerpt("\n".join([NOVA_CRASH] * 3), 10)
    causes = lines[:lines.index("[…]")]
    assert len(causes) == 1 and "HypervisorUnavailable" in causes[0]


def test_frames_and_code_lines_are_not_causes() -> None:
    text = "\n".join([f"{P}     raise exception.HypervisorUnavailable(host=host)",
                      f"{P}     except libvirt.libvirtError:", *["ok"] * 5])
    assert failure_excerpt(text, 5) == ["ok"] * 5


def test_a_short_log_is_returned_whole() -> None:
    text = "a\nValueError: bad\nb"
    assert failure_excerpt(text, 20) == ["a", "ValueError: bad", "b"]
    assert failure_excerpt("", 20) == []


def test_critical_lines_of_other_formats_and_at_most_six_causes() -> None:
    causes = [f"x CRITICAL keystone [-] Unhandled error: Error{n}: boom" for n in range(9)]
    lines = failure_excerpt("\n".join([*causes, "t1", "t2"]), 2)
    assert lines == [*causes[-6:], "[…]", "t1", "t2"]
