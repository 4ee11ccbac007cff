"""A trainer's own metrics on the results path: from its reports (trial_row, epoch_rows,
as_report) through the journal and the store (write_run, read_run, stored_rows) to
``gridrun status``; a run with only the built-in metrics keeps the store format it had."""

import datetime as dt
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gridrun.design.grid import Trial
from gridrun.run.cells import as_report, epoch_rows, own_metrics, stored_rows, trial_row
from gridrun.store import journal
from gridrun.store import tables as store
from gridrun.store.location import Location

FACTORS = ["batchnorm", "se_block"]  # se_block: a custom factor of the spec's own
KINDS = {"se_block": "bool"}
SPEC = {"name": "own", "factors": {"batchnorm": [False, True], "se_block": [False, True]},
        "metric": "val_mse", "mode": "min", "plugins": {"factors": KINDS}}
MSE = [0.30, 0.10, 0.20]  # best (smallest) at epoch 2, last at epoch 3


def own_reports(mse=MSE, psnr=True):
    """What the cell trainable reports per seed for a trainer of one's own: its numbers,
    epoch and epoch_seconds (OwnTrainer), then the worker's bookkeeping."""
    out = []
    for i, v in enumerate(mse):
        r = {"val_mse": v, "train_mse": v / 2, "epoch": i + 1, "epoch_seconds": 0.5,
             "elapsed": 0.5 * (i + 1), "node": "n1", "rss_mb": 100.0}
        if psnr:
            r["val_psnr"] = 20.0 + i
        out.append(r)
    out[0].update(resumed_from=1, replayed=True)
    return out


def trial(tid, seed=0, se=True):
    levels = {"batchnorm": False, "se_block": se}
    return Trial(tid, seed, levels, {**levels, "epochs": 3})


def test_trial_row_takes_the_metric_and_mode_of_the_spec():
    row = trial_row(trial("a"), own_reports(), max_epochs=3, metric="val_mse", mode="min")
    assert row["last_val_mse"] == 0.20 and row["best_val_mse"] == 0.10
    assert row["best_epoch"] == 2 and row["status"] == "completed"
    assert row["last_val_acc"] is None and row["best_val_acc"] is None
    assert row["se_block"] is True and row["wall_seconds"] == 1.5
    # by "max" the same reports' best is the first epoch
    row = trial_row(trial("a"), own_reports(), max_epochs=3, metric="val_mse", mode="max")
    assert (row["best_val_mse"], row["best_epoch"]) == (0.30, 1)


def test_trial_row_of_val_acc_has_no_metric_columns():
    reports = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7}]
    row = trial_row(trial("a"), reports, max_epochs=2)
    assert not any(k.startswith(("last_val_mse", "best_val_mse")) for k in row)
    assert set(row) == set(store.trials_schema(FACTORS, KINDS).names)


def test_epoch_rows_keep_own_metrics_and_drop_bookkeeping():
    rows = epoch_rows("a", own_reports())
    assert [r["val_mse"] for r in rows] == MSE and rows[2]["val_psnr"] == 22.0
    assert rows[0]["train_mse"] == 0.15 and rows[0]["seconds"] == 0.5
    assert rows[0]["val_acc"] is None and rows[0]["rss_mb"] == 100.0
    for key in ("elapsed", "node", "resumed_from", "replayed", "epoch_seconds"):
        assert key not in rows[0]
    flags = {"epoch": 1, "val_acc": 0.5, "early_stopped": True, "restored_epoch": 1,
             "params": 10, "test_acc": 0.4, "per_seed": {}}
    assert own_metrics(flags) == {}  # the built-in trainers' reports have none


def test_as_report_gives_back_what_epoch_rows_stored():
    rows = epoch_rows("a", own_reports())
    back = [as_report(r) for r in rows]
    assert back[1]["val_mse"] == 0.10 and back[1]["epoch_seconds"] == 0.5
    assert epoch_rows("a", back) == rows  # a resumed run replays the same rows
    # a column another trial filled is null here: not a metric this trial reported
    assert "val_psnr" not in as_report({**rows[0], "val_psnr": None})


def write(tmp_path, spec=SPEC):
    rows, eps = [], []
    for tid, seed, psnr in (("a", 0, True), ("b", 1, False)):  # b never reports val_psnr
        reports = own_reports(psnr=psnr)
        rows.append(trial_row(trial(tid, seed), reports, max_epochs=3, metric="val_mse",
                              mode="min"))
        eps += epoch_rows(tid, reports)
    store.write_run(tmp_path, factor_names=FACTORS, trials=rows, epochs=eps,
                    info={"spec": spec, "complete": True})
    return rows, eps


def test_store_round_trip_with_own_metrics_and_a_custom_factor(tmp_path):
    write(tmp_path)
    e_schema = pq.read_schema(tmp_path / "epochs.parquet")
    assert e_schema.names == store.EPOCHS_SCHEMA.names + ["train_mse", "val_mse", "val_psnr"]
    assert all(e_schema.field(c).type == pa.float64()
               for c in ("train_mse", "val_mse", "val_psnr"))
    t_schema = pq.read_schema(tmp_path / "trials.parquet")
    assert t_schema.field("se_block").type == pa.bool_()
    names = t_schema.names
    assert names[names.index("best_val_acc") + 1:][:3] == ["last_val_mse", "best_val_mse",
                                                           "best_epoch"]
    run = store.read_run(tmp_path)
    t = run.trials.set_index("trial_id")
    assert t.loc["a", "best_val_mse"] == 0.10 and t.loc["a", "last_val_mse"] == 0.20
    assert t.loc["a", "best_epoch"] == 2 and bool(t.loc["b", "se_block"]) is True
    assert math.isnan(t.loc["a", "best_val_acc"])
    e = run.epochs.set_index(["trial_id", "epoch"])
    assert e.loc[("a", 3), "val_psnr"] == 22.0 and math.isnan(e.loc[("b", 3), "val_psnr"])
    assert e.loc[("b", 2), "val_mse"] == 0.10


def test_kinds_and_metric_can_be_passed_explicitly(tmp_path):
    rows, eps = write(tmp_path)
    other = tmp_path / "explicit"
    store.write_run(other, factor_names=FACTORS, trials=rows, epochs=eps,
                    info={"spec": {"factors": SPEC["factors"]}}, kinds=KINDS,
                    metric="val_mse")
    assert pq.read_schema(other / "trials.parquet") == pq.read_schema(
        tmp_path / "trials.parquet")
    with pytest.raises(store.StoreError, match="se_block"):  # a custom factor needs its kind
        store.write_run(tmp_path / "untyped", factor_names=FACTORS, trials=rows, epochs=eps,
                        info={"spec": {"metric": "val_mse"}})


def test_a_metric_that_is_not_a_number_is_refused(tmp_path):
    rows, eps = write(tmp_path)
    eps[0] = {**eps[0], "val_mse": "low"}
    with pytest.raises(store.StoreError, match="val_mse"):
        store.write_run(tmp_path, factor_names=FACTORS, trials=rows, epochs=eps,
                        info={"spec": SPEC})
    with pytest.raises(store.StoreError, match="bookkeeping"):
        store.epochs_schema(["elapsed"])


def test_builtin_metrics_keep_the_store_format():
    assert store.epochs_schema() == store.EPOCHS_SCHEMA
    assert store.epochs_schema(["val_acc", "seconds", "trial_id"]) == store.EPOCHS_SCHEMA
    assert store.EPOCHS_SCHEMA.names == ["trial_id", "epoch", "train_loss", "train_acc",
                                         "val_loss", "val_acc", "lr", "seconds", "rss_mb"]
    assert store.trials_schema(["dropout"]).names == [
        "trial_id", "dropout", "seed", "status", "epochs_run", "last_val_acc",
        "best_val_acc", "best_epoch", "test_acc", "params", "wall_seconds", "error",
        "continued_from", "node"]
    assert store.trials_schema(["dropout"], metric="val_acc") == \
        store.trials_schema(["dropout"])


def test_builtin_run_writes_todays_schema(tmp_path):
    reports = [{"epoch": e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 0.9,
                "val_acc": 0.6, "lr": 0.1, "epoch_seconds": 0.2, "params": 10,
                "early_stopped": e == 2, "restored_epoch": 1, "elapsed": 0.2 * e,
                "node": None, "rss_mb": 50.0} for e in (1, 2)]
    t = Trial("x", 0, {"dropout": 0.5}, {"dropout": 0.5})
    store.write_run(tmp_path, factor_names=["dropout"],
                    trials=[trial_row(t, reports, max_epochs=2)],
                    epochs=epoch_rows("x", reports),
                    info={"spec": {"factors": {"dropout": [0.5]}, "metric": "val_acc"}})
    assert pq.read_schema(tmp_path / "epochs.parquet") == store.EPOCHS_SCHEMA
    assert pq.read_schema(tmp_path / "trials.parquet") == store.trials_schema(["dropout"])


def test_stored_rows_of_a_resumed_run_carry_own_metrics(tmp_path):
    _, eps = write(tmp_path)
    run = store.read_run(tmp_path)
    previous = stored_rows(run, [trial("a"), trial("b", 1)])
    row, stored = previous["a"]
    assert row["best_val_mse"] == 0.10 and row["se_block"] is True
    replayed = [as_report(e) for e in stored]
    assert [r["val_mse"] for r in replayed] == MSE
    assert epoch_rows("a", replayed) == [e for e in eps if e["trial_id"] == "a"]
    assert "val_psnr" not in as_report(previous["b"][1][0])


def test_journal_parts_carry_own_metrics(tmp_path):
    loc = Location(tmp_path)
    reports = own_reports()
    row = trial_row(trial("a"), reports, max_epochs=3, metric="val_mse", mode="min")
    journal.write_part(loc, "cell", [row], epoch_rows("a", reports), session=1)
    got_row, got_eps, _ = journal.read_parts(loc)["a"]
    assert got_row == row and [e["val_mse"] for e in got_eps] == MSE
    assert [as_report(e)["val_psnr"] for e in got_eps] == [20.0, 21.0, 22.0]


NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def test_status_best_so_far_follows_the_spec_mode():
    launch = {"spec": SPEC, "cells": {"c0": ["a"], "c1": ["b"]},  # no "mode": older record
              "sessions": [{"started_at": NOW.isoformat()}]}
    parts = {tid: ({"trial_id": tid, "status": "completed", "batchnorm": bn,
                    "se_block": True},
                   [{"trial_id": tid, "epoch": 1, "val_mse": v}], 1)
             for tid, bn, v in (("a", False, 0.3), ("b", True, 0.1))}
    s = journal.run_status(launch, parts, None, None, now=NOW)
    assert s.metric == "val_mse" and s.best[1] == pytest.approx(0.1)
    assert s.best[0] == "batchnorm=True, se_block=True"
    assert "best so far: val_mse 0.1000" in s.text()


@pytest.mark.parametrize("mode,best,trial", [("min", 0.20, "a"), ("max", 1.20, "b")])
def test_status_of_a_stored_run_follows_the_spec_mode(tmp_path, mode, best, trial):
    from gridrun.run.status import read_status

    rows, eps = write(tmp_path)
    rows[1] = {**rows[1], "batchnorm": True}
    eps = [{**e, "val_mse": e["val_mse"] + (e["trial_id"] == "b")} for e in eps]
    store.write_run(tmp_path, factor_names=FACTORS, trials=rows, epochs=eps,
                    info={"spec": {**SPEC, "mode": mode}, "complete": True})
    s = read_status(str(tmp_path))  # no journal: from the store alone
    assert s.state == "complete" and s.metric == "val_mse"
    assert s.best[1] == pytest.approx(best)
    assert s.best[0].startswith(f"batchnorm={trial == 'b'}")


class _Heartbeat:
    def __init__(self):
        self.running, self.epochs = {}, 0


class _TuneTrial:
    """What the collector reads of a Tune trial: its cell in the config."""

    def __init__(self, cell):
        self.config = {"cell": {"key": cell.key,
                                "trials": [{"trial_id": t.trial_id} for t in cell.trials]}}


def test_the_collector_journals_own_metrics_and_the_best_by_mode(tmp_path):
    pytest.importorskip("ray")
    from gridrun.run.cells import cells_of
    from gridrun.run.collector import make_collector
    from gridrun.run.progress import Progress

    trials = [Trial(t.trial_id, t.seed, t.levels, {**t.config, "framework": "torch"})
              for t in (trial("a"), trial("b", 1))]
    (cell,) = cells_of(trials)
    progress = Progress("own", 2, "val_mse", "min")
    c = make_collector(progress, "val_mse", lambda: None, None, run=Location(tmp_path),
                       session=1, heartbeat=_Heartbeat(), max_epochs=3, cells=[cell])
    tune_trial = _TuneTrial(cell)
    c.on_trial_start(0, [], tune_trial)
    for r in own_reports():
        per_seed = {"a": r, "b": {**r, "val_mse": r["val_mse"] + 1}}
        c.on_trial_result(0, [], tune_trial, {"epoch": r["epoch"], "per_seed": per_seed})
    c.on_trial_complete(0, [], tune_trial)
    assert progress.best == pytest.approx(0.10)  # "best so far" by the spec's mode
    rows = {tid: v[0] for tid, v in journal.read_parts(Location(tmp_path)).items()}
    assert rows["a"]["best_val_mse"] == 0.10 and rows["a"]["best_epoch"] == 2
    assert rows["b"]["last_val_mse"] == pytest.approx(1.20)
    _, eps, _ = journal.read_parts(Location(tmp_path))["a"]
    assert [e["val_psnr"] for e in eps] == [20.0, 21.0, 22.0]
    assert "resumed_from" not in eps[0] and "elapsed" not in eps[0]
