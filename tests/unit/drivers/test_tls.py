"""The site CA and the APIs' certificate (issue 21: the public endpoints speak TLS)."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from pathlib import Path

import pytest

from onestack.drivers import tls
from onestack.drivers.probes import HttpProbe
from onestack.model.paths import SitePaths
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


def test_the_site_keeps_its_ca_and_renews_only_what_it_must(tmp_path: Path) -> None:
    paths = SitePaths(tmp_path, "lab")
    assert site_tls(paths, NAMES, generate=False) == ("", "")  # plan: nothing made
    ca_pem, api_pem = site_tls(paths, NAMES, generate=True)
    assert (paths.ca_key.stat().st_mode & 0o777, paths.api_cert.stat().st_mode & 0o777,
            paths.ca_cert.stat().st_mode & 0o777) == (0o600, 0o600, 0o644)
    assert "PRIVATE KEY" in api_pem and "PRIVATE KEY" not in ca_pem
    assert site_tls(paths, NAMES, generate=True) == (ca_pem, api_pem)  # nothing to do
    again_ca, renewed = site_tls(paths, ["198.18.20.10", "ctl1"], generate=True)
    assert again_ca == ca_pem and renewed != api_pem  # same CA, the new names
    probe = tls.CertificateProbe(paths.api_cert, paths.ca_cert, ("198.18.20.10", "ctl1"))
    ok, detail = probe.check()
    assert ok and detail.startswith("198.18.20.10, ctl1: expires ")
    ok, detail = tls.CertificateProbe(paths.api_cert, paths.ca_cert, tuple(NAMES)).check()
    assert not ok and "renewed by the next up" in detail


def test_a_client_trusting_the_site_ca_reaches_the_api_and_no_other_does(
        tmp_path: Path) -> None:
    paths = SitePaths(tmp_path, "lab")
    site_tls(paths, NAMES, generate=True)
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
