"""Progress reporting: which step, how long. Plain text for people, JSON lines for tools."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Protocol, TextIO

from onestack.core.step import Step


class Progress(Protocol):
    def step_started(self, step: Step, index: int, total: int) -> None: ...
    def step_done(self, step: Step, seconds: float) -> None: ...
    def step_failed(self, step: Step, seconds: float, error: str) -> None: ...
    def message(self, text: str) -> None: ...


class PlainProgress:
    """``[ 3/41] aio  keystone   render keystone.conf ... ok (0.4s)``

    Steps of several hosts may run at once: a step's line is finished in place when
    nothing was written since it started, else written whole with its result.
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.t0 = time.monotonic()
        self._open: Step | None = None  # the step whose line awaits its result
        self._lock = threading.Lock()

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.t0:6.1f}s"

    def _write(self, text: str, open_step: Step | None = None) -> None:
        with self._lock:
            if self._open is not None:
                self.out.write("\n")
            self.out.write(text)
            self.out.flush()
            self._open = open_step

    def _finish(self, step: Step, result: str) -> None:
        with self._lock:
            if self._open is step:
                self.out.write(f" {result}\n")
            else:
                if self._open is not None:
                    self.out.write("\n")
                self.out.write(f"{self._elapsed()} {_label(step)} ... {result}\n")
            self.out.flush()
            self._open = None

    def step_started(self, step: Step, index: int, total: int) -> None:
        width = len(str(total))
        self._write(f"{self._elapsed()} [{index:>{width}}/{total}] {_label(step)} ...", step)

    def step_done(self, step: Step, seconds: float) -> None:
        self._finish(step, f"ok ({seconds:.1f}s)")

    def step_failed(self, step: Step, seconds: float, error: str) -> None:
        self._finish(step, f"FAILED ({seconds:.1f}s)")

    def message(self, text: str) -> None:
        self._write(f"{self._elapsed()} {text}\n")


def _label(step: Step) -> str:
    return f"{step.host} {step.service:<10} {step.summary}"


class JsonProgress:
    """One JSON object per event on stderr."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self._lock = threading.Lock()

    def _emit(self, **event: object) -> None:
        line = json.dumps({"time": time.time(), **event}) + "\n"
        with self._lock:  # one whole line per event, whichever host's thread
            self.out.write(line)
            self.out.flush()

    def step_started(self, step: Step, index: int, total: int) -> None:
        self._emit(event="step_started", step=step.id, host=step.host, index=index,
                   total=total)

    def step_done(self, step: Step, seconds: float) -> None:
        self._emit(event="step_done", step=step.id, host=step.host, seconds=round(seconds, 3))

    def step_failed(self, step: Step, seconds: float, error: str) -> None:
        self._emit(event="step_failed", step=step.id, host=step.host,
                   seconds=round(seconds, 3), error=error)

    def message(self, text: str) -> None:
        self._emit(event="message", text=text)


class SilentProgress:
    def step_started(self, step: Step, index: int, total: int) -> None: ...
    def step_done(self, step: Step, seconds: float) -> None: ...
    def step_failed(self, step: Step, seconds: float, error: str) -> None: ...
    def message(self, text: str) -> None: ...
