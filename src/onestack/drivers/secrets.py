"""The site's secrets store: generated values, kept in one 0600 file.

Values are never logged or printed; only ``onestack credentials`` shows them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml


def generate_password(length: int = 32) -> str:
    """A random URL-safe secret."""
    return secrets.token_urlsafe(length)[:length]


class SecretStore:
    """Flat ``name -> value`` secrets in a YAML file with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        data = yaml.safe_load(self.path.read_text()) or {}
        return {str(k): str(v) for k, v in data.items()}

    def _write(self, values: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(values, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def get(self, name: str) -> str | None:
        return self._read().get(name)

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            from onestack.errors import CatalogError

            raise CatalogError(f"secret {name}", f"not found in {self.path}")
        return value

    def ensure(self, name: str, length: int = 32) -> str:
        """Return the secret, generating and storing it on first use."""
        values = self._read()
        if name not in values:
            values[name] = generate_password(length)
            self._write(values)
        return values[name]

    def set(self, name: str, value: str) -> None:
        values = self._read()
        values[name] = value
        self._write(values)

    def names(self) -> list[str]:
        return sorted(self._read())
