"""A site's certificate authority and the certificates it issues (``cryptography``).

The CA is the site's own: an EC P-256 key that never leaves the machine onestack runs
on (``sites/<site>/tls/ca.key``, 0600) and a self-signed certificate that every client
of the site trusts (``ca.pem``, in clouds.yaml and every service's configuration).
It issues the APIs' certificate that HAProxy serves: the controller's addresses and
names as subject alternative names, valid for ``SERVER_DAYS``, renewed by ``up`` when
less than ``RENEW_DAYS`` remain or the names change.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from onestack.model.site import Site

CA_DAYS = 3650
SERVER_DAYS = 397  # what public CAs may issue at most; renewed well before
RENEW_DAYS = 30


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate and key, PEM."""

    cert_pem: str
    key_pem: str


def certificate_names(site: Site) -> list[str]:
    """What the APIs' certificate must name: the controller's address and name."""
    return [str(site.controller.address), site.controller.name]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def new_authority(site: str) -> Authority:
    """A new CA for ``site``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "onestack"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"onestack site {site} CA")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return Authority(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def _alt_names(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def issue_server(ca: Authority, names: Sequence[str]) -> str:
    """A server certificate for ``names`` (addresses or host names), then its key,
    PEM (what HAProxy's ``crt`` takes)."""
    return _issue(ca, names, [ExtendedKeyUsageOID.SERVER_AUTH])


def issue_host(ca: Authority, host: str, address: str) -> str:
    """A host's certificate for TLS between hosts (ADR 0025), then its key, PEM: its
    common name is the host's name (OVN's RBAC matches a chassis by it), its
    alternative names the name and address; it serves and it is a client."""
    return _issue(ca, [host, address],
                  [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])


def _issue(ca: Authority, names: Sequence[str], usages: list[x509.ObjectIdentifier]) -> str:
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca.key_pem.encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(_alt_names(names)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode() + _key_pem(key)


@dataclass(frozen=True)
class HostCertificate:
    """A host's certificate and key for TLS between hosts, PEM ("" not made yet)."""

    cert_pem: str = ""
    key_pem: str = field(default="", repr=False)


@dataclass(frozen=True)
class InternalTls:
    """The site's internal CA (what hosts trust of each other) and the certificates it
    issued, by host (ADR 0025). Empty on a site whose traffic stays on one host."""

    ca_pem: str = ""
    hosts: Mapping[str, HostCertificate] = field(default_factory=dict, repr=False)

    def of(self, host: str) -> HostCertificate:
        return self.hosts.get(host, HostCertificate())


def split_certificate(pem: str) -> HostCertificate:
    """A certificate-then-key PEM (``issue_host``'s) as its two parts."""
    marker = "-----BEGIN PRIVATE KEY-----"
    cert, found, key = pem.partition(marker)
    return HostCertificate(cert, found + key) if found else HostCertificate(pem, "")


@dataclass(frozen=True)
class CertificateFacts:
    """What ``up`` and ``status`` need to know of a certificate."""

    names: tuple[str, ...]
    not_after: datetime.datetime
    issuer_matches: bool

    def days_left(self) -> float:
        return (self.not_after - _now()).total_seconds() / 86400


def facts(pem: str, ca_pem: str | None = None) -> CertificateFacts | None:
    """The first certificate in ``pem``: its names, expiry and whether ``ca_pem``
    issued it (None when there is no readable certificate)."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n.value) for n in sans)
    except x509.ExtensionNotFound:
        names = ()
    issuer_ok = True
    if ca_pem is not None:
        try:
            ca = x509.load_pem_x509_certificate(ca_pem.encode())
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            issuer_ok = False
    return CertificateFacts(names, cert.not_valid_after_utc, issuer_ok)


def check_operator_certificate(chain_pem: str, key_pem: str, ca_pem: str,
                               names: Sequence[str]) -> str | None:
    """What is wrong with an operator's certificate for the APIs (None: nothing): it
    must parse, match its key, name every one of ``names``, chain to ``ca_pem`` and
    not expire within RENEW_DAYS."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        cas = x509.load_pem_x509_certificates(ca_pem.encode())
    except (ValueError, TypeError) as exc:
        return f"not a PEM certificate, chain and unencrypted key ({type(exc).__name__})"
    leaf = chain[0]
    if leaf.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo) != \
            key.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo):
        return "the key is not the certificate's"
    found = facts(chain_pem)
    assert found is not None
    missing = [n for n in names if n not in found.names]
    if missing:
        return f"it does not name {', '.join(missing)} (subject alternative names)"
    if not _chains_to(chain, cas):
        return "it does not chain to the CA file"
    if found.days_left() < RENEW_DAYS:
        return f"it expires within {RENEW_DAYS} days ({found.not_after:%Y-%m-%d})"
    return None


def _chains_to(chain: list[x509.Certificate], cas: list[x509.Certificate]) -> bool:
    """Whether each certificate of the chain is issued by the next, and the last by
    one of the CAs (or is one of them)."""
    for cert, issuer in zip(chain, chain[1:], strict=False):
        if not _issued_by(cert, issuer):
            return False
    last = chain[-1]
    return last in cas or any(_issued_by(last, ca) for ca in cas)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class CertificateProbe:
    """Healthy when the certificate at ``path`` (on this machine) was issued by the CA
    at ``ca``, names ``names`` and has more than RENEW_DAYS left; the detail says
    when it expires."""

    path: Path
    ca: Path
    names: tuple[str, ...]
    operators: bool = False  # the operator's own (site file ``tls``): never renewed here

    def check(self, timeout: float = 3.0) -> tuple[bool, str]:
        try:
            pem, ca_pem = self.path.read_text(), self.ca.read_text()
        except OSError as exc:
            return False, f"{self.path}: {exc.strerror or exc}"
        found = facts(pem, ca_pem)
        if found is None:
            return False, f"{self.path}: no certificate"
        when = found.not_after.strftime("%Y-%m-%d")
        detail = (f"{', '.join(found.names)}: expires {when} "
                  f"({found.days_left():.0f} days)")
        if self.operators:
            return self._operators(found, detail)
        if not found.issuer_matches:
            return False, f"{detail}; not issued by the site CA {self.ca}"
        if needs_renewal(found, self.names):
            return False, f"{detail}; renewed by the next up"
        return True, detail

    def _operators(self, found: CertificateFacts, detail: str) -> tuple[bool, str]:
        if found.days_left() < RENEW_DAYS or any(n not in found.names for n in self.names):
            return False, f"{detail}; replace it (the site file's tls.certificate)"
        return True, f"{detail} (the operator's)"


def needs_renewal(current: CertificateFacts | None, names: Sequence[str]) -> bool:
    """Whether a server certificate must be issued again: none, another CA's, other
    names, or less than RENEW_DAYS left."""
    return (current is None or not current.issuer_matches
            or any(n not in current.names for n in names) or current.days_left() < RENEW_DAYS)
