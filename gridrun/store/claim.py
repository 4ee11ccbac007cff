"""Who drives a run: one driver at a time, on storage that has no atomic rename and no
exclusive create (an S3 bucket) as on a local folder.

Each driver writes its own claim object, ``claims/<id>.json``, and reads the others' with a
listing: Lamport's bakery, with objects as its registers. A driver

1. writes its claim with no number yet (it is *choosing*);
2. lists the claims and takes a number one above the highest it sees;
3. rewrites its claim with that number;
4. lists the claims again: when a live claim has a lower (number, id), another driver holds
   or is taking the run, and this one deletes its claim and backs off; a live claim still
   choosing is waited for (a few seconds). Otherwise the run is its own.

Why it holds: both reads follow the reader's own write, and the store shows every write
that ended before a read began (S3 has had this strong read-after-write consistency for
objects and listings since 2020; a local folder has it). Of two drivers that race, the one
whose step-2 listing missed the other's claim took its number after the other had one, so
the other's number is lower; and when both see each other, they rank the same two claims
the same way. So at most one driver passes step 4, and a driver alone passes it. A driver
that holds the run rewrites its claim with the heartbeat (every 5 s) and deletes it at the
end. A claim stops counting when its driver is known to be gone: a process of this host
(and PID namespace) that is no longer running (at once), or any other claim not rewritten for
``TTL`` seconds, measured on the store's own clock (the claims' modification times), so
the hosts' clocks need not agree. Pure functions over a ``Location``: no Ray.

    >>> run = Location("file:///tmp/gridrun-doc/claimed")
    >>> mine = acquire(run)
    >>> held(run) is mine
    True
    >>> mine.release()
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from gridrun.store.location import Location, StorageError

__all__ = ["CLAIMS", "TTL", "Claim", "RunClaimed", "acquire", "held", "read_claims"]

CLAIMS = "claims"
TTL = 30.0  # seconds without a rewrite after which another host's claim stops counting
SETTLE = 10.0  # seconds to wait for a driver that is choosing its number


class RunClaimed(ValueError):
    """Another driver holds the run (or is taking it at the same moment)."""


_HELD: dict[str, "Claim"] = {}  # claim id -> a claim this process holds or is taking


@dataclass
class Claim:
    """This process's claim on a run: ``renew`` it with the heartbeat, ``release`` it at the
    end."""

    run: Location
    id: str
    record: dict = field(repr=False)
    won: bool = False  # step 4 passed: the run is this process's

    @property
    def file(self) -> Location:
        return self.run.child(CLAIMS, f"{self.id}.json")

    def renew(self) -> None:
        self.record["at"] = _now()
        self.file.write_text(json.dumps(self.record))

    def release(self) -> None:
        _HELD.pop(self.id, None)
        try:
            self.file.delete()
        except StorageError:
            return  # a claim left behind stops counting with its process (or after TTL)
        if self.run.is_local:  # a run that failed before its first file leaves no folder
            for folder in (self.file.local_path.parent, self.run.local_path):
                try:
                    folder.rmdir()  # only when empty: a claim arriving meanwhile stays
                except OSError:
                    break


def held(run: Location) -> Claim | None:
    """The claim this process holds on ``run``, if any."""
    return next((c for c in _HELD.values() if c.run.full == run.full and c.won), None)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _pid_space() -> int | None:
    """This process's PID namespace (Linux): two containers may share a host name, never
    their process ids."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _here(record: dict) -> bool:
    """The claim's process can be checked from here: same host, same process ids."""
    return record.get("host") == socket.gethostname() and record.get("pid") is not None \
        and record.get("pids") == _pid_space()


def read_claims(run: Location) -> list[tuple[dict, float | None]]:
    """(claim, its modification time) of every claim on ``run``. A claim deleted between
    the listing and its read is left out: its driver backed off or ended."""
    folder = run.child(CLAIMS)
    out = []
    for name, mtime in sorted(folder.files().items()):
        if name.startswith(".") or not name.endswith(".json"):
            continue  # a local write's temporary file
        try:
            out.append((json.loads(folder.child(name).read_text()), mtime))
        except (StorageError, ValueError):
            continue
    return out


def _alive(record: dict, mtime: float | None, store_now: float | None, ttl: float) -> bool:
    """Whether a claim still counts: its process runs (this host), or it was rewritten less
    than ``ttl`` seconds ago on the store's clock (another host)."""
    if _here(record):
        pid = int(record["pid"])
        if pid == os.getpid():  # this process: only the claims it holds or is taking
            return record.get("id") in _HELD
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, someone else's
            return True
        return True
    if mtime is None or store_now is None:  # a store without times: the writer's clock
        at = record.get("at")
        mtime = dt.datetime.fromisoformat(at).timestamp() if at else None
        store_now = time.time()
    return mtime is None or store_now - mtime < ttl


def _who(record: dict, mtime: float | None, store_now: float | None) -> str:
    age = "" if mtime is None or store_now is None else \
        f", claim rewritten {max(0.0, store_now - mtime):.0f} s ago"
    return f"host {record.get('host')}, pid {record.get('pid')}{age}"


def acquire(run: Location, *, ttl: float = TTL, settle: float = SETTLE,
            sleep=time.sleep) -> Claim:
    """Take ``run`` for this process, or raise RunClaimed naming the driver that has it.
    StorageError when the claims cannot be written or read."""
    me = uuid.uuid4().hex
    record = {"id": me, "host": socket.gethostname(), "pid": os.getpid(), "pids": _pid_space(),
              "number": None, "started_at": _now(), "at": _now()}
    claim = Claim(run, me, record)
    _HELD[me] = claim  # this process's claims count as alive while it takes or holds them
    try:
        claim.file.write_text(json.dumps(record))  # 1. choosing
        numbers = [r.get("number") or 0 for r, _ in read_claims(run) if r.get("id") != me]
        record["number"] = 1 + max(numbers, default=0)  # 2.
        claim.renew()  # 3.
        deadline = time.monotonic() + settle
        while True:  # 4.
            seen = read_claims(run)
            store_now = next((t for r, t in seen if r.get("id") == me), None)
            rank = (record["number"], me)
            others = [(r, t) for r, t in seen if r.get("id") != me]
            live = [(r, t) for r, t in others if _alive(r, t, store_now, ttl)]
            _forget([r for r, t in others if (r, t) not in live], run)
            ahead = [(r, t) for r, t in live
                     if r.get("number") is not None and (r["number"], r["id"]) < rank]
            if ahead:
                raise RunClaimed(f"{run} is being run by another driver "
                                 f"({_who(*ahead[0], store_now)}); watch it with: "
                                 f"gridrun status {run}")
            choosing = [(r, t) for r, t in live if r.get("number") is None]
            if not choosing:
                claim.won = True
                return claim
            if time.monotonic() > deadline:
                raise RunClaimed(f"another driver is starting on {run} "
                                 f"({_who(*choosing[0], store_now)}); watch it with: "
                                 f"gridrun status {run}")
            sleep(0.2)
    except BaseException:
        claim.release()
        raise


def _forget(dead: list[dict], run: Location) -> None:
    """Delete the claims of drivers that are gone (best effort: they no longer count)."""
    for r in dead:
        try:
            run.child(CLAIMS, f"{r['id']}.json").delete()
        except (StorageError, KeyError):
            pass
