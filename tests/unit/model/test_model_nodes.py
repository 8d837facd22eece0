"""Hardware nodes in the site file: BMC addresses and unique names."""

from __future__ import annotations

import pytest

from onestack.errors import SiteFileError
from onestack.model.hardware import Node
from onestack.model.loader import parse_site

HEAD = 'name: lab\nrelease: "2026.1"\nhosts:\n  - name: aio\nnodes:\n'


def _node(name: str, bmc: str, extra: str = "") -> str:
    return f"  - name: {name}\n    bmc: {bmc}\n    credentials: c\n{extra}"


def _error(text: str) -> SiteFileError:
    with pytest.raises(SiteFileError) as info:
        parse_site(text, "/etc/site.yaml")
    return info.value


def test_duplicate_node_name_names_file_line_and_field() -> None:
    text = HEAD + _node("r1", "https://10.0.0.1") + _node("r2", "https://10.0.0.2") \
        + _node("r1", "https://10.0.0.3")
    err = _error(text)
    assert (err.line, err.field_path) == (12, "nodes.2.name")
    assert err.problem == "duplicate node name 'r1' (already nodes.0.name)"


def test_duplicate_node_name_refused_when_built_in_code() -> None:
    from onestack.model.site import Host, Site

    node = Node(name="r1", bmc="https://10.0.0.1", credentials="c")
    with pytest.raises(ValueError, match="duplicate node names: r1"):
        Site(name="lab", release="2026.1", hosts=[Host(name="aio")], nodes=[node, node])


@pytest.mark.parametrize(("bmc", "words"), [
    ("10.0.0.5", "must be a URL like https://"),
    ("ftp://10.0.0.5", "must be a URL like https://"),
    ("https://", "must be a URL like https://"),
    ("http://10.0.0.5", "plain http sends the BMC password unencrypted"),
    ("http://bmc.example.com:8000", "insecure_http: true"),
    ("https://admin:pw@10.0.0.5", "must not carry credentials"),
    ("https://10.0.0.5:99999", "not a URL"),
])
def test_bad_bmc_address_is_refused_on_its_line(bmc: str, words: str) -> None:
    err = _error(HEAD + _node("r1", bmc))
    assert (err.line, err.field_path) == (7, "nodes.0.bmc")
    assert words in err.problem
    assert "pw" not in str(err)


@pytest.mark.parametrize("bmc", ["https://10.0.0.5", "https://bmc-r1.example:8443/redfish/v1",
                                 "http://127.0.0.1:18000", "http://[::1]:8000",
                                 "http://localhost:8000"])
def test_https_anywhere_and_http_on_loopback_are_accepted(bmc: str) -> None:
    assert parse_site(HEAD + _node("r1", bmc), "s.yaml").nodes[0].bmc == bmc


def test_plain_http_elsewhere_needs_the_nodes_explicit_opt_in() -> None:
    site = parse_site(HEAD + _node("r1", "http://10.0.0.5", "    insecure_http: true\n"),
                      "s.yaml")
    assert site.nodes[0].insecure_http is True
