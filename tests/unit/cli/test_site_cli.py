"""``onestack plan`` and site-file errors through the real CLI entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from onestack.cli.main import cli, main
from onestack.model.loader import dump_site
from onestack.model.site import ComputeDriver, NetworkBackend, default_lab_site


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
          *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["onestack", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_plan_json_on_fresh_home_reads_only(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "plan", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    needed = {s["id"]: s["needed"] for s in data["steps"]}
    assert data["operation"] == "up"
    assert data["changes"] == sum(needed.values())
    for step_id in ("keystone/db-sync", "nova/start:nova-api", "host/clouds-yaml"):
        assert needed[step_id] is True
    # plan only reads: no secrets generated, no journal, no site directory.
    assert not (tmp_path / "sites" / "lab" / "secrets").exists()
    assert not (tmp_path / "sites" / "lab" / "state.db").exists()
    assert not (tmp_path / "sites").exists()


def test_plan_text_lists_steps(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "plan"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("architecture aio: One controller runs the whole control")
    assert "single points of failure (" in result.output
    assert any(line.startswith("  critical  mariadb") and line.endswith(
        "on aio: every service's database (no API call that reads or writes the cloud's "
        "state)") for line in lines)
    assert any(line.endswith("steps to apply:") for line in lines)
    assert "keystone   migrate the keystone database" in result.output


def test_plan_with_site_file_uses_its_ports(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text('name: edge\nrelease: "2026.1"\nport_offset: 300\nhosts:\n  - name: ctl\n')
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "plan", "--json",
                                      "--site-file", str(site)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output)["steps"]
    assert {s["host"] for s in steps} == {"ctl"}
    assert any(str(tmp_path / "sites" / "edge") in s["summary"] for s in steps)


def test_malformed_site_file_names_file_line_field(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.yaml"
    site.write_text('name: lab\nrelease: "2026.1"\nhosts:\n  - name: aio\n    rolez: [x]\n')
    code, out, err = _main(monkeypatch, capsys, "--home", str(tmp_path), "plan",
                           "--site-file", str(site))
    assert code == 1
    assert f"error: {site}:5: hosts.0.rolez: Extra inputs are not permitted" in err
    assert "Traceback" not in err
    assert out == ""
    assert not (tmp_path / "sites").exists()


def test_yaml_syntax_error_through_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("name: lab\nhosts: [aio\n")
    code, _, err = _main(monkeypatch, capsys, "--home", str(tmp_path), "plan", "--site-file",
                         str(site))
    assert code == 1
    assert f"{site}:" in err and "(syntax): not valid YAML" in err


def test_missing_site_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _main(monkeypatch, capsys, "--home", str(tmp_path), "plan", "--site-file",
                         str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "cannot read site file" in err and "nope.yaml" in err


def test_credentials_hides_secrets_unless_asked(tmp_path: Path) -> None:
    secrets = tmp_path / "sites" / "lab" / "secrets"
    secrets.parent.mkdir(parents=True)
    secrets.write_text("keystone.admin: topsecretvalue\n")
    (secrets.parent / "site.yaml").write_text(dump_site(default_lab_site()))
    runner = CliRunner()
    shown = runner.invoke(cli, ["--home", str(tmp_path), "credentials"]).output
    assert "topsecretvalue" not in shown and str(secrets) in shown
    asked = runner.invoke(cli, ["--home", str(tmp_path), "credentials", "--show-secrets"])
    assert "keystone.admin = topsecretvalue" in asked.output


def _verify_rows(monkeypatch: pytest.MonkeyPatch, home: Path) -> list[dict[str, object]]:
    site_dir = home / "sites" / "lab"
    site_dir.mkdir(parents=True)
    site = default_lab_site("lab").model_copy(
        update={"compute_driver": ComputeDriver.FAKE, "network": NetworkBackend.NONE})
    (site_dir / "site.yaml").write_text(dump_site(site))
    asked: list[dict[str, object]] = []

    def run(handle: object, timeout: float, **kwargs: object) -> dict[str, object]:
        asked.append({"timeout": timeout, **kwargs})
        rows = [{"name": "token issue", "passed": True, "seconds": 0.1, "detail": "ok",
                 "skipped": False},
                {"name": "instance to instance ping", "passed": False, "seconds": 0.0,
                 "detail": "not run: needs 'x'", "skipped": True}]
        return {"site": "lab", "passed": False, "checks": rows}
    monkeypatch.setattr("onestack.health.verify.run", run)
    return asked


def test_verify_shows_skipped_rows_and_passes_its_options(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked = _verify_rows(monkeypatch, tmp_path)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "verify", "--ssh-timeout",
                                      "240", "--no-instances"])
    assert result.exit_code == 1
    assert "PASS  token issue" in result.output
    assert "SKIP  instance to instance ping" in result.output
    assert asked[0]["ssh_timeout"] == 240.0 and asked[0]["instances"] is False
    asked.clear()
    CliRunner().invoke(cli, ["--home", str(tmp_path), "verify"])
    assert asked[0]["instances"] is True and asked[0]["ssh_timeout"] == 180.0


HA_SITE = """\
name: hax
release: "2026.1"
architecture: ha
hosts:
  - {name: ctl1, address: 198.18.60.11, connection: ssh, roles: [controller, network],
     failure_domain: r1, tunnel: {interface: eth1, address: 198.18.61.11/24}}
  - {name: ctl2, address: 198.18.60.12, connection: ssh, roles: [controller, network],
     failure_domain: r2, tunnel: {interface: eth1, address: 198.18.61.12/24}}
  - {name: ctl3, address: 198.18.60.13, connection: ssh, roles: [controller],
     failure_domain: r3}
  - {name: cmp1, address: 198.18.60.21, connection: ssh, roles: [compute],
     failure_domain: r1, tunnel: {interface: eth1, address: 198.18.61.21/24}}
  - {name: cmp2, address: 198.18.60.22, connection: ssh, roles: [compute],
     failure_domain: r2, tunnel: {interface: eth1, address: 198.18.61.22/24}}
"""


def test_plan_of_an_ha_site_shows_placement_and_no_spof_without_reaching_hosts(
        tmp_path: Path) -> None:
    site = tmp_path / "ha.yaml"
    site.write_text(HA_SITE)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "plan", "--json",
                                      "--site-file", str(site)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    architecture = data["architecture"]
    assert architecture["name"] == "ha" and architecture["deployable"] is False
    assert architecture["single_points_of_failure"] == [] and architecture["breaches"] == []
    assert "mariadb" in architecture["placement"]["ctl3"]
    assert data["steps"] == []  # nothing reached: these hosts do not exist
    text = CliRunner().invoke(cli, ["--home", str(tmp_path), "plan", "--site-file", str(site)],
                              catch_exceptions=False).output
    assert "single points of failure: none" in text
    assert "cannot deploy architecture ha yet" in text
    assert not (tmp_path / "sites").exists()


def test_up_refuses_an_architecture_it_cannot_deploy_before_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "ha.yaml"
    site.write_text(HA_SITE)
    code, out, err = _main(monkeypatch, capsys, "--home", str(tmp_path), "up",
                           "--site-file", str(site))
    assert code == 1, err
    assert "cannot deploy architecture ha yet; nothing was changed" in err
    assert "Traceback" not in err
    assert not (tmp_path / "sites").exists()


def test_a_site_breaking_its_architecture_is_refused_naming_rule_line_and_hosts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "ha.yaml"
    site.write_text(HA_SITE.replace("failure_domain: r2, tunnel: {interface: eth1, "
                                    "address: 198.18.61.12", "failure_domain: r1, tunnel: "
                                    "{interface: eth1, address: 198.18.61.12"))
    code, _out, err = _main(monkeypatch, capsys, "--home", str(tmp_path), "plan",
                            "--site-file", str(site))
    assert code == 1
    assert (f"error: {site}:5: architecture: rule controller failure domains: architecture "
            "ha needs each controller in a failure domain of its own; ctl1, ctl2 share r1") in err
