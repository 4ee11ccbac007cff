"""The pure parts of launching: how reported epochs become trials.parquet rows."""

import pytest

from gridrun.run.progress import Progress
from gridrun.design.grid import Trial
from gridrun.run.driver import epoch_rows, trial_row, trial_status

TRIAL = Trial("abc123", 1, {"dropout": 0.5}, {"dropout": 0.5, "epochs": 4})


def reports(vals, test_acc=None):
    out = [{"epoch": i + 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 0.9,
            "val_acc": v, "lr": 0.05, "epoch_seconds": 0.2, "params": 1234,
            "elapsed": 0.3 * (i + 1)} for i, v in enumerate(vals)]
    if test_acc is not None:
        out[-1]["test_acc"] = test_acc
    return out


@pytest.mark.parametrize("epochs_run,error,by_scheduler,expected", [
    (4, None, False, "completed"), (4, None, True, "completed"),
    (2, None, True, "stopped_early"), (0, "boom", False, "error"), (4, "boom", False, "error"),
    (2, None, False, None)])  # ended early without the scheduler: interrupted, no result
def test_trial_status(epochs_run, error, by_scheduler, expected):
    assert trial_status(epochs_run, 4, error, by_scheduler) == expected


def test_completed_row():
    row = trial_row(TRIAL, reports([0.5, 0.7, 0.65, 0.68], test_acc=0.66), max_epochs=4)
    assert row == {"trial_id": "abc123", "dropout": 0.5, "seed": 1, "status": "completed",
                   "epochs_run": 4, "last_val_acc": 0.68, "best_val_acc": 0.7,
                   "best_epoch": 2, "test_acc": 0.66, "params": 1234,
                   "wall_seconds": pytest.approx(1.2), "error": None,
                   "continued_from": None, "node": None}


def test_stopped_row_has_epoch_reached_and_no_test_acc():
    row = trial_row(TRIAL, reports([0.5, 0.4]), max_epochs=4, stopped_by_scheduler=True)
    assert (row["status"], row["epochs_run"], row["test_acc"]) == ("stopped_early", 2, None)


def test_interrupted_trial_has_no_row():
    assert trial_row(TRIAL, reports([0.5, 0.4]), max_epochs=4) is None


def test_error_row_before_any_epoch():
    row = trial_row(TRIAL, [], max_epochs=4, error="RuntimeError: loss is nan",
                    wall_seconds=0.1)
    assert row["status"] == "error" and row["epochs_run"] == 0
    assert row["best_val_acc"] is None and row["error"] == "RuntimeError: loss is nan"


def test_epoch_rows():
    rows = epoch_rows("abc123", reports([0.5, 0.6]))
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["seconds"] == 0.2 and rows[1]["val_acc"] == 0.6


def test_progress_counts_and_best():
    p = Progress("q", total=3, metric="val_acc")
    p.start("a"), p.start("b")
    p.result(0.5), p.result(0.8), p.result(float("nan"))
    p.finish("a", "completed"), p.finish("b", "stopped_early")
    assert (p.done, p.completed, p.stopped, len(p.running), p.best) == (2, 1, 1, 0, 0.8)
    assert "2/3 done (1 completed, 1 stopped by ASHA, 0 errors)" in p.line()
    loss = Progress("q", total=1, metric="val_loss", mode="min")
    loss.result(0.9), loss.result(0.3)
    assert loss.best == 0.3


@pytest.mark.parametrize("address,environ,token_file,expected", [
    (None, {}, True, None),                       # local Ray: Ray decides
    ("10.0.0.1:6379", {}, True, "token"),          # joining, token in ~/.ray/auth_token
    ("10.0.0.1:6379", {}, False, None),            # joining, no token anywhere
    ("10.0.0.1:6379", {"RAY_AUTH_TOKEN": "abc"}, False, "token"),
    ("10.0.0.1:6379", {"RAY_AUTH_MODE": "disabled"}, True, None),  # the user's word stands
])
def test_join_auth_mode(tmp_path, address, environ, token_file, expected):
    from gridrun.run.driver import join_auth_mode

    if token_file:
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text("t" * 32)
    assert join_auth_mode(address, environ, home=tmp_path) == expected


def test_join_auth_mode_reads_token_path(tmp_path):
    from gridrun.run.driver import join_auth_mode

    (tmp_path / "tok").write_text("t" * 32)
    env = {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "tok")}
    assert join_auth_mode("h:1", env, home=tmp_path / "nohome") == "token"


def test_progress_moves_a_confirmed_trial_from_stopped_to_completed():
    p = Progress("x", total=2, metric="val_acc")
    for tid, status in (("a", "completed"), ("b", "stopped_early")):
        p.start(tid)
        p.finish(tid, status)
    p.start("b")  # the confirmation continues it
    p.reclassify("b", "stopped_early", "completed")
    assert (p.done, p.completed, p.stopped, len(p.running)) == (2, 2, 0, 0)
