"""Parse a site file into a :class:`Site`, naming file, line and field on error."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from onestack.errors import SiteFileError
from onestack.model.site import Site


def _line_of(node: yaml.Node, loc: tuple[int | str, ...]) -> int:
    """Walk the YAML node tree along a pydantic error location; return a 1-based line."""
    current = node
    for key in loc:
        child: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for k, v in current.value:
                if k.value == key:
                    child = v
                    break
        elif isinstance(current, yaml.SequenceNode) and isinstance(key, int):
            if 0 <= key < len(current.value):
                child = current.value[key]
        if child is None:
            break
        current = child
    return current.start_mark.line + 1


def _reject_duplicate_keys(node: yaml.Node, path: str, where: tuple[str, ...]) -> None:
    """YAML silently keeps the last of two equal keys; a site file must not."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            field = ".".join((*where, str(key.value)))
            if key.value in seen:
                raise SiteFileError(path, key.start_mark.line + 1, field,
                                    "duplicate key (it is already set above)")
            seen.add(key.value)
            _reject_duplicate_keys(value, path, (*where, str(key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _reject_duplicate_keys(item, path, (*where, str(index)))


def _reject_duplicate_node_names(root: yaml.Node, path: str) -> None:
    """Two nodes with one name would make a power action by name hit both machines."""
    nodes = next((v for k, v in root.value if k.value == "nodes"), None) \
        if isinstance(root, yaml.MappingNode) else None
    if not isinstance(nodes, yaml.SequenceNode):
        return
    first: dict[str, int] = {}
    for index, item in enumerate(nodes.value):
        name = next((v for k, v in item.value if k.value == "name"), None) \
            if isinstance(item, yaml.MappingNode) else None
        if not isinstance(name, yaml.ScalarNode):
            continue
        if name.value in first:
            at = first[name.value]
            raise SiteFileError(path, name.start_mark.line + 1, f"nodes.{index}.name",
                                f"duplicate node name {name.value!r} (already nodes.{at}.name)")
        first[name.value] = index


def parse_site(text: str, path: str) -> Site:
    """Validate site-file text. Raises SiteFileError with file, line and field."""
    try:
        root = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SiteFileError(path, line, "(syntax)", f"not valid YAML: {problem}") from None
    if root is None or not isinstance(data, dict):
        raise SiteFileError(path, 1, "(top)", "expected a mapping of site settings")
    _reject_duplicate_keys(root, path, ())
    _reject_duplicate_node_names(root, path)
    try:
        return Site.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or "(top)"
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise SiteFileError(path, _line_of(root, loc), field, err["msg"] + more) from None


def dump_site(site: Site) -> str:
    """Site as YAML text (what ``onestack`` writes for the embedded default)."""
    return yaml.safe_dump(site.model_dump(mode="json", exclude_defaults=False), sort_keys=False)
