"""Shell scripts built by services quote every path: a home with spaces or `;` is data."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from onestack.core.step import Step
from onestack.model.paths import SitePaths
from onestack.model.ports import Ports
from onestack.model.site import default_lab_site
from onestack.plans.deploy import required_secrets
from onestack.services import mariadb, nova
from onestack.services.base import ServiceContext
from onestack.steps.actions import RunOnce

HOSTILE = "home dir; touch PWNED; x"


def _ctx(home: Path) -> ServiceContext:
    site = default_lab_site()
    paths = SitePaths(home, site.name)
    return ServiceContext(site=site, series="2026.1", paths=paths,
                          secrets={n: "x" for n in required_secrets()},
                          venv=paths.venv("2026.1"), ports=Ports(0))


def _shell_scripts(steps: list[Step]) -> dict[str, str]:
    scripts = {}
    for s in steps:
        if isinstance(s.action, RunOnce) and s.action.argv[:2] == ("sh", "-c"):
            scripts[s.id] = s.action.argv[2]
    return scripts


def test_mariadb_initdb_script_treats_a_hostile_home_as_one_word(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path / HOSTILE)
    script = _shell_scripts(mariadb.steps(ctx))["mariadb/initdb"]
    (mariadb.datadir(ctx) / "mysql").mkdir(parents=True)
    # The data directory exists, so a correctly quoted script stops at `test -d`.
    result = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "PWNED").exists()


def test_nova_cell_scripts_keep_paths_whole(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path / HOSTILE)
    scripts = _shell_scripts(nova.steps(ctx))
    assert set(scripts) == {"nova/create-cell1", "nova/discover-hosts"}
    manage, conf = ctx.bin("nova-manage"), str(ctx.etc("nova") / "nova.conf")
    for script in scripts.values():
        words = shlex.split(script)
        assert manage in words and conf in words
        assert "PWNED" not in words


def test_quoting_keeps_fingerprints_of_ordinary_homes(tmp_path: Path) -> None:
    ctx = _ctx(Path("/var/lib/onestack"))
    script = _shell_scripts(mariadb.steps(ctx))["mariadb/initdb"]
    data = "/var/lib/onestack/sites/lab/data/mariadb"
    assert script.startswith(f"test -d {data}/mysql || /usr/bin/mariadb-install-db "
                             f"--user=mysql --datadir={data} ")
