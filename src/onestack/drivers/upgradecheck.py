"""Reading the output of the upstream ``*-status upgrade check`` commands.

They print an oslo.upgradecheck table: one block per check with ``Check:``,
``Result:`` (Success, Warning, Failure) and ``Details:`` lines, details wrapped
over several rows. An operator wants the checks that did not succeed, in one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ROW = re.compile(r"^\|\s?(?P<text>.*?)\s*\|$")


@dataclass(frozen=True)
class CheckResult:
    check: str
    result: str
    details: str


def parse(output: str) -> list[CheckResult]:
    """Every check block of an upgrade-check table, in order."""
    results: list[CheckResult] = []
    check = result = ""
    details: list[str] = []

    def flush() -> None:
        if check:
            text = " ".join(details).strip()
            results.append(CheckResult(check, result, "" if text == "None" else text))

    for line in output.splitlines():
        row = _ROW.match(line.strip())
        if row is None:
            continue
        text = row["text"]
        if text.startswith("Check:"):
            flush()
            check, result, details = text[6:].strip(), "", []
        elif text.startswith("Result:"):
            result = text[7:].strip()
        elif text.startswith("Details:"):
            details = [text[8:].strip()]
        elif check and details and text.strip():
            details.append(text.strip())
    flush()
    return results


def summary(output: str, tail: int = 3) -> str:
    """The checks that did not succeed, or (no table found) the output's last lines."""
    results = parse(output)
    if not results:
        return " | ".join(output.strip().splitlines()[-tail:])
    bad = [r for r in results if r.result.lower() != "success"]
    if not bad:
        return f"{len(results)} of {len(results)} checks passed"
    return "; ".join(f"{r.result}: {r.check}" + (f" ({r.details})" if r.details else "")
                     for r in bad)
