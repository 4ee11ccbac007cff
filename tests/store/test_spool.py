"""The spool (``gridrun.store.spool``): a finished cell's part that the storage refuses is
retried, then kept on this machine and uploaded when the storage answers; `gridrun status`
says which. No Ray; against a real S3 endpoint that goes away, see tests/s3."""

import datetime as dt
import json

import pytest

from gridrun import Ablation, Factor
from gridrun.store import journal, spool
from gridrun.store.location import Location, StorageError


@pytest.fixture(autouse=True)
def own_spool(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDRUN_SPOOL", str(tmp_path / "spool"))


def test_a_part_the_storage_refuses_is_kept_and_uploaded_when_it_answers(tmp_path):
    run = Location(tmp_path / "run")
    (tmp_path / "run").write_text("not a folder")  # every write beneath it fails
    target = journal.part_file(run, "cell-a")
    assert spool.put(run, target, b'{"v": 1}') == "kept"
    assert spool.put(run, target, b'{"v": 2}') == "kept"  # the newer one replaces it
    assert spool.pending(run) == 1 and spool.flush(run) == 0
    assert spool.stats(run) == {"retried": 0, "kept": 1, "uploaded_late": 0, "waiting": 1}
    lines = spool.describe({**spool.stats(run), "host": "h1"})
    assert lines == ["storage: 1 finished cell(s) kept on h1, waiting to be uploaded (the "
                     "storage did not answer; retried every 5 s)"]
    (tmp_path / "run").unlink()  # the storage answers again
    assert spool.flush(run) == 1 and spool.pending(run) == 0
    assert json.loads(target.read_text()) == {"v": 2}
    assert spool.put(run, journal.part_file(run, "cell-b"), b"{}") == "uploaded"
    assert spool.stats(run)["uploaded_late"] == 1
    spool.discard(run)
    assert not spool.spool_dir(run).exists()


def test_retry_tries_again_with_backoff_then_gives_up():
    calls, slept = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise StorageError("down")
        return "ok"

    assert spool.retry(flaky, attempts=3, sleep=slept.append) == ("ok", 2)
    assert slept == [0.5, 1.0]
    with pytest.raises(StorageError):
        spool.retry(lambda: (_ for _ in ()).throw(StorageError("down")), attempts=2,
                    sleep=slept.append)


def test_a_part_that_goes_through_on_a_second_try_counts_as_retried(tmp_path, monkeypatch):
    run = Location(tmp_path / "run")
    real, fails = Location.write_bytes, [1]

    def flaky(self, data):
        if fails:
            fails.pop()
            raise StorageError(f"{self}: cannot write (Could not connect to server)")
        real(self, data)

    monkeypatch.setattr(Location, "write_bytes", flaky)
    assert spool.put(run, journal.part_file(run, "c"), b"{}") == "retried"
    assert spool.stats(run) == {"retried": 1, "kept": 0, "uploaded_late": 0, "waiting": 0}
    assert spool.describe({**spool.stats(run), "host": "h1"}) == [
        "storage: 1 finished cell(s) uploaded after retries"]


def test_status_says_what_the_storage_refused_and_where_it_waits():
    spec = Ablation(name="s", dataset="digits", factors=[Factor("batchnorm", [False, True])])
    now = dt.datetime.now(dt.timezone.utc)
    launch = {"spec": spec.to_dict(), "cells": {"a": ["t1"], "b": ["t2"]},
              "sessions": [{"started_at": now.isoformat()}]}
    beat = {"at": now.isoformat(), "host": "node-7", "pid": 1, "state": "running",
            "running": {}, "uploads": {"retried": 2, "kept": 1, "uploaded_late": 0,
                                       "waiting": 1}}
    text = journal.run_status(launch, {}, beat, None, now=now).text()
    assert "storage: 2 finished cell(s) uploaded after retries" in text
    assert "storage: 1 finished cell(s) kept on node-7, waiting to be uploaded" in text
    beat["uploads"] = {"retried": 0, "kept": 1, "uploaded_late": 1, "waiting": 0}
    text = journal.run_status(launch, {}, beat, None, now=now).text()
    assert "1 finished cell(s) were kept on node-7 while the storage did not answer, and " \
           "uploaded later" in text and "waiting" not in text
