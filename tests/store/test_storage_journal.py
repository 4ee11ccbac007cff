"""Run folders on any storage, the journal of a run in progress, and `gridrun status`:
pure code, no Ray. Remote storage is exercised with pyarrow's in-memory mock filesystem."""

import datetime as dt
import json
import os
import subprocess
import sys

import pandas as pd
import pyarrow.fs as pafs
import pytest
from click.testing import CliRunner

from gridrun import ASHA, Ablation, Factor, store
from gridrun.store import journal as _journal
from gridrun.store.location import Location, StorageError
from gridrun.analysis.testing import synthetic_run
from gridrun.cli import main
from gridrun.store.journal import is_complete
from gridrun.run.runfolder import RunExistsError, prepare_run_dir, run_location


def mock(path="bucket/runs/x"):
    return Location(f"mock://{path}", pafs._MockFileSystem(), path)


@pytest.mark.parametrize("kind", ["path", "file", "mock"])
def test_location_reads_writes_lists_and_deletes(tmp_path, kind):
    loc = {"path": Location(tmp_path / "a"), "file": Location(f"file://{tmp_path}/a"),
           "mock": mock("bucket/a")}[kind]
    f = loc.child("sub", "x.json")
    assert not f.exists() and loc.child("sub").list() == []
    f.write_text('{"v": 1}')
    f.write_text('{"v": 2}')  # replaced whole
    assert json.loads(f.read_text()) == {"v": 2} and f.is_file()
    assert loc.child("sub").list() == ["x.json"]  # no temporary file left beside it
    loc.child("sub").delete()
    assert not f.exists()
    loc.child("absent").delete()  # nothing to delete is fine


def test_location_names_local_and_remote_storage(tmp_path):
    assert Location(f"file://{tmp_path}").is_local
    assert Location(f"file://{tmp_path}").local_path == tmp_path
    remote = mock()
    assert not remote.is_local and remote.full == "mock://bucket/runs/x"
    with pytest.raises(StorageError, match="not on this machine"):
        remote.local_path
    rel = Location("runs/q")
    assert str(rel) == "runs/q" and os.path.isabs(rel.full)  # workers get the full path
    with pytest.raises(StorageError, match="nosuchscheme://x: cannot open this storage"):
        Location("nosuchscheme://x")


def test_run_location_defaults_and_conflicts(tmp_path):
    assert run_location("q").full == str((Location("runs").local_path / "q"))
    assert run_location("q", storage=f"file://{tmp_path}").local_path == tmp_path / "q"
    assert run_location("q", run_dir=tmp_path / "r").local_path == tmp_path / "r"
    with pytest.raises(RunExistsError, match="not both"):
        run_location("q", run_dir="a", storage="b")


def test_store_round_trips_on_remote_storage_with_run_json_last():
    run = synthetic_run({"batchnorm": [False, True], "dropout": [0.0, 0.5]},
                        value=lambda lv: 0.8 + 0.05 * lv["batchnorm"], seeds=2)
    loc = mock()
    store.write_run(loc, factor_names=["batchnorm", "dropout"],
                    trials=run.trials.astype(object).where(run.trials.notna(), None)
                    .to_dict("records"),
                    epochs=run.epochs.to_dict("records"), info={"spec": run.spec})
    back = store.read_run(loc)
    assert back.path == loc and len(back.trials) == 8 and len(back.epochs) == len(run.epochs)
    assert back.info["n_rows"] == 8
    # a rewrite caught between its uploads: the tables disagree with run.json
    info = json.loads(loc.child("run.json").read_text())
    loc.child("run.json").write_text(json.dumps({**info, "n_rows": 9}))
    with pytest.raises(store.StoreError, match="counts 9 trials but trials.parquet holds 8"):
        store.read_run(loc)


def test_local_rewrite_keeps_the_journal_and_checkpoints(tmp_path):
    run = synthetic_run({"batchnorm": [False, True]}, value=lambda lv: 0.8, seeds=1)
    run.save(tmp_path / "r")
    for name in ("checkpoints/t.pt", "parts/p.json", "launch.json"):
        (tmp_path / "r" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "r" / name).write_text("keep")
    run.save(tmp_path / "r")
    assert all((tmp_path / "r" / n).read_text() == "keep"
               for n in ("checkpoints/t.pt", "parts/p.json", "launch.json"))


ROW = {"trial_id": "a0", "batchnorm": True, "status": "completed", "error": None}


def test_parts_round_trip_and_a_torn_part_is_skipped(tmp_path):
    loc = Location(tmp_path)
    eps = [{"trial_id": "a0", "epoch": e, "val_acc": 0.5 + e / 10} for e in (1, 2)]
    _journal.write_part(loc, '{"batchnorm": true}', [ROW], eps, session=1)
    (tmp_path / "parts" / "torn.json").write_text('{"cell": ')
    parts = _journal.read_parts(loc)
    assert list(parts) == ["a0"]
    row, got, session = parts["a0"]
    assert row == ROW and got == eps and session == 1


def test_a_watch_fetches_only_the_parts_that_are_new_or_rewritten(tmp_path, monkeypatch):
    loc = Location(tmp_path)
    reads = []
    real = Location.read_text
    monkeypatch.setattr(Location, "read_text", lambda self: reads.append(self.name)
                        or real(self))
    for tid in ("a0", "b0"):
        _journal.write_part(loc, tid, [{**ROW, "trial_id": tid}], [], session=1)
    cache: dict = {}
    assert set(_journal.read_parts(loc, cache)) == {"a0", "b0"} and len(reads) == 2
    reads.clear()
    assert set(_journal.read_parts(loc, cache)) == {"a0", "b0"} and reads == []
    _journal.write_part(loc, "c0", [{**ROW, "trial_id": "c0"}], [], session=1)
    b = tmp_path / "parts" / _journal.part_name("b0")
    b.write_text(b.read_text().replace('"completed"', '"error"'))
    os.utime(b, (b.stat().st_atime, b.stat().st_mtime + 5))  # rewritten later (a confirm)
    (tmp_path / "parts" / _journal.part_name("a0")).unlink()
    parts = _journal.read_parts(loc, cache)
    assert sorted(reads) == sorted([_journal.part_name("b0"), _journal.part_name("c0")])
    assert set(parts) == {"b0", "c0"} and parts["b0"][0]["status"] == "error"
    assert _journal.part_name("a0") not in cache


NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def launch_record(**kw):
    return {"spec": {"name": "g", "factors": {"bn": [False, True]}, "metric": "val_acc"},
            "cells": {"c0": ["a", "b"], "c1": ["c", "d"], "c2": ["e", "f"]},
            "metric": "val_acc", "mode": "max", "expected_epochs": 24,
            "sessions": [{"started_at": (NOW - dt.timedelta(seconds=100)).isoformat()}], **kw}


def part(tid, status, accs, bn=False):
    return ({"trial_id": tid, "status": status, "bn": bn},
            [{"trial_id": tid, "epoch": i + 1, "val_acc": a} for i, a in enumerate(accs)], 1)


def heartbeat(age, state="running", running=None):
    return {"at": (NOW - dt.timedelta(seconds=age)).isoformat(), "state": state,
            "running": running or {}, "session_epochs": 10,
            "session_started": (NOW - dt.timedelta(seconds=100)).isoformat()}


def test_status_counts_best_and_time_left_from_the_journal():
    parts = {"a": part("a", "completed", [0.5, 0.9, 0.8, 0.7]),
             "b": part("b", "completed", [0.5, 0.9, 0.8, 0.9]),
             "c": part("c", "stopped_early", [0.4], bn=True),
             "d": part("d", "stopped_early", [0.3], bn=True)}
    s = _journal.run_status(launch_record(), parts, heartbeat(2, running={"c2": 1}), None,
                            now=NOW)
    assert s.state == "running"
    assert s.counts == {"completed": 2, "stopped_early": 2, "error": 0, "running": 2,
                        "pending": 0}
    assert s.best[1] == pytest.approx(0.8) and s.best[0] == "bn=False" and s.best[2] == 4
    assert s.epochs_done == 4 + 4 + 1 + 1 + 2 * 1
    # 10 epochs in this session's 100 s: 0.1 epoch/s; 24 - 12 left -> 120 s
    assert s.left == pytest.approx(120.0) and s.elapsed == pytest.approx(100.0)
    text = s.text()
    assert "2 completed, 2 stopped early, 2 running" in text and "about 2 min 00 s left" in text


def test_status_sees_a_dead_driver_and_an_interrupted_run():
    stalled = _journal.run_status(launch_record(), {}, heartbeat(600), None, now=NOW)
    assert stalled.state == "stalled" and "gridrun resume" in stalled.text()
    assert stalled.counts["pending"] == 6
    stopped = _journal.run_status(launch_record(), {}, heartbeat(1, "interrupted",
                                                                {"c0": 2}), None, now=NOW)
    assert stopped.state == "interrupted" and stopped.counts["running"] == 0


def test_status_of_a_complete_run_that_is_growing_by_seeds():
    first = {"started_at": (NOW - dt.timedelta(seconds=900)).isoformat()}
    second = {"started_at": (NOW - dt.timedelta(seconds=100)).isoformat()}
    stored = launch_record()["spec"]
    info = {"complete": True, "sessions": [first], "spec": stored,
            "finished_at": (NOW - dt.timedelta(seconds=500)).isoformat()}
    # the session adding seeds wrote its (grown) spec to launch.json, not yet to run.json
    growing = launch_record(sessions=[first, second], spec={**stored, "seeds": 5})
    s = _journal.run_status(growing, {}, heartbeat(2, running={"c0": 1}), info, now=NOW)
    assert s.state == "running" and s.left > 0
    done = _journal.run_status(launch_record(sessions=[first]), {}, None, info, now=NOW)
    assert done.state == "complete" and done.left == 0


SPEC = Ablation(name="g", dataset="digits", factors=[Factor("batchnorm", [False, True])],
                scheduler=ASHA(1, 2))


def test_prepare_decides_new_resume_or_refuse(tmp_path):
    loc = Location(tmp_path / "r")
    assert prepare_run_dir(loc, SPEC, overwrite=False) is False  # nothing there
    _journal.write_launch(loc, {"spec": SPEC.to_dict()})
    assert prepare_run_dir(loc, SPEC, overwrite=False) is True  # unfinished: continue
    other = Ablation(**{**SPEC.__dict__, "train_size": 100})
    with pytest.raises(RunExistsError, match="unfinished run of a different spec"):
        prepare_run_dir(loc, other, overwrite=False)
    loc.child("run.json").write_text(json.dumps({"spec": SPEC.to_dict(), "complete": True}))
    with pytest.raises(RunExistsError, match="already holds a complete run"):
        prepare_run_dir(loc, SPEC, overwrite=False)
    assert prepare_run_dir(loc, SPEC, overwrite=True) is False and not loc.exists()


FULL = Ablation(name="g", dataset="digits", factors=[Factor("batchnorm", [False, True])],
                seeds=2)


def complete_run(loc, spec):
    loc.make_dir()
    loc.child("run.json").write_text(json.dumps({"spec": spec.to_dict(), "complete": True}))


def test_a_complete_run_grows_by_seeds_and_refuses_to_shrink(tmp_path):
    loc = Location(tmp_path / "r")
    complete_run(loc, FULL)
    assert prepare_run_dir(loc, Ablation(**{**FULL.__dict__, "seeds": 5}), False) is True
    with pytest.raises(RunExistsError, match="with 2 seeds; asking for 1 would drop"):
        prepare_run_dir(loc, Ablation(**{**FULL.__dict__, "seeds": 1}), False)
    # more seeds and another change: a different spec, not a growth
    with pytest.raises(RunExistsError, match="already holds a complete run"):
        prepare_run_dir(loc, Ablation(**{**FULL.__dict__, "seeds": 5, "train_size": 100}),
                        False)
    # an unfinished run of the grown spec (a growth cut off) continues as usual
    _journal.write_launch(loc, {"spec": Ablation(**{**FULL.__dict__, "seeds": 5}).to_dict()})
    assert prepare_run_dir(loc, Ablation(**{**FULL.__dict__, "seeds": 5}), False) is True


def test_a_growth_cut_off_before_it_rewrote_run_json_is_not_complete():
    two, five = FULL.to_dict(), Ablation(**{**FULL.__dict__, "seeds": 5}).to_dict()
    done = {"spec": two, "complete": True}
    assert is_complete(done, None) and is_complete(done, {"spec": two})
    assert not is_complete(done, {"spec": five})  # resume and launch continue it
    assert not is_complete({"spec": two, "complete": False}, None)


def test_seeds_are_not_added_to_a_run_that_asha_screened(tmp_path):
    four = [Factor(n, [False, True]) for n in ("batchnorm", "augmentation", "crop")]
    asha = Ablation(name="g", dataset="digits", scheduler=ASHA(1, 2),
                    factors=four + [Factor("dropout", [0.0, 0.3])])
    loc = Location(tmp_path / "r")
    complete_run(loc, asha)
    with pytest.raises(RunExistsError, match="only to a run without early stopping"):
        prepare_run_dir(loc, Ablation(**{**asha.__dict__, "seeds": 3}), False)
    # with every cell protected (one factor: nothing is screened) the run can grow
    loc2 = Location(tmp_path / "r2")
    complete_run(loc2, SPEC)
    assert prepare_run_dir(loc2, Ablation(**{**SPEC.__dict__, "seeds": 3}), False) is True


def test_a_live_driver_keeps_others_off_its_run(tmp_path):
    loc = Location(tmp_path / "r")
    _journal.write_launch(loc, {"spec": SPEC.to_dict()})
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        hb = {"session": 1, "running": {}, "session_epochs": 0,
              "session_started": _journal.now_iso()}
        _journal.write_heartbeat(loc, **hb)
        beat = json.loads(loc.child("heartbeat.json").read_text())
        loc.child("heartbeat.json").write_text(json.dumps({**beat, "pid": sleeper.pid}))
        with pytest.raises(RunExistsError, match=f"another driver .*pid {sleeper.pid}"):
            prepare_run_dir(loc, SPEC, overwrite=False)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert prepare_run_dir(loc, SPEC, overwrite=False) is True  # that driver is gone


def test_status_command_on_a_stored_run_and_on_bad_folders(tmp_path):
    run = synthetic_run({"batchnorm": [False, True]}, value=lambda lv: 0.8 + 0.1 *
                        lv["batchnorm"], seeds=2, epochs=3)
    run.save(tmp_path / "r")
    out = CliRunner().invoke(main, ["status", f"file://{tmp_path}/r"])
    assert out.exit_code == 0, out.output
    assert "4 completed" in out.output and "val_acc 0.9000 at epoch 3: batchnorm=True" \
        in out.output
    bad = CliRunner().invoke(main, ["status", str(tmp_path)])
    assert bad.exit_code == 2 and "not a gridrun run folder" in bad.output
    missing = CliRunner().invoke(main, ["status", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such run folder" in missing.output


def test_resume_of_nothing_is_one_clear_error(tmp_path):
    out = CliRunner().invoke(main, ["resume", str(tmp_path)])
    assert out.exit_code == 2 and out.output.strip() == \
        f"error: {tmp_path}: no gridrun run here to resume"


def test_report_reads_a_run_from_a_uri(tmp_path):
    run = synthetic_run({"batchnorm": [False, True]}, value=lambda lv: 0.8, seeds=2)
    run.save(tmp_path / "r")
    out = CliRunner().invoke(main, ["report", f"file://{tmp_path}/r", "--format", "csv",
                                    "--table", "techniques"])
    assert out.exit_code == 0, out.output
    assert pd.read_csv(__import__("io").StringIO(out.output)).factor.tolist() == ["batchnorm"]
