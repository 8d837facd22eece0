"""drivers.openstack_instances on a fake openstacksdk connection: what is asked of the
cloud, nova's fault as one line, fixed addresses, errors translated."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from onestack.drivers.openstack import CloudApiError
from onestack.drivers.openstack_instances import InstanceCloud, fault_message, fixed_ips


def test_fault_message() -> None:
    assert fault_message(None) == "no fault recorded by nova"
    assert fault_message({"message": "No valid host was found. ", "code": 500}) == \
        "No valid host was found."
    traceback = "Traceback...\n  File x\nlibvirt.libvirtError: internal error: qemu died\n"
    assert fault_message({"message": "Build of instance aborted", "details": traceback}) == \
        "Build of instance aborted: libvirt.libvirtError: internal error: qemu died"
    assert len(fault_message({"message": "x" * 2000})) == 500


def test_fixed_ips_leave_floating_and_v6_out() -> None:
    addresses = {"private": [
        {"addr": "10.0.0.5", "version": 4, "OS-EXT-IPS:type": "fixed"},
        {"addr": "fd00::5", "version": 6, "OS-EXT-IPS:type": "fixed"},
        {"addr": "198.19.0.7", "version": 4, "OS-EXT-IPS:type": "floating"}]}
    assert fixed_ips(addresses) == ("10.0.0.5",)
    assert fixed_ips(None) == ()


class Recorder:
    """Any attribute is a call recorder returning ``answers[name]``."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.answers = answers

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            answer = self.answers.get(name)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return call


def _cloud(**answers: Any) -> tuple[InstanceCloud, Recorder]:
    api = Recorder(answers)
    conn = SimpleNamespace(compute=api, network=api, image=api)
    return InstanceCloud(conn), api


def test_server_is_created_on_the_network_with_key_group_and_config_drive() -> None:
    cloud, api = _cloud(create_server=SimpleNamespace(id="s1"))
    assert cloud.create_server("v-1", image_id="i", flavor_id="f", network_id="n",
                               key_name="v", group="v", config_drive=True) == "s1"
    assert api.calls == [("create_server", (), {
        "name": "v-1", "image_id": "i", "flavor_id": "f", "networks": [{"uuid": "n"}],
        "key_name": "v", "security_groups": [{"name": "v"}], "config_drive": True})]


def test_ingress_rules() -> None:
    cloud, api = _cloud()
    cloud.allow_ingress("g", "icmp")
    cloud.allow_ingress("g", "tcp", 22)
    base = {"security_group_id": "g", "direction": "ingress", "ethertype": "IPv4",
            "remote_ip_prefix": "0.0.0.0/0"}
    assert [c[2] for c in api.calls] == [
        {**base, "protocol": "icmp"},
        {**base, "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}]


def test_server_state_carries_the_fault() -> None:
    server = SimpleNamespace(status="ERROR", fault={"message": "boom", "code": 500},
                             addresses={})
    cloud, _ = _cloud(get_server=server)
    state = cloud.server_state("s1")
    assert (state.status, state.fault, state.fixed_ips) == ("ERROR", "boom", ())


def test_floating_ip_goes_on_the_port_of_the_fixed_address() -> None:
    ports = [SimpleNamespace(id="p0", fixed_ips=[{"ip_address": "10.0.0.9"}]),
             SimpleNamespace(id="p1", fixed_ips=[{"ip_address": "10.0.0.5"}])]
    cloud, api = _cloud(ports=ports, create_ip=SimpleNamespace(
        id="f1", floating_ip_address="198.19.0.20"))
    fip = cloud.add_floating_ip("pub", "s1", "10.0.0.5")
    assert (fip.id, fip.address) == ("f1", "198.19.0.20")
    assert api.calls[-1] == ("create_ip", (), {"floating_network_id": "pub", "port_id": "p1",
                                               "fixed_ip_address": "10.0.0.5"})


def test_servers_named_keeps_only_the_prefix() -> None:
    cloud, _ = _cloud(servers=[SimpleNamespace(id="a", name="onestack-verify-1-2-1"),
                               SimpleNamespace(id="b", name="other-onestack-verify-1-2")])
    assert cloud.servers_named("onestack-verify-1-2") == ["a"]


def test_foreign_errors_are_translated() -> None:
    cloud, _ = _cloud(find_image=RuntimeError("HTTP 503"))
    with pytest.raises(CloudApiError, match="find image onestack-guest: RuntimeError: HTTP 503"):
        cloud.image_id("onestack-guest")
