"""The one digest onestack uses for fingerprints, file contents and secrets."""

from __future__ import annotations

import hashlib


def digest(content: str | bytes) -> str:
    """sha256 of text or bytes, as hex."""
    data = content.encode() if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()
