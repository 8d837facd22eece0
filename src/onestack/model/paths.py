"""Where a site's state lives on the controller. Pure path arithmetic, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from onestack.errors import InvalidOptionError
from onestack.model.site import SITE_NAME_PATTERN

# A site's folder is root's and this group's only (0750): the users of its services
# are members (they reach their configuration, state and sockets inside), nobody else
# may even list it (ADR 0021).
SITE_GROUP = "onestack"


@dataclass(frozen=True)
class SitePaths:
    """The runtime layout under ``$ONESTACK_HOME``."""

    home: Path
    site_name: str

    def __post_init__(self) -> None:
        # The name becomes a directory under home: never a path of its own.
        if not re.fullmatch(SITE_NAME_PATTERN, self.site_name):
            raise InvalidOptionError("site name", self.site_name,
                                     "not a site name (1-32 of a-z, 0-9 and '-')")

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    def venv(self, series: str) -> Path:
        """The immutable virtual environment of one release bundle."""
        return self.releases / series / "venv"

    @property
    def wheelhouse(self) -> Path:
        return self.home / "wheelhouse"

    @property
    def images(self) -> Path:
        """Guest images onestack builds (``onestack image build``), shared by every site."""
        return self.home / "images"

    @property
    def site(self) -> Path:
        return self.home / "sites" / self.site_name

    @property
    def sockets(self) -> Path:
        """Sockets of the site for processes that cannot enter its folder (an haproxy of
        neutron's metadata path runs as neutron without supplementary groups), each in a
        folder with its own owner and mode; removed with the site."""
        return self.home / "sockets" / self.site_name

    @property
    def tls(self) -> Path:
        """The site's CA and the APIs' certificate (``drivers.tls``)."""
        return self.site / "tls"

    @property
    def ca_cert(self) -> Path:
        """The site CA's certificate, what every client trusts (on every host)."""
        return self.tls / "ca.pem"

    @property
    def ca_key(self) -> Path:
        """The site CA's key (0600, only on the machine onestack runs on)."""
        return self.tls / "ca.key"

    @property
    def api_cert(self) -> Path:
        """The APIs' certificate and key, PEM, as HAProxy serves them (0600)."""
        return self.tls / "api.pem"

    @property
    def internal_tls(self) -> Path:
        """The internal CA (TLS between hosts, ADR 0025) and the certificates it issued,
        each host's ``<host>.pem`` (certificate and key), 0600, only where onestack
        runs: they reach their host in the plan."""
        return self.tls / "internal"

    @property
    def internal_ca_cert(self) -> Path:
        """The internal CA's certificate, what hosts trust of each other (on every host
        that talks to another)."""
        return self.tls / "internal-ca.pem"

    @property
    def site_file(self) -> Path:
        return self.site / "site.yaml"

    @property
    def secrets_file(self) -> Path:
        return self.site / "secrets"

    @property
    def ssh_key(self) -> Path:
        """The site's own private key for its SSH hosts (a host's ``ssh_key`` overrides)."""
        return self.site / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """Host keys of the site's SSH hosts (the site's ``known_hosts`` overrides)."""
        return self.site / "known_hosts"

    @property
    def state_db(self) -> Path:
        return self.site / "state.db"

    def etc(self, series: str) -> Path:
        """Rendered configuration for one release."""
        return self.site / "etc" / series

    @property
    def data(self) -> Path:
        return self.site / "data"

    @property
    def log(self) -> Path:
        return self.site / "log"

    @property
    def run(self) -> Path:
        return self.site / "run"

    @property
    def clouds_yaml(self) -> Path:
        return self.site / "clouds.yaml"
