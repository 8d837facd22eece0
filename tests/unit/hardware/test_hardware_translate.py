"""Foreign exceptions become onestack BMC errors with a status and a readable reason."""

from __future__ import annotations

import json

import pytest
import requests
from sushy import exceptions as sushy_exc

from onestack.drivers.redfish import BmcLogin, translate
from onestack.drivers.redfish_errors import BmcFault
from onestack.errors import BmcError, OnestackError
from onestack.model.hardware import DiscoveryStatus, Node

LOGIN = BmcLogin(Node(name="n1", bmc="https://10.0.0.1", credentials="c"), "u", "p",
                 request_timeout_s=7, connect_timeout_s=3)


class Response:
    def __init__(self, status: int, body: object) -> None:
        self.status_code = status
        self._body = body

    def json(self) -> object:
        return self._body


def wrapped(inner: Exception) -> sushy_exc.ConnectionError:
    """As sushy raises it: inside ``except`` of the requests error."""
    try:
        raise inner
    except Exception as exc:
        try:
            raise sushy_exc.ConnectionError(url="https://10.0.0.1/redfish/v1/", error=exc)
        except sushy_exc.ConnectionError as outer:
            return outer
    raise AssertionError("unreachable")


@pytest.mark.parametrize(("exc", "status", "reason"), [
    (wrapped(requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                                          "failed: self-signed certificate (_ssl.c:1006)")),
     DiscoveryStatus.TLS_ERROR, "TLS failure: [SSL: CERTIFICATE_VERIFY_FAILED]"),
    (wrapped(requests.exceptions.ConnectTimeout("timed out")), DiscoveryStatus.UNREACHABLE,
     "no connection within 3s"),
    (wrapped(requests.exceptions.ReadTimeout("read timed out")), DiscoveryStatus.TIMEOUT,
     "no answer within 7s"),
    (wrapped(requests.exceptions.ConnectionError(
        "Max retries exceeded (Caused by NewConnectionError('[Errno 111] Connection refused'))")),
     DiscoveryStatus.UNREACHABLE, "cannot connect: [Errno 111] Connection refused"),
    (sushy_exc.AccessError(method="GET", url="u", response=Response(401, {})),
     DiscoveryStatus.AUTH_FAILED, "credentials refused (HTTP 401)"),
    (sushy_exc.ServerSideError(method="GET", url="u",
                               response=Response(503, {"error": {"message": "busy"}})),
     DiscoveryStatus.ERROR, "HTTP 503: busy"),
    (json.JSONDecodeError("Expecting value", "{", 1), DiscoveryStatus.MALFORMED,
     "invalid JSON: Expecting value"),
    (sushy_exc.MissingAttributeError(attribute="Id", resource="/x"), DiscoveryStatus.MALFORMED,
     "The attribute Id is missing"),
    (TypeError("list indices must be integers"), DiscoveryStatus.MALFORMED,
     "unexpected payload shape"),
    (sushy_exc.UnknownDefaultError(entity="ComputerSystem", error="count is not one"),
     DiscoveryStatus.ERROR, "set system_id"),
])
def test_translate(exc: Exception, status: DiscoveryStatus, reason: str) -> None:
    fault = translate(LOGIN, exc)
    assert isinstance(fault, BmcFault) and isinstance(fault, BmcError)
    assert isinstance(fault, OnestackError)
    assert fault.status is status
    assert reason in fault.reason
    assert str(fault).startswith("n1 (https://10.0.0.1): ")


class HtmlResponse:
    """A web server's error page in front of the BMC: not JSON at all."""

    def __init__(self, status: int, page: str) -> None:
        self.status_code = status
        self.text = page

    def json(self) -> object:
        raise ValueError("Expecting value: line 1 column 1 (char 0)")


NGINX_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>"
             "502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n"
             "</html>\r\n")
WRAPPED_PAGE = {"error": {"code": "Base.1.0.GeneralError", "message":
                          "<!DOCTYPE html><html><body><h1>Internal Server Error</h1><p>The "
                          "server encountered an internal error &amp; could not complete "
                          "your request.</p></body></html>"}}


@pytest.mark.parametrize(("response", "reason"), [
    (HtmlResponse(502, NGINX_502), "HTTP 502: Bad Gateway"),
    (Response(500, WRAPPED_PAGE), "HTTP 500: Internal Server Error"),
    (Response(500, {"error": {"message": "<p>The server &amp; the BMC</p>"}}),
     "HTTP 500: The server & the BMC"),
])
def test_web_server_pages_do_not_leak_into_reasons(response: object, reason: str) -> None:
    exc = sushy_exc.ServerSideError(method="GET", url="https://10.0.0.1/redfish/v1/Systems/1",
                                    response=response)
    fault = translate(LOGIN, exc)
    assert fault.reason == reason
    assert "<" not in str(fault) and "nginx" not in str(fault)
