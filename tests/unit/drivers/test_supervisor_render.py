"""Program and supervisord configuration, read back by supervisord's own parser."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path
from typing import Any

import pytest
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from onestack.drivers.supervisor import (
    TREE_WRAPPER,
    Program,
    render_program,
    render_supervisord_conf,
)


def _load(tmp_path: Path, *programs: Program) -> dict[str, Any]:
    """Render a site's supervisord config and programs; parse them as supervisord does."""
    run, log, progs = tmp_path / "run", tmp_path / "log", tmp_path / "supervisor"
    for d in (run, log, progs):
        d.mkdir(exist_ok=True)
    conf = run / "supervisord.conf"
    conf.write_text(render_supervisord_conf(run, log, progs))
    for program in programs:
        (progs / f"{program.name}.conf").write_text(render_program(program, log))
    options = ServerOptions()
    options.configfile = str(conf)
    options.process_config(do_usage=False)
    return {g.name: g.process_configs[0] for g in options.process_group_configs} | {
        "_options": options}


def test_main_config_points_at_site_dirs(tmp_path: Path) -> None:
    options = _load(tmp_path)["_options"]
    [server] = options.configroot.supervisord.server_configs
    assert server["file"] == str(tmp_path / "run" / "supervisor.sock")
    assert server["chmod"] == 0o700
    assert options.logfile == str(tmp_path / "log" / "supervisord.log")
    assert options.pidfile == str(tmp_path / "run" / "supervisord.pid")
    assert options.minfds == 4096
    assert options.umask == 0o077  # the logs it creates and rotates are root's alone


def test_programs_keep_their_umask_whatever_supervisords(tmp_path: Path) -> None:
    loaded = _load(tmp_path, Program("plain", ["/bin/true"]),
                   Program("shared", ["/bin/true"], group="nova", umask=0o007))
    assert (loaded["plain"].umask, loaded["shared"].umask) == (0o022, 0o007)


def test_a_service_users_program_starts_in_a_folder_it_can_enter(tmp_path: Path) -> None:
    # The log folder is root's (0750): root's programs start there, a user's in /.
    loaded = _load(tmp_path, Program("mine", ["/bin/true"]),
                   Program("theirs", ["/bin/true"], user="nova"))
    assert (loaded["mine"].directory, loaded["theirs"].directory) == (str(tmp_path / "log"), "/")


def test_program_autostart_false_and_restarts(tmp_path: Path) -> None:
    program = Program("keystone-api", ["/venv/bin/uwsgi", "--ini", "/etc/k.ini"],
                      stopsignal="USR1", startsecs=1, stopwaitsecs=60)
    pc = _load(tmp_path, program)["keystone-api"]
    # onestack orders start-up itself and waits for health: supervisord must not start it.
    assert pc.autostart is False
    assert pc.autorestart is RestartUnconditionally
    assert pc.stopsignal == signal.SIGUSR1
    assert (pc.startsecs, pc.stopwaitsecs, pc.startretries) == (1, 60, 5)
    assert pc.stopasgroup and pc.killasgroup and pc.redirect_stderr
    assert pc.stdout_logfile == str(tmp_path / "log" / "keystone-api.log")
    assert pc.directory == str(tmp_path / "log")


@pytest.mark.parametrize("arg", ["plain", "two words", "100%", 'say "hi"', "semi;colon",
                                 "#hash", "it's", "", "--opt=a b"])
def test_command_arguments_survive_quoting(tmp_path: Path, arg: str) -> None:
    pc = _load(tmp_path, Program("p", ["/bin/echo", arg, "tail"]))["p"]
    assert shlex.split(pc.command) == [*TREE_WRAPPER, "/bin/echo", arg, "tail"]


def test_environment_and_user(tmp_path: Path) -> None:
    env = {"OS_NOVA_CONFIG_DIR": "/etc/nova", "RABBITMQ_NODENAME": "onestack-lab@localhost",
           "SPACED": "two words", "LIST": "a,b"}
    pc = _load(tmp_path, Program("p", ["/bin/true"], env, user="nobody"))["p"]
    # The user is switched inside the program's PID namespace (creating one needs root).
    assert pc.uid is None
    assert shlex.split(pc.command) == [*TREE_WRAPPER, "/usr/bin/setpriv", "--reuid=nobody",
                                       "--regid=nobody", "--init-groups", "--", "/bin/true"]
    pc = _load(tmp_path, Program("p", ["/bin/true"], env))["p"]
    assert pc.environment == {**env, "ONESTACK_PROGRAM": f"{tmp_path}/log/p"}


def test_every_program_carries_its_marker(tmp_path: Path) -> None:
    # What finds a program's leftover processes after a crash (drivers/processes.py).
    pc = _load(tmp_path, Program("p", ["/bin/true"]))["p"]
    assert pc.environment == {"ONESTACK_PROGRAM": f"{tmp_path}/log/p"}


def test_explicit_directory_wins(tmp_path: Path) -> None:
    pc = _load(tmp_path, Program("p", ["/bin/true"], directory="/srv"))["p"]
    assert pc.directory == "/srv"


def test_environment_value_with_percent(tmp_path: Path) -> None:
    env = {"PASSWORD": "50%off"}
    assert _load(tmp_path, Program("p", ["/bin/true"], env))["p"].environment["PASSWORD"] == (
        "50%off")


def test_environment_value_with_quote(tmp_path: Path) -> None:
    env = {"GREETING": 'say "hi" now'}
    assert _load(tmp_path, Program("p", ["/bin/true"], env))["p"].environment["GREETING"] == (
        'say "hi" now')


def test_environment_value_ending_in_quote_is_refused() -> None:
    # supervisord strips quote characters at both ends: refuse rather than corrupt.
    with pytest.raises(ValueError):
        render_program(Program("p", ["/bin/true"], {"GREETING": 'say "hi"'}), Path("/l"))


def test_command_argument_with_backslash(tmp_path: Path) -> None:
    pc = _load(tmp_path, Program("p", ["/bin/echo", "a\\b"]))["p"]
    assert shlex.split(pc.command) == [*TREE_WRAPPER, "/bin/echo", "a\\b"]


# --- answers of the RPC script a HostSupervisor runs on a host ------------------------

def test_rpc_answers_become_results_faults_or_os_errors() -> None:
    import xmlrpc.client

    from onestack.drivers.supervisor import RPC_MARK, RPC_SCRIPT, rpc_answer
    from onestack.errors import CommandError

    assert RPC_MARK in RPC_SCRIPT
    assert rpc_answer('warning on stderr\n__onestack_rpc={"result": [1, "a"]}\n', "x") == [1, "a"]
    with pytest.raises(xmlrpc.client.Fault, match="BAD_NAME"):
        rpc_answer('__onestack_rpc={"fault": [10, "BAD_NAME: x"]}', "startProcess")
    with pytest.raises(OSError, match=r"getState \(on cmp1\).*FileNotFoundError"):
        rpc_answer('__onestack_rpc={"error": "FileNotFoundError: no"}', "getState (on cmp1)")
    with pytest.raises(CommandError, match="supervisord getState"):
        rpc_answer("Traceback (most recent call last):\n", "getState")


def test_only_hosts_other_than_this_machine_need_debians_supervisor() -> None:
    from onestack.drivers.host import LocalHost
    from onestack.drivers.supervisor import HostSupervisor, Supervisor
    from onestack.model.paths import SitePaths
    from onestack.model.site import default_lab_site
    from onestack.state.site import SiteHandle

    handle = SiteHandle(default_lab_site(), SitePaths(Path("/tmp/x"), "lab"), None)
    assert type(handle.supervisor_on(LocalHost("aio"))) is Supervisor
    remote = handle.supervisor_on(FakeRemote())  # type: ignore[arg-type]
    assert isinstance(remote, HostSupervisor) and remote.supervisord == "/usr/bin/supervisord"
    assert remote.socket_path == handle.paths.run / "supervisor.sock"


class FakeRemote:
    name = "cmp1"
