"""A one-line progress display for long jobs: count, rate, ETA and any extra fields, on stderr."""

from __future__ import annotations

import sys
import time
from typing import Callable, Mapping, TextIO

UNKNOWN = "--:--"  # an ETA that no measured rate supports yet


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def format_eta(remaining: float, rate: float | None) -> str:
    """`remaining` work at `rate` per second as `m:ss`; `--:--` while the rate is unknown (None)."""
    if remaining <= 0:
        return format_duration(0)
    return format_duration(remaining / rate) if rate else UNKNOWN


class Pace:
    """Steady-state work per second: counted from the first `add` on, not from creation.

    The time to the first update is start-up (compilation, worker start, model loading), not the
    pace of the work; counting it would make the first rates too low and the first ETAs several
    times too long. So the first `add` only marks the start, and `rate` is None until more work
    has been added after it.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.count = 0.0
        self._anchor: tuple[float, float] | None = None  # (time, count) at the first add

    def add(self, amount: float) -> None:
        self.count += amount
        if self._anchor is None:
            self._anchor = (self._clock(), self.count)

    @property
    def rate(self) -> float | None:
        """Work per second since the first `add`; None before any work was added after it."""
        if self._anchor is None:
            return None
        seconds, work = self._clock() - self._anchor[0], self.count - self._anchor[1]
        return work / seconds if seconds > 0 and work > 0 else None


class Progress:
    """`label [####----] done/total  rate unit/s  elapsed m:ss  ETA m:ss  extra...`, redrawn at most every `interval` s.

    On a terminal the line is redrawn in place (default every 1 s); in a log file each draw is a
    new line (default every 10 s). Elapsed time counts from creation; the rate and the ETA count
    from the first update that makes progress (see `Pace`), and read `--` until a later one does.
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.done, self.label, self.unit = total, done, label, unit
        self.stream = stream or sys.stderr
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        # A log file gets a new line per draw: fewer of them keeps it readable.
        self.interval = interval if interval is not None else (1.0 if self._tty else 10.0)
        self._clock = clock
        self._start = clock()
        self.enabled = enabled
        self._last_draw = float("-inf")  # the first update always draws
        self._drawn_done = -1
        self.units = 0  # images (or examples) processed since creation (work done before it, e.g. resumed, not counted)
        self._step_pace, self._unit_pace = Pace(clock), Pace(clock)
        self.extra: Mapping[str, float | str] = {}

    @property
    def rate(self) -> float | None:
        """Units per second from the first update on (start-up excluded); None until a later update."""
        return self._unit_pace.rate

    @property
    def eta(self) -> float | None:
        """Seconds left at the steady step rate: 0 when done, None while the rate is unknown."""
        if self.done >= self.total:
            return 0.0
        rate = self._step_pace.rate
        return (self.total - self.done) / rate if rate else None

    def update(self, steps: int = 0, units: int = 0, extra: Mapping[str, float | str] | None = None) -> None:
        self.done += steps
        self.units += units
        if steps or units:  # an update of the extra fields alone is no progress: it does not start the pace
            self._step_pace.add(steps)
            self._unit_pace.add(units)
        if extra is not None:
            self.extra = extra
        now = self._clock()
        if now - self._last_draw >= self.interval or self.done >= self.total:
            self._last_draw = now
            self._draw(final=False)

    def line(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        bar = "#" * int(20 * fraction) + "-" * (20 - int(20 * fraction))
        elapsed = self._clock() - self._start
        rate, eta = self.rate, self.eta
        rate_text = f"{rate:.1f}" if rate is not None else "--"
        eta_text = format_duration(eta) if eta is not None else UNKNOWN
        fields = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.extra.items())
        return (
            f"{self.label} [{bar}] {self.done}/{self.total}  {rate_text} {self.unit}/s  "
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
