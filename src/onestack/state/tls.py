"""The site's CA and the APIs' certificate, kept where onestack runs (``drivers.tls``).

Made by the commands that apply changes (``up``, ``upgrade apply``) before they plan,
like the secrets: the CA once (its key never leaves this machine), the APIs'
certificate again when it is missing, another CA's, does not name the controller or
has less than ``drivers.tls.RENEW_DAYS`` left. A site file's ``tls`` names the
operator's own certificate, key and CA instead (checked when the site file is read):
they are copied in, and no CA is made. The plan carries both PEMs to the hosts
(``ServiceContext.ca_pem`` / ``api_pem``): HAProxy restarts with a new one.
"""

from __future__ import annotations

from pathlib import Path

from onestack.drivers import tls
from onestack.drivers.host import LocalHost
from onestack.model.paths import SitePaths
from onestack.model.site import Host, Site


def site_tls(paths: SitePaths, site: Site, generate: bool) -> tuple[str, str]:
    """(what clients trust, the APIs' certificate and key), PEM; "" for what does not
    exist yet when not ``generate``."""
    if generate:
        if site.tls is None:
            _ensure_issued(paths, tls.certificate_names(site))
        else:
            _copy_operators(paths, site)
    return _read(paths.ca_cert), _read(paths.api_cert)


def _read(path: Path) -> str:
    return LocalHost().read_file(path) or ""


def _ensure_issued(paths: SitePaths, names: list[str]) -> None:
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


def _copy_operators(paths: SitePaths, site: Site) -> None:
    """The operator's files (checked by ``drivers.site_file``) as HAProxy and the
    clients read them; a CA key made before is removed (nothing issues here now)."""
    assert site.tls is not None
    local = LocalHost()
    local.ensure_dir(paths.tls, mode=0o755)
    chain, key = Path(site.tls.certificate).read_text(), Path(site.tls.key).read_text()
    local.write_file(paths.api_cert, chain.rstrip("\n") + "\n" + key, mode=0o600)
    local.write_file(paths.ca_cert, Path(site.tls.ca).read_text(), mode=0o644)
    local.remove(paths.ca_key)


def internal_tls(paths: SitePaths, hosts: list[Host], generate: bool) -> tls.InternalTls:
    """The internal CA and a certificate for each of ``hosts`` (the hosts that talk TLS
    to another: ``services.ovn.tls_hosts``), made where missing, not the CA's, naming
    another address or near expiry when ``generate``; read as they are otherwise.
    Always the site's own CA, even with the operator's certificate for the APIs: it
    is trusted for nothing but traffic between the site's hosts (ADR 0025)."""
    if not hosts:
        return tls.InternalTls()
    folder = paths.internal_tls
    if generate:
        _ensure_internal(folder, paths.site_name, hosts)
    ca_pem = _read(folder / "ca.pem")
    return tls.InternalTls(ca_pem, {h.name: tls.split_certificate(_read(folder / f"{h.name}.pem"))
                                    for h in hosts})


def _ensure_internal(folder: Path, site: str, hosts: list[Host]) -> None:
    local = LocalHost()
    local.ensure_dir(folder, mode=0o700)
    ca_pem, ca_key = _read(folder / "ca.pem"), _read(folder / "ca.key")
    if not (ca_pem and ca_key):
        authority = tls.new_authority(f"{site} internal")
        local.write_file(folder / "ca.key", authority.key_pem, mode=0o600)
        local.write_file(folder / "ca.pem", authority.cert_pem, mode=0o600)
        ca_pem, ca_key = authority.cert_pem, authority.key_pem
    for host in hosts:
        path, names = folder / f"{host.name}.pem", [host.name, str(host.address)]
        if tls.needs_renewal(tls.facts(_read(path), ca_pem), names):
            local.write_file(path, tls.issue_host(tls.Authority(ca_pem, ca_key), host.name,
                                                  str(host.address)), mode=0o600)
