"""The live progress line of a launch: counts and best-so-far, rendered quietly.

Pure state plus a renderer, so it is tested without Ray; ``launch`` feeds it events.
``LiveView`` shows it: a live line on a terminal, a plain line per quarter on a pipe.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    """Counts of trials by state, the best metric so far, and elapsed time."""

    name: str
    total: int
    metric: str
    mode: str = "max"
    running: set = field(default_factory=set)
    completed: int = 0
    stopped: int = 0
    errored: int = 0
    best: float = math.nan
    started: float = field(default_factory=time.monotonic)

    def start(self, trial_id: str) -> None:
        self.running.add(trial_id)

    def result(self, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        better = value > self.best if self.mode == "max" else value < self.best
        if math.isnan(self.best) or better:
            self.best = value

    def finish(self, trial_id: str, status: str) -> None:
        self.running.discard(trial_id)
        if status == "completed":
            self.completed += 1
        elif status == "stopped_early":
            self.stopped += 1
        elif status == "error":
            self.errored += 1
        # "interrupted": the trial is no longer running and has no result

    def reclassify(self, trial_id: str, old: str, new: str) -> None:
        """A finished trial ended again with another status (a stopped trial that a
        confirmation continued to the end): move it between the counts."""
        self.running.discard(trial_id)
        counts = {"completed": "completed", "stopped_early": "stopped", "error": "errored"}
        if old in counts and new in counts and old != new:
            setattr(self, counts[old], getattr(self, counts[old]) - 1)
            setattr(self, counts[new], getattr(self, counts[new]) + 1)

    @property
    def done(self) -> int:
        return self.completed + self.stopped + self.errored

    def line(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        best = "-" if math.isnan(self.best) else f"{self.best:.4f}"
        return (f"{self.name}: {self.done}/{self.total} done "
                f"({self.completed} completed, {self.stopped} stopped by ASHA, "
                f"{self.errored} errors), {len(self.running)} running, "
                f"best {self.metric} {best}, {elapsed // 60:02d}:{elapsed % 60:02d}")


class LiveView:
    """Rich live line on a terminal; on a pipe, a plain line at each quarter and the end."""

    def __init__(self, progress: Progress, console, enabled: bool):
        self.progress, self.console, self.enabled = progress, console, enabled
        self._live, self._last, self._quarter = None, 0.0, 0

    def __enter__(self):
        if self.enabled and self.console.is_terminal:
            from rich.live import Live

            self._live = Live(self.progress.line(), console=self.console,
                              refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __call__(self) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            now = time.monotonic()
            if now - self._last > 0.25:
                self._live.update(self.progress.line())
                self._last = now
            return
        quarter = 4 * self.progress.done // max(1, self.progress.total)
        if quarter > self._quarter:
            self._quarter = quarter
            self.console.print(self.progress.line(), highlight=False, soft_wrap=True)

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.update(self.progress.line())
            self._live.__exit__(*exc)
