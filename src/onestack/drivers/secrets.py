"""The site's secrets store: generated values, kept in one 0600 file.

Values are never logged or printed; only ``onestack credentials`` shows them.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import yaml

from onestack.errors import InvalidOptionError, StateFileError, shown


def generate_password(length: int = 32) -> str:
    """A random URL-safe secret."""
    return secrets.token_urlsafe(length)[:length]


MAX_SECRET = 4096  # characters of one value
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_secret_name(name: str) -> str:
    """A secret's name: a key of the secrets file and part of messages, never syntax."""
    if not _NAME.fullmatch(name):
        raise InvalidOptionError("secret name", name, "use 1-128 letters, digits and . _ - "
                                                      "(e.g. bmc-rack01.password)")
    return name


def _as_secrets(data: object, path: Path) -> dict[str, str]:
    """The file's mapping of name -> value, refusing any other shape (without values)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StateFileError(str(path), None, "expected a mapping of secret names to values, "
                                              f"found a {type(data).__name__}")
    values = {}
    for key, value in data.items():
        if not isinstance(value, str | int | float | bool) or isinstance(key, list | dict):
            raise StateFileError(str(path), None, f"the value of {shown(str(key))!r} is not "
                                                  "a plain value")
        values[str(key)] = str(value)
    return values


class SecretStore:
    """Flat ``name -> value`` secrets in a YAML file with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            text = self.path.read_bytes().decode("utf-8")
            data = yaml.safe_load(text)
        except OSError as exc:
            raise StateFileError(str(self.path), None, f"cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise StateFileError(str(self.path), None, "not UTF-8 text") from None
        except yaml.YAMLError as exc:
            # Never str(exc): PyYAML quotes the offending line, a password with it.
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise StateFileError(str(self.path), line, "not valid YAML (its content is not "
                                                       "shown: it holds secrets)") from None
        return _as_secrets(data, self.path)

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
