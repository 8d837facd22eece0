"""Shared types at the bottom: steps and plans, progress reporting, the host protocol.

Every layer may import ``onestack.core``; it imports only ``onestack.errors``, the
standard library and pydantic; ``[tool.importlinter]`` in pyproject.toml enforces it.
"""
