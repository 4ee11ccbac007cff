"""The live progress line of a launch: counts and best-so-far, rendered quietly.

Pure state plus a renderer, so it is tested without Ray; ``launch`` feeds it events.
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
