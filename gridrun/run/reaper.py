"""Leaves no Ray processes behind a driver that was killed.

A driver that starts Ray in-process owns a small cluster: GCS, raylet, workers and two
agents (DashboardAgent, RuntimeEnvAgent). When the driver is SIGKILLed, the raylet and GCS
go with it but the agents can outlive it and even ignore SIGTERM. ``Reaper`` starts a tiny
watcher process that learns the driver's process tree while it runs and, if the driver dies
without saying goodbye, kills what is left of that tree. A clean ``ray.shutdown`` says
goodbye through a pipe and the watcher exits without touching anything.

    >>> with Reaper():                 # doctest: +SKIP
    ...     ray.init(address="local")
"""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["Reaper"]


class Reaper:
    """Context manager: on enter, start the watcher of this process; on a normal exit, tell
    it to go away."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gridrun.run.reaper", str(os.getpid()),
                 str(self.interval)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)  # not in the driver's process group: Ctrl-C spares it
        except OSError:
            self.proc = None  # without a watcher, a killed driver may leave agents behind
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(b"bye\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


def _tree(pid: int):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _watch(driver: int, interval: float) -> None:
    """Runs in the watcher: remember the driver's descendants; when stdin closes without
    "bye" (the driver died), kill every remembered process that still runs."""
    import selectors

    import psutil

    me = os.getpid()
    seen: dict[int, psutil.Process] = {}
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    while True:
        for p in _tree(driver):
            if p.pid != me:
                seen.setdefault(p.pid, p)
        if sel.select(timeout=interval):
            line = sys.stdin.readline()
            if line.strip() == "bye":
                return
            if line:  # anything else: keep watching
                continue
            break  # EOF: the driver is gone
    victims = [p for p in seen.values() if p.is_running()]  # same pid *and* start time
    for p in victims:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=5)


if __name__ == "__main__":
    _watch(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 1.0)
