"""Progress: one status line on stderr while the suite runs (a line per step when not a TTY)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 24
_REDRAW_EVERY = 0.1


class Progress:
    """A bar over the suite's planned steps, with the current step's own progress beside it."""

    def __init__(self, total_steps: int, *, stream: TextIO | None = None) -> None:
        self.total = max(1, total_steps)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._label = ""
        self._detail = ""
        self._fraction = 0.0
        self._drawn = 0.0
        self._shown = False

    def step(self, label: str) -> None:
        """Begin the next step; the previous one counts as done."""
        if self._label:
            self.done = min(self.total, self.done + 1)
        self._label = label
        self._detail = ""
        self._fraction = 0.0
        if self.tty:
            self._draw(force=True)
        else:
            elapsed = int(time.monotonic() - self.started)
            print(
                f"[{self._percent():3d}% {elapsed // 60}:{elapsed % 60:02d}] {label}",
                file=self.stream,
                flush=True,
            )

    def update(self, fraction: float, detail: str = "") -> None:
        """The current step is `fraction` (0..1) done; `detail` says what that means."""
        self._fraction = min(1.0, max(0.0, fraction))
        self._detail = detail
        if self.tty:
            self._draw()

    def clear(self) -> None:
        """Erase the status line, so that a table can be printed in its place."""
        if self.tty and self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False

    def finish(self) -> None:
        if self._label:
            self.done = self.total
        self.clear()

    def _percent(self) -> int:
        return int(100 * (self.done + self._fraction) / self.total)

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < _REDRAW_EVERY:
            return
        self._drawn = now
        overall = (self.done + self._fraction) / self.total
        filled = int(_WIDTH * overall)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        elapsed = int(now - self.started)
        line = f"[{bar}] {self._percent():3d}% {elapsed // 60}:{elapsed % 60:02d}  {self._label}"
        if self._detail:
            line += f"  {self._detail}"
        self.stream.write("\r\x1b[2K" + line[:160])
        self.stream.flush()
        self._shown = True
