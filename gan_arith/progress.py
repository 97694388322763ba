"""A one-line progress display for long jobs: count, rate, ETA and any extra fields, on stderr."""

from __future__ import annotations

import sys
import time
from typing import Mapping, TextIO


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """`label [####----] done/total  rate unit/s  ETA m:ss  extra...`, redrawn at most every `interval` s.

    On a terminal the line is redrawn in place (default every 1 s); in a log file each draw is a
    new line (default every 10 s).
    """

    def __init__(
        self,
        total: int,
        *,
        label: str = "",
        unit: str = "images",
        done: int = 0,
        interval: float | None = None,
        stream: TextIO | None = None,
        enabled: bool = True,
    ) -> None:
        self.total, self.done, self.label, self.unit = total, done, label, unit
        self.stream = stream or sys.stderr
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        # A log file gets a new line per draw: fewer of them keeps it readable.
        self.interval = interval if interval is not None else (1.0 if self._tty else 10.0)
        self._start = time.monotonic()
        self._start_done = done
        self.enabled = enabled
        self._last_draw = 0.0
        self._drawn_done = -1
        self.units = 0  # images (or examples) processed since creation: what `rate` divides
        self.extra: Mapping[str, float | str] = {}

    @property
    def rate(self) -> float:
        """Units per second since this display was created (work done before it, e.g. resumed, not counted)."""
        return self.units / max(time.monotonic() - self._start, 1e-9)

    def update(self, steps: int = 0, units: int = 0, extra: Mapping[str, float | str] | None = None) -> None:
        self.done += steps
        self.units += units
        if extra is not None:
            self.extra = extra
        now = time.monotonic()
        if now - self._last_draw >= self.interval or self.done >= self.total:
            self._last_draw = now
            self._draw(final=False)

    def line(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        bar = "#" * int(20 * fraction) + "-" * (20 - int(20 * fraction))
        elapsed = time.monotonic() - self._start
        steps_per_s = (self.done - self._start_done) / max(elapsed, 1e-9)
        eta = (self.total - self.done) / steps_per_s if steps_per_s > 0 else float("nan")
        eta_text = format_duration(eta) if eta == eta else "?"
        fields = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.extra.items())
        return (
            f"{self.label} [{bar}] {self.done}/{self.total}  {self.rate:.1f} {self.unit}/s  "
            f"elapsed {format_duration(elapsed)}  ETA {eta_text}  {fields}"
        ).rstrip()

    def _draw(self, final: bool) -> None:
        if not self.enabled:
            return
        if final and not self._tty and self.done == self._drawn_done:
            return  # a log file already has a line at this count
        self._drawn_done = self.done
        line = self.line()
        end = "\n" if final or not self._tty else ""
        prefix = "\r" if self._tty else ""
        self.stream.write(prefix + line + end)
        self.stream.flush()

    def close(self) -> None:
        self._draw(final=True)
