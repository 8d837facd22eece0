"""Reference architectures shipped as package data: ``catalog/architectures/<name>.yaml``.

A new architecture is a file here, not code: its rules and components are read by
``model.architecture`` (ADR 0024). Loading is pure reading of shipped data.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from onestack.errors import CatalogError

SUFFIX = ".yaml"


def _folder() -> Any:
    return resources.files("onestack.catalog").joinpath("architectures")


@lru_cache(maxsize=1)
def architecture_documents() -> dict[str, tuple[str, Any]]:
    """Every shipped architecture's parsed document (and its file, for errors), by
    the name its file gives."""
    found: dict[str, tuple[str, Any]] = {}
    for entry in sorted(_folder().iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(SUFFIX):
            continue
        source = f"architectures/{entry.name}"
        try:
            document = yaml.safe_load(entry.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise CatalogError(source, f"cannot read: {exc}") from None
        name = entry.name.removesuffix(SUFFIX)
        if not isinstance(document, dict) or document.get("name") != name:
            raise CatalogError(source, f"expected a mapping whose name is {name}")
        found[name] = (source, document)
    return found
