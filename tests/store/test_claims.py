"""One driver per run: the claim protocol (``gridrun.store.claim``) on a local folder, a
``file://`` URI and pyarrow's mock filesystem, and drivers racing as real processes. No
Ray; the same race against a real S3 server is in tests/s3."""

import json
import os
import socket
import subprocess
import sys
import re
import textwrap
import threading
import time

import pyarrow.fs as pafs
import pytest

from gridrun.store import claim, journal
from gridrun.store.location import Location


def mock(path="bucket/runs/x"):
    return Location(f"mock://{path}", pafs._MockFileSystem(), path)


def locations(tmp_path):
    return {"path": Location(tmp_path / "a"), "file": Location(f"file://{tmp_path}/b"),
            "mock": mock()}


@pytest.mark.parametrize("kind", ["path", "file", "mock"])
def test_a_held_run_refuses_the_next_driver_until_it_is_released(tmp_path, kind):
    run = locations(tmp_path)[kind]
    mine = claim.acquire(run)
    assert claim.held(run) is mine and mine.record["number"] == 1
    who = re.escape(f"another driver (host {socket.gethostname()}, pid {os.getpid()}")
    with pytest.raises(claim.RunClaimed, match=who):
        claim.acquire(run)
    assert [r["id"] for r, _ in claim.read_claims(run)] == [mine.id]  # the loser cleaned up
    mine.renew()
    mine.release()
    assert claim.held(run) is None and claim.read_claims(run) == []
    again = claim.acquire(run)
    again.release()


def _record(run, cid, *, host, pid, number, pids=claim._pid_space()):
    rec = {"id": cid, "host": host, "pid": pid, "pids": pids, "number": number,
           "started_at": journal.now_iso(), "at": journal.now_iso()}
    run.child(claim.CLAIMS, f"{cid}.json").write_text(json.dumps(rec))
    return run.child(claim.CLAIMS, f"{cid}.json")


def test_a_lower_id_never_beats_a_holder_and_numbers_come_from_the_listing(tmp_path):
    """The holder's id sorts last and its clock may be anything: a later driver still takes
    a higher number from what it lists, and backs off."""
    run = Location(tmp_path / "r")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _record(run, "f" * 32, host=socket.gethostname(), pid=sleeper.pid, number=7)
        with pytest.raises(claim.RunClaimed, match=f"pid {sleeper.pid}"):
            claim.acquire(run)
    finally:
        sleeper.kill()
        sleeper.wait()
    mine = claim.acquire(run)  # its process is gone: the claim no longer counts
    assert mine.record["number"] == 8
    assert [r["id"] for r, _ in claim.read_claims(run)] == [mine.id]  # and is deleted
    mine.release()


@pytest.mark.parametrize("where", ["another host", "another container"])
def test_a_claim_it_cannot_check_counts_until_it_is_ttl_old_on_the_stores_clock(tmp_path,
                                                                                where):
    """A claim of another host, or of this host's name in another PID namespace (a
    container sharing it): its process cannot be checked from here, only its age."""
    run = Location(tmp_path / "r")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    host, pids = ("elsewhere", None) if where == "another host" else \
        (socket.gethostname(), 12345)
    f = _record(run, "a" * 32, host=host, pid=int(gone), number=1, pids=pids)
    with pytest.raises(claim.RunClaimed, match=re.escape(f"host {host}, pid {gone}, claim "
                                                         "rewritten 0 s")):
        claim.acquire(run)
    old = time.time() - claim.TTL - 5  # its driver stopped rewriting it
    os.utime(f.local_path, (old, old))
    mine = claim.acquire(run)
    assert not f.exists()
    mine.release()


def test_a_driver_choosing_its_number_is_waited_for(tmp_path):
    run = Location(tmp_path / "r")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        f = _record(run, "0" * 32, host=socket.gethostname(), pid=sleeper.pid, number=None)
        t0 = time.monotonic()
        with pytest.raises(claim.RunClaimed, match="another driver is starting"):
            claim.acquire(run, settle=1.0)  # it never finishes choosing: back off
        assert time.monotonic() - t0 >= 1.0
        # it finishes choosing while we wait, after it has seen our number: we go first
        rec = json.loads(f.read_text())

        def finish():
            while True:
                ours = [r for r, _ in claim.read_claims(run) if r["id"] != rec["id"]]
                if ours and ours[0]["number"]:
                    time.sleep(0.5)
                    f.write_text(json.dumps({**rec, "number": ours[0]["number"] + 1}))
                    return
                time.sleep(0.02)

        threading.Thread(target=finish, daemon=True).start()
        t0 = time.monotonic()
        mine = claim.acquire(run, settle=10.0)
        assert time.monotonic() - t0 >= 0.5  # it waited for the other to choose
        assert json.loads(f.read_text())["number"] == mine.record["number"] + 1
    finally:
        sleeper.kill()
        sleeper.wait()
    mine.release()


RACE = textwrap.dedent("""
    import sys, time
    from gridrun.store import claim
    from gridrun.store.location import Location
    run, at, hold = Location(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    time.sleep(max(0.0, at - time.time()))
    try:
        mine = claim.acquire(run)
    except claim.RunClaimed as e:
        print("refused:", e, flush=True)
        sys.exit(2)
    print("won", flush=True)
    time.sleep(hold)
    mine.release()
""")


def race(run: str, n: int, env=None, hold: float = 3.0) -> list[subprocess.CompletedProcess]:
    """``n`` processes claim ``run`` at the same instant; each says whether it won."""
    at = time.time() + 4.0  # after every process has imported gridrun
    procs = [subprocess.Popen([sys.executable, "-c", RACE, run, str(at), str(hold)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(n)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate())
            for p in procs]


@pytest.mark.slow
def test_drivers_racing_for_a_fresh_local_run_let_exactly_one_through(tmp_path):
    for attempt in range(2):
        done = race(str(tmp_path / f"r{attempt}"), 4)
        won = [p for p in done if p.returncode == 0]
        assert len(won) == 1, [p.stdout + p.stderr for p in done]
        assert all(p.returncode == 2 and "is being run by another driver" in p.stdout
                   for p in done if p not in won), [p.stdout + p.stderr for p in done]
