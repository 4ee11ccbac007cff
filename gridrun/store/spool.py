"""Writes that must not be lost when the storage stops answering for a while (an S3 endpoint
restarting, a network cut): a finished cell's part is tried again with backoff and, if the
storage still does not answer, kept in a local spool folder and uploaded when it answers
again (the driver's heartbeat tries every few seconds, and the end of a session before
run.json). Which happened is counted per run for ``gridrun status``: parts that needed
retries, parts kept on this machine, and how many of those are still waiting.

The spool is ``$GRIDRUN_SPOOL`` (default ``~/.cache/gridrun/spool``), one folder per run
holding the files under their paths in the run folder. A driver killed while parts wait
there leaves them on its machine: the next session of the run on that machine uploads them
first; a session elsewhere trains those cells again. No Ray, no framework.

    >>> value, tries = retry(lambda: 42)
    >>> (value, tries)
    (42, 0)
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from gridrun.store.location import Location, StorageError

__all__ = ["retry", "put", "flush", "pending", "stats", "discard", "wait_for", "spool_dir",
           "describe"]

# Two tries 0.5 s apart: Arrow's S3 client already retries each request (3 attempts), and
# a write the storage still refuses then waits in the spool, not in the caller's loop.
ATTEMPTS, BACKOFF = 2, 0.5
_LOCK = threading.Lock()  # the Tune callback spools while the heartbeat thread uploads
_COUNTS: dict[str, dict[str, int]] = {}  # run -> retried / kept / uploaded_late


def retry(fn, *, attempts: int = ATTEMPTS, backoff: float = BACKOFF, sleep=time.sleep):
    """(fn(), retries it took); StorageError after ``attempts`` tries, ``backoff`` seconds
    doubling between them."""
    for i in range(attempts):
        try:
            return fn(), i
        except StorageError:
            if i == attempts - 1:
                raise
            sleep(backoff * 2 ** i)
    raise ValueError("attempts must be at least 1")


def spool_dir(run: Location) -> Path:
    """The local folder that keeps ``run``'s writes the storage refused."""
    root = os.environ.get("GRIDRUN_SPOOL") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "gridrun", "spool")
    return Path(root, hashlib.sha1(run.full.encode()).hexdigest()[:16])


def _count(run: Location, what: str, n: int = 1) -> None:
    c = _COUNTS.setdefault(run.full, {"retried": 0, "kept": 0, "uploaded_late": 0})
    c[what] += n


def _kept(run: Location) -> list[str]:
    """Paths (inside the run folder) of the files waiting in the spool, oldest first."""
    folder = spool_dir(run)
    if not folder.is_dir():
        return []
    files = []
    for p in folder.rglob("*"):
        try:  # a file uploaded (and removed) by the heartbeat thread meanwhile is gone
            if p.is_file() and not p.name.startswith("."):
                files.append((p.stat().st_mtime_ns, p.relative_to(folder).as_posix()))
        except OSError:
            continue
    return [rel for _, rel in sorted(files)]


def _keep(run: Location, rel: str, data: bytes) -> None:
    path = spool_dir(run) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    (spool_dir(run) / ".run").write_text(run.full + "\n")  # whose files these are
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def put(run: Location, target: Location, data: bytes) -> str:
    """Write ``data`` to ``target`` (a file inside ``run``): "uploaded", "retried" (it took
    more than one try) or "kept" (in the spool, uploaded by ``flush``). A file already
    waiting in the spool is replaced there, so an older version never lands over a newer
    one."""
    rel = posixpath.relpath(target.path, run.path)
    with _LOCK:
        if (spool_dir(run) / rel).is_file():
            _keep(run, rel, data)
            return "kept"
    try:
        _, tries = retry(lambda: target.write_bytes(data))
    except StorageError:
        with _LOCK:
            _keep(run, rel, data)
        _count(run, "kept")
        return "kept"
    if tries:
        _count(run, "retried")
    return "retried" if tries else "uploaded"


def flush(run: Location, say: bool = False) -> int:
    """Upload what waits in ``run``'s spool, oldest first, stopping at the first failure
    (the storage is still away); returns how many were uploaded (and with ``say``, says so
    on stderr)."""
    done = 0
    with _LOCK:
        for rel in _kept(run):
            path = spool_dir(run) / rel
            try:
                run.child(*rel.split("/")).write_bytes(path.read_bytes())
            except StorageError:
                break
            path.unlink()
            done += 1
    if done:
        _count(run, "uploaded_late", done)
        if say:
            print(f"the storage answers again: uploaded {done} finished cell(s) kept on this "
                  "machine", file=sys.stderr)
    return done


def pending(run: Location) -> int:
    """Files of ``run`` waiting in this machine's spool."""
    return len(_kept(run))


def stats(run: Location) -> dict[str, int]:
    """This process's counts for ``run`` (for the heartbeat): retried, kept,
    uploaded_late, and waiting (in the spool now)."""
    c = _COUNTS.get(run.full, {"retried": 0, "kept": 0, "uploaded_late": 0})
    return {**c, "waiting": pending(run)}


def discard(run: Location) -> None:
    """Forget ``run``'s spool: its store now holds every finished trial (or the run was
    replaced)."""
    with _LOCK:
        shutil.rmtree(spool_dir(run), ignore_errors=True)


def wait_for(run: Location, seconds: float = 60.0, sleep=time.sleep) -> bool:
    """Upload what waits in the spool, waiting up to ``seconds`` for the storage to answer;
    True when nothing waits any more. Says once on stderr that it waits."""
    deadline, told = time.monotonic() + seconds, False
    while True:
        flush(run, say=True)
        if not pending(run):
            return True
        if time.monotonic() > deadline:
            return False
        if not told:
            print(f"waiting up to {seconds:.0f} s for {run} to answer: "
                  f"{pending(run)} finished cell(s) are kept on this machine "
                  f"({spool_dir(run)})", file=sys.stderr)
            told = True
        sleep(2.0)


def describe(u: Mapping[str, Any] | None) -> list[str]:
    """Lines for ``gridrun status``: what the storage refused in a session and what became of
    it (``stats`` with the driver's ``host``)."""
    u, out = u or {}, []
    host = u.get("host", "the driver's host")
    if u.get("retried"):
        out.append(f"storage: {u['retried']} finished cell(s) uploaded after retries")
    if u.get("waiting"):
        out.append(f"storage: {u['waiting']} finished cell(s) kept on {host}, waiting to be "
                   "uploaded (the storage did not answer; retried every 5 s)")
    if u.get("uploaded_late"):
        out.append(f"storage: {u['uploaded_late']} finished cell(s) were kept on {host} "
                   "while the storage did not answer, and uploaded later")
    return out
