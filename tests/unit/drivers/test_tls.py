"""The site CA and the APIs' certificate (issue 21: the public endpoints speak TLS)."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from onestack.drivers import tls
from onestack.drivers.probes import HttpProbe
from onestack.drivers.site_file import read_site_file
from onestack.errors import SiteFileError
from onestack.model.paths import SitePaths
from onestack.model.site import Site
from onestack.state.tls import site_tls

NAMES = ["127.0.0.1", "aio"]


def test_the_ca_issues_a_certificate_for_the_controllers_names() -> None:
    ca = tls.new_authority("lab")
    found = tls.facts(tls.issue_server(ca, NAMES), ca.cert_pem)
    assert found is not None and found.issuer_matches
    assert sorted(found.names) == sorted(NAMES)
    assert tls.SERVER_DAYS - 1 < found.days_left() <= tls.SERVER_DAYS
    assert not tls.needs_renewal(found, list(reversed(NAMES)))


@pytest.mark.parametrize("why", ["other names", "another CA", "expiring", "none"])
def test_renewal(why: str) -> None:
    ca = tls.new_authority("lab")
    found = tls.facts(tls.issue_server(ca, NAMES), ca.cert_pem)
    assert found is not None
    names = NAMES
    if why == "other names":
        names = ["198.18.20.10", "ctl1"]
    elif why == "another CA":
        found = tls.facts(tls.issue_server(tls.new_authority("lab"), NAMES), ca.cert_pem)
    elif why == "expiring":
        soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=tls.RENEW_DAYS - 1)
        found = tls.CertificateFacts(found.names, soon, True)
    else:
        found = tls.facts("not a certificate", ca.cert_pem)
    assert tls.needs_renewal(found, names)


def _site(name: str = "aio", address: str = "127.0.0.1", **extra: object) -> Site:
    return Site.model_validate({"name": "lab", "release": "2026.1",
                                "hosts": [{"name": name, "address": address}], **extra})


def test_the_site_keeps_its_ca_and_renews_only_what_it_must(tmp_path: Path) -> None:
    paths = SitePaths(tmp_path, "lab")
    assert site_tls(paths, _site(), generate=False) == ("", "")  # plan: nothing made
    ca_pem, api_pem = site_tls(paths, _site(), generate=True)
    assert (paths.ca_key.stat().st_mode & 0o777, paths.api_cert.stat().st_mode & 0o777,
            paths.ca_cert.stat().st_mode & 0o777) == (0o600, 0o600, 0o644)
    assert "PRIVATE KEY" in api_pem and "PRIVATE KEY" not in ca_pem
    assert site_tls(paths, _site(), generate=True) == (ca_pem, api_pem)  # nothing to do
    moved = _site("ctl1", "198.18.20.10")
    again_ca, renewed = site_tls(paths, moved, generate=True)
    assert again_ca == ca_pem and renewed != api_pem  # same CA, the new names
    probe = tls.CertificateProbe(paths.api_cert, paths.ca_cert, ("198.18.20.10", "ctl1"))
    ok, detail = probe.check()
    assert ok and detail.startswith("198.18.20.10, ctl1: expires ")
    ok, detail = tls.CertificateProbe(paths.api_cert, paths.ca_cert, tuple(NAMES)).check()
    assert not ok and "renewed by the next up" in detail


def _operator_files(tmp_path: Path, names: list[str]) -> dict[str, str]:
    """An operator's CA, intermediate-free certificate and key, as files."""
    ca = tls.new_authority("corp")
    pem = tls.issue_server(ca, names)
    cut = pem.index("-----BEGIN PRIVATE KEY-----")
    files = {"certificate": pem[:cut], "key": pem[cut:], "ca": ca.cert_pem}
    for field, text in files.items():
        (tmp_path / f"{field}.pem").write_text(text)
    return {field: str(tmp_path / f"{field}.pem") for field in files}


def test_an_operators_certificate_is_used_as_given(tmp_path: Path) -> None:
    paths = SitePaths(tmp_path / "home", "lab")
    files = _operator_files(tmp_path, [*NAMES, "cloud.example.org"])
    ca_pem, api_pem = site_tls(paths, _site(tls=files), generate=True)
    assert ca_pem == Path(files["ca"]).read_text() and not paths.ca_key.exists()
    assert api_pem.startswith(Path(files["certificate"]).read_text().rstrip("\n"))
    probe = tls.CertificateProbe(paths.api_cert, paths.ca_cert, tuple(NAMES), operators=True)
    ok, detail = probe.check()
    assert ok and detail.endswith("(the operator's)"), detail


@pytest.mark.parametrize(("case", "problem"), [
    ("other names", "it does not name 127.0.0.1, aio"),
    ("another key", "the key is not the certificate's"),
    ("another CA", "it does not chain to the CA file"),
    ("garbage", "not a PEM certificate"),
])
def test_an_operators_certificate_that_cannot_serve_is_refused(
        tmp_path: Path, case: str, problem: str) -> None:
    files = _operator_files(tmp_path, ["10.0.0.1"] if case == "other names" else NAMES)
    texts = {k: Path(v).read_text() for k, v in files.items()}
    if case == "another key":
        other = tls.issue_server(tls.new_authority("x"), NAMES)
        texts["key"] = other[other.index("-----BEGIN PRIVATE KEY-----"):]
    elif case == "another CA":
        texts["ca"] = tls.new_authority("x").cert_pem
    elif case == "garbage":
        texts["certificate"] = "hello"
    found = tls.check_operator_certificate(texts["certificate"], texts["key"], texts["ca"],
                                           NAMES)
    assert found is not None and found.startswith(problem), found


def test_a_site_file_naming_an_unusable_certificate_names_its_line(tmp_path: Path) -> None:
    files = _operator_files(tmp_path, ["10.0.0.1"])
    site_file = tmp_path / "site.yaml"
    site_file.write_text("name: lab\nrelease: \"2026.1\"\nhosts:\n  - name: aio\n"
                         f"tls:\n  certificate: {files['certificate']}\n"
                         f"  key: {files['key']}\n  ca: {tmp_path}/missing.pem\n")
    with pytest.raises(SiteFileError) as info:
        read_site_file(site_file, home=tmp_path)
    assert (info.value.line, info.value.field_path) == (8, "tls.ca")
    assert "missing.pem: cannot read: No such file" in info.value.problem
    (tmp_path / "missing.pem").write_text(Path(files["ca"]).read_text())
    with pytest.raises(SiteFileError) as info:
        read_site_file(site_file, home=tmp_path)
    assert (info.value.line, info.value.field_path) == (6, "tls.certificate")
    assert info.value.problem.startswith("it does not name 127.0.0.1, aio")


def test_a_client_trusting_the_site_ca_reaches_the_api_and_no_other_does(
        tmp_path: Path) -> None:
    paths = SitePaths(tmp_path, "lab")
    site_tls(paths, _site(), generate=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(paths.api_cert)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            for _ in range(2):
                conn, _ = listener.accept()
                try:
                    with server.wrap_socket(conn, server_side=True) as tls_conn:
                        tls_conn.recv(1024)
                        tls_conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                except (ssl.SSLError, OSError):
                    pass

        threading.Thread(target=serve, daemon=True).start()
        ok, detail = HttpProbe(f"https://127.0.0.1:{port}/", cafile=str(paths.ca_cert)).check()
        assert ok, detail
        ok, detail = HttpProbe(f"https://127.0.0.1:{port}/").check()  # the system's CAs
        assert not ok and "CERTIFICATE_VERIFY_FAILED" in detail


def test_haproxy_restarts_with_a_new_certificate_and_clients_trust_the_site_ca(
        make_service_context: Any) -> None:
    from dataclasses import replace

    from onestack.services import haproxy
    from onestack.steps.actions import StartProgram, WriteFile

    ctx = make_service_context()

    def start_and_cert(api_pem: str) -> tuple[str, WriteFile]:
        steps = {s.id: s.action for s in haproxy.steps(replace(ctx, api_pem=api_pem))}
        start, cert = steps["haproxy/start:haproxy"], steps["haproxy/certificate"]
        assert isinstance(start, StartProgram) and isinstance(cert, WriteFile)
        return start.fingerprint(), cert

    first, cert = start_and_cert("one")
    assert (cert.path, cert.mode, cert.owner) == (ctx.paths.api_cert, 0o600, "root")
    assert start_and_cert("two")[0] != first  # a renewed certificate restarts HAProxy
    assert "one" not in cert.fingerprint()  # the key never reaches the journal


def test_each_host_gets_a_certificate_of_the_internal_ca_named_after_it(
        tmp_path: Path) -> None:
    # issue 21 (ADR 0025): TLS between hosts with the site's own internal CA.
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from onestack.model.site import Host, Role
    from onestack.state.tls import internal_tls
    paths = SitePaths(tmp_path, "lab")
    hosts = [Host(name="ctl1", address="198.18.20.10"),
             Host(name="cmp1", address="198.18.20.11", roles=[Role.COMPUTE])]
    assert internal_tls(paths, [], generate=True) == tls.InternalTls()  # one host: none
    assert not paths.internal_tls.exists()
    assert internal_tls(paths, hosts, generate=False).of("cmp1") == tls.HostCertificate()
    made = internal_tls(paths, hosts, generate=True)
    assert oct(paths.internal_tls.stat().st_mode & 0o777) == "0o700"
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in paths.internal_tls.iterdir()} == {
        "ca.key": "0o600", "ca.pem": "0o600", "ctl1.pem": "0o600", "cmp1.pem": "0o600"}
    ca = x509.load_pem_x509_certificate(made.ca_pem.encode())
    assert "internal" in ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    own = made.of("cmp1")
    assert "PRIVATE KEY" in own.key_pem and "PRIVATE KEY" not in own.cert_pem
    cert = x509.load_pem_x509_certificate(own.cert_pem.encode())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cmp1"
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert internal_tls(paths, hosts, generate=True) == made  # nothing to do
    moved = [hosts[0], Host(name="cmp1", address="198.18.20.21", roles=[Role.COMPUTE])]
    again = internal_tls(paths, moved, generate=True)
    assert again.ca_pem == made.ca_pem and again.of("ctl1") == made.of("ctl1")
    assert again.of("cmp1") != made.of("cmp1")  # its new address
    # Not the APIs' CA: an operator's certificate for the APIs changes nothing here.
    assert again.ca_pem != site_tls(paths, _site(), generate=True)[0]
