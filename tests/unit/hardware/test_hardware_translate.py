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
