"""Progress reporting: which step, how long. Plain text for people, JSON lines for tools."""

from __future__ import annotations

import json
import sys
import time
from typing import Protocol, TextIO

from onestack.core.step import Step


class Progress(Protocol):
    def step_started(self, step: Step, index: int, total: int) -> None: ...
    def step_done(self, step: Step, seconds: float) -> None: ...
    def step_failed(self, step: Step, seconds: float, error: str) -> None: ...
    def message(self, text: str) -> None: ...


class PlainProgress:
    """``[ 3/41] keystone  render keystone.conf ... 0.4s``"""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.t0 = time.monotonic()

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.t0:6.1f}s"

    def step_started(self, step: Step, index: int, total: int) -> None:
        width = len(str(total))
        self.out.write(f"{self._elapsed()} [{index:>{width}}/{total}] {step.service:<10} "
                       f"{step.summary} ...")
        self.out.flush()

    def step_done(self, step: Step, seconds: float) -> None:
        self.out.write(f" ok ({seconds:.1f}s)\n")
        self.out.flush()

    def step_failed(self, step: Step, seconds: float, error: str) -> None:
        self.out.write(f" FAILED ({seconds:.1f}s)\n")
        self.out.flush()

    def message(self, text: str) -> None:
        self.out.write(f"{self._elapsed()} {text}\n")
        self.out.flush()


class JsonProgress:
    """One JSON object per event on stderr."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr

    def _emit(self, **event: object) -> None:
        self.out.write(json.dumps({"time": time.time(), **event}) + "\n")
        self.out.flush()

    def step_started(self, step: Step, index: int, total: int) -> None:
        self._emit(event="step_started", step=step.id, index=index, total=total)

    def step_done(self, step: Step, seconds: float) -> None:
        self._emit(event="step_done", step=step.id, seconds=round(seconds, 3))

    def step_failed(self, step: Step, seconds: float, error: str) -> None:
        self._emit(event="step_failed", step=step.id, seconds=round(seconds, 3), error=error)

    def message(self, text: str) -> None:
        self._emit(event="message", text=text)


class SilentProgress:
    def step_started(self, step: Step, index: int, total: int) -> None: ...
    def step_done(self, step: Step, seconds: float) -> None: ...
    def step_failed(self, step: Step, seconds: float, error: str) -> None: ...
    def message(self, text: str) -> None: ...
