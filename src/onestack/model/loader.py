"""Parse a site file into a :class:`Site`, naming file, line and field on error.

A site file is untrusted input. It is read from YAML's event stream (libyaml when
present) into plain data in one linear pass that refuses what a site file never
needs and an attacker would use: anchors and aliases (a few hundred bytes of
nested aliases expand to gigabytes), explicit tags on collections, keys that are
not plain values, duplicate keys, several documents, nesting deeper than
``MAX_DEPTH`` and more than ``MAX_EVENTS`` YAML events. Pure: no I/O here
(``drivers.site_file`` reads the file, with its size cap).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from onestack.errors import SiteFileError, shown
from onestack.model.architecture import Architecture, breaches
from onestack.model.site import Site

MAX_BYTES = 1024 * 1024  # a site file with 10,000 nodes fits; /dev/zero does not
MAX_DEPTH = 16  # the model nests five levels; deeper is not a site file
MAX_EVENTS = 200_000  # YAML events: 10,000 nodes of 8 fields need about 180,000
MAX_ITEMS = 10_000  # in one list (the model's own caps are lower or equal)
MAX_KEYS = 64  # in one mapping (the widest model has 8 fields)

Loc = tuple[int | str, ...]
_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~20x faster
_RESOLVER: Any = yaml.resolver.Resolver()  # untyped in types-PyYAML
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in
                         ("str", "int", "float", "bool", "null", "timestamp"))


@dataclass
class _Frame:
    """A mapping or sequence being built, and where it sits in the document."""

    value: dict[Any, Any] | list[Any]
    loc: Loc
    key: Any = None
    has_key: bool = False


@dataclass
class _Document:
    """The plain data of a site file and the line of every value in it."""

    path: str
    root: Any = None
    lines: dict[Loc, int] = field(default_factory=dict)
    stack: list[_Frame] = field(default_factory=list)
    documents: int = 0

    def fail(self, line: int | None, loc: Loc, problem: str) -> SiteFileError:
        return SiteFileError(self.path, line, field_text(loc), problem)

    def place(self, value: Any, event: yaml.Event) -> Loc | None:
        """Put a value where the document is; None when it became a mapping's key."""
        line = _line(event)
        if not self.stack:
            self.root = value
            self.lines[()] = line
            return ()
        frame = self.stack[-1]
        if isinstance(frame.value, list):
            loc = (*frame.loc, len(frame.value))
            if len(frame.value) >= MAX_ITEMS:
                raise self.fail(line, frame.loc, f"more than {MAX_ITEMS} items in one list")
            frame.value.append(value)
        elif not frame.has_key:
            self._take_key(frame, value, event)
            return None
        else:
            loc = (*frame.loc, frame.key)
            frame.value[frame.key] = value
            frame.has_key = False
        self.lines[loc] = line
        return loc

    def here(self) -> Loc:
        """Where the next value goes: the key being set, or the next item of a list."""
        if not self.stack:
            return ()
        frame = self.stack[-1]
        if isinstance(frame.value, list):
            return (*frame.loc, len(frame.value))
        return (*frame.loc, frame.key) if frame.has_key else frame.loc

    def _take_key(self, frame: _Frame, key: Any, event: yaml.Event) -> None:
        line = _line(event)
        if not isinstance(event, yaml.ScalarEvent):
            raise self.fail(line, frame.loc, "a key must be a plain value, not a list or "
                                             "mapping")
        assert isinstance(frame.value, dict)
        if len(frame.value) >= MAX_KEYS:
            raise self.fail(line, frame.loc, f"more than {MAX_KEYS} keys in one mapping")
        if key in frame.value:
            raise self.fail(line, (*frame.loc, key), "duplicate key (it is already set above)")
        frame.key, frame.has_key = key, True


def _line(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 1


def field_text(loc: Loc) -> str:
    """A dotted field path for messages: printable, and short even for a huge key."""
    text = ".".join(str(part) for part in loc) or "(top)"
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= 80 else text[:77] + "..."


def _scalar(event: yaml.ScalarEvent, doc: _Document, constructor: Any) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag not in _SCALAR_TAGS:
        raise doc.fail(_line(event), doc.here(),
                       f"YAML tag {tag} is not allowed in a site file")
    node = yaml.ScalarNode(tag, event.value, None, None, event.style)
    try:
        # The plain constructor function: no cache of every node, no deferred generators.
        return constructor.yaml_constructors[tag](constructor, node)
    except (ValueError, OverflowError, yaml.YAMLError) as exc:
        problem = getattr(exc, "problem", None) or f"not a valid {tag.rsplit(':', 1)[-1]}"
        raise doc.fail(_line(event), doc.here(), problem) from None


def _start_collection(event: yaml.CollectionStartEvent, doc: _Document) -> None:
    line = _line(event)
    where = doc.here()
    if not event.implicit:
        raise doc.fail(line, where, f"YAML tags ({event.tag}) are not allowed in a site file")
    if len(doc.stack) >= MAX_DEPTH:
        raise doc.fail(line, where, f"nested more than {MAX_DEPTH} levels deep")
    value: dict[Any, Any] | list[Any] = {} if isinstance(event, yaml.MappingStartEvent) else []
    loc = doc.place(value, event)
    if loc is None:
        raise doc.fail(line, where, "a key must be a plain value, not a list or mapping")
    doc.stack.append(_Frame(value, loc))


def _handle(event: yaml.Event, doc: _Document, constructor: Any) -> None:
    line = _line(event)
    if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
        raise doc.fail(line, doc.here(), "YAML anchors and aliases (&name, *name) are not "
                                    "allowed in a site file")
    if isinstance(event, yaml.ScalarEvent):
        doc.place(_scalar(event, doc, constructor), event)
    elif isinstance(event, yaml.CollectionStartEvent):
        _start_collection(event, doc)
    elif isinstance(event, yaml.CollectionEndEvent):
        doc.stack.pop()
    elif isinstance(event, yaml.DocumentStartEvent):
        doc.documents += 1
        if doc.documents > 1:
            raise doc.fail(line, (), "more than one YAML document (---) in a site file")


def _events(text: str) -> Iterator[yaml.Event]:
    return iter(yaml.parse(text, Loader=_PARSER))


def _syntax_error(exc: Exception, text: str, path: str) -> SiteFileError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    position = getattr(exc, "position", None)
    if line is None and isinstance(position, int):
        line = text.count("\n", 0, position) + 1
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or \
        "unreadable"
    return SiteFileError(path, line, "(syntax)", f"not valid YAML: {problem}")


def load_document(text: str, path: str) -> _Document:
    """The plain data of site-file text, with lines; SiteFileError on anything unsafe."""
    doc = _Document(path)
    constructor = yaml.constructor.SafeConstructor()
    events = _events(text)
    count = 0
    try:
        for event in events:
            count += 1
            if count > MAX_EVENTS:
                raise doc.fail(_line(event), (),
                               f"too many values (more than {MAX_EVENTS} YAML events)")
            _handle(event, doc, constructor)
    except (yaml.YAMLError, UnicodeError) as exc:
        raise _syntax_error(exc, text, path) from None
    return doc


def _line_of(lines: dict[Loc, int], loc: Loc) -> int:
    """The line of the deepest part of a pydantic error location found in the file."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _check_release(site: Site, doc: _Document, releases: Collection[str]) -> None:
    if site.release not in releases:
        known = ", ".join(sorted(releases)) or "none"
        raise doc.fail(_line_of(doc.lines, ("release",)), ("release",),
                       f"unknown release bundle {site.release} (known: {known})")


def _check_architecture(site: Site, doc: _Document,
                        architectures: Mapping[str, Architecture]) -> None:
    """The site's architecture is in the catalog and the site keeps its rules: else
    every broken rule, with its hosts, on the line of the first host concerned."""
    loc: Loc = ("architecture",)
    architecture = architectures.get(site.architecture)
    if architecture is None:
        known = ", ".join(sorted(architectures)) or "none"
        raise doc.fail(_line_of(doc.lines, loc), loc,
                       f"unknown architecture {site.architecture} (known: {known})")
    broken = breaches(site, architecture)
    if not broken:
        return
    first = broken[0].hosts[0] if broken[0].hosts else None
    index = next((i for i, h in enumerate(site.hosts) if h.name == first), None)
    line = _line_of(doc.lines, ("hosts", index, "name") if index is not None else
                    loc if loc in doc.lines else ("hosts",))
    raise doc.fail(line, loc, "; ".join(f"rule {b.rule}: {b.problem}" for b in broken))


def parse_site(text: str, path: str, releases: Collection[str] | None = None,
               architectures: Mapping[str, Architecture] | None = None) -> Site:
    """Validate site-file text. Raises SiteFileError with file, line and field.

    ``releases``: the release series the catalog ships; when given, the site's
    ``release`` must be one of them. ``architectures``: the catalog's; when given, the
    site's ``architecture`` must be one of them, and the site must keep its rules.
    """
    if len(text) > MAX_BYTES:
        raise SiteFileError(path, None, "(file)", f"larger than {MAX_BYTES // 1024} KiB")
    doc = load_document(text, path)
    if not isinstance(doc.root, dict):
        raise SiteFileError(path, 1, "(top)", "expected a mapping of site settings")
    for section, key in (("hosts", "name"), ("hosts", "address"), ("nodes", "name")):
        _reject_duplicates(doc, section, key)
    try:
        site = Site.model_validate(doc.root)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        loc = tuple(err["loc"])
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise doc.fail(_line_of(doc.lines, loc), loc, err["msg"] + more) from None
    if releases is not None:
        _check_release(site, doc, releases)
    if architectures is not None:
        _check_architecture(site, doc, architectures)
    return site


def _reject_duplicates(doc: _Document, section: str, key: str) -> None:
    """Two hosts (or nodes) with one name, or two hosts with one address, named on the
    second one's line, in linear time: a power action or a step by name would
    otherwise hit both machines, and two hosts on one address are one machine."""
    items = doc.root.get(section)
    if not isinstance(items, list):
        return
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        value = item.get(key) if isinstance(item, dict) else None
        if not isinstance(value, str):
            continue
        if value in first:
            loc = (section, index, key)
            raise doc.fail(_line_of(doc.lines, loc), loc,
                           f"duplicate {section[:-1]} {key} {shown(value)!r} (already "
                           f"{section}.{first[value]}.{key})")
        first[value] = index


def dump_site(site: Site) -> str:
    """Site as YAML text (what ``onestack`` writes for the embedded default)."""
    return yaml.safe_dump(site.model_dump(mode="json", exclude_defaults=False), sort_keys=False)
