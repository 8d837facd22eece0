"""The site's CA and the APIs' certificate, kept where onestack runs (``drivers.tls``).

Made by the commands that apply changes (``up``, ``upgrade apply``) before they plan,
like the secrets: the CA once (its key never leaves this machine), the APIs'
certificate again when it is missing, another CA's, names other hosts or has less
than ``drivers.tls.RENEW_DAYS`` left. The plan carries both PEMs to the hosts
(``ServiceContext.ca_pem`` / ``api_pem``): HAProxy restarts with a renewed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from onestack.drivers import tls
from onestack.drivers.host import LocalHost
from onestack.model.paths import SitePaths


def site_tls(paths: SitePaths, names: Sequence[str], generate: bool) -> tuple[str, str]:
    """(the CA's certificate, the APIs' certificate and key), PEM; "" for what does
    not exist yet when not ``generate``."""
    if generate:
        _ensure(paths, names)
    return _read(paths.ca_cert), _read(paths.api_cert)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _ensure(paths: SitePaths, names: Sequence[str]) -> None:
    local = LocalHost()
    local.ensure_dir(paths.tls, mode=0o755)
    ca_pem, ca_key = _read(paths.ca_cert), _read(paths.ca_key)
    if not (ca_pem and ca_key):
        authority = tls.new_authority(paths.site_name)
        local.write_file(paths.ca_key, authority.key_pem, mode=0o600)
        local.write_file(paths.ca_cert, authority.cert_pem, mode=0o644)
        ca_pem, ca_key = authority.cert_pem, authority.key_pem
    if tls.needs_renewal(tls.facts(_read(paths.api_cert), ca_pem), names):
        local.write_file(paths.api_cert, tls.issue_server(tls.Authority(ca_pem, ca_key), names),
                         mode=0o600)
