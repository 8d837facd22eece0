"""Fuzzing the site-file loader (Hypothesis): whatever the input, the loader returns a
Site or raises SiteFileError (naming the file), within bounded time and memory.

ONESTACK_FUZZ_EXAMPLES=20000 runs a longer campaign than the unit suite's default.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onestack.drivers.site_file import decode_site_text
from onestack.errors import SiteFileError
from onestack.model.loader import parse_site
from onestack.model.site import Site

PATH = "/fuzz/site.yaml"
SECONDS = 2.0  # per input of at most a few KiB; ~100x the usual
PEAK_BYTES = 64 * 2**20

FUZZ = settings(max_examples=int(os.environ.get("ONESTACK_FUZZ_EXAMPLES", "150")),
                deadline=None, database=None, suppress_health_check=list(HealthCheck))

VALID = ('name: lab\nrelease: "2026.1"\nregion: RegionOne\nport_offset: 100\nhosts:\n'
         '  - name: aio\n    address: 10.0.0.5\n    roles: [controller, compute]\n'
         '    failure_domain: rack1\nnodes:\n  - name: n1\n    bmc: https://10.0.0.9\n'
         '    credentials: bmc\n')
TOKENS = ["&a ", "*a", "!!python/object:os.system ", "!!map ", "!!binary ", "[", "]", "{",
          "}", "? ", "---\n", "...\n", "\n", "\t", "\x00", "\x1b[31m", ": ", "- ", "<<: ",
          "'", '"', "\\", "%YAML 1.1\n", "#", "|\n", ">-\n", "9" * 5000, "1e999", "0x1f",
          "true", "null", "~", "2026-01-01", "\ufeff", "\udcff", "é", "\n" + " " * 40]


def _check(text: str) -> None:
    """The property: a Site, or a SiteFileError about PATH; fast and small either way."""
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        result: Any = parse_site(text, PATH, releases=["2026.1"])
    except SiteFileError as exc:
        result = exc
    finally:
        elapsed = time.monotonic() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < SECONDS, f"{elapsed:.2f}s for {len(text)} characters"
    assert peak < PEAK_BYTES, f"{peak} bytes for {len(text)} characters"
    if isinstance(result, SiteFileError):
        assert result.path == PATH and result.field_path
        assert str(result).isprintable(), repr(str(result))
    else:
        assert isinstance(result, Site)


@FUZZ
@given(st.text(max_size=3000))
def test_any_text(text: str) -> None:
    _check(text)


@FUZZ
@given(st.binary(max_size=3000))
def test_any_bytes(data: bytes) -> None:
    try:
        text = decode_site_text(data, PATH)
    except SiteFileError as exc:
        assert exc.path == PATH and exc.line is not None
        return
    _check(text)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID)), st.sampled_from(TOKENS)), max_size=8))
def test_valid_file_with_hostile_tokens_inserted(edits: list[tuple[int, str]]) -> None:
    text = VALID
    for position, token in sorted(edits, reverse=True):
        text = text[:position] + token + text[position:]
    _check(text)


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                     st.text(max_size=80), st.sampled_from(["lab", "aio", "2026.1",
                                                            "controller", "10.0.0.1"]))
_DATA = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=6),
    st.dictionaries(st.sampled_from(["name", "release", "hosts", "nodes", "roles", "region",
                                     "port_offset", "address", "bmc", "credentials",
                                     "failure_domain", "x"]), inner, max_size=6)),
    max_leaves=40)


@FUZZ
@given(st.fixed_dictionaries({"name": _DATA, "release": _DATA, "hosts": _DATA},
                             optional={"nodes": _DATA, "region": _DATA,
                                       "port_offset": _DATA}))
def test_generated_documents(data: dict[str, Any]) -> None:
    _check(yaml.safe_dump(data, allow_unicode=True))
