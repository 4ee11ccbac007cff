import pyarrow.parquet as pq
import pytest

from gridrun.store import tables as store

FACTORS = ["augmentation", "dropout", "optimizer"]


def trial(tid, status="completed", **kw):
    row = {"trial_id": tid, "augmentation": True, "dropout": 0.5, "optimizer": "adam",
           "seed": 0, "status": status, "epochs_run": 3, "last_val_acc": 0.9,
           "best_val_acc": 0.91, "best_epoch": 2, "test_acc": 0.89, "params": 1000,
           "wall_seconds": 1.5, "error": None}
    row.update(kw)
    return row


def epoch(tid, e):
    return {"trial_id": tid, "epoch": e, "train_loss": 0.5, "train_acc": 0.8,
            "val_loss": 0.4, "val_acc": 0.85, "lr": 0.01, "seconds": 0.1}


def test_round_trip_typed_columns(tmp_path):
    store.write_run(tmp_path, factor_names=FACTORS, trials=[trial("a"), trial("b", seed=1)],
                    epochs=[epoch("a", 1), epoch("a", 2)], info={"spec": {"factors": {
                        f: [] for f in FACTORS}}})
    schema = pq.read_schema(tmp_path / "trials.parquet")
    assert str(schema.field("augmentation").type) == "bool"
    assert str(schema.field("dropout").type) == "double"
    assert str(schema.field("optimizer").type) == "string"
    run = store.read_run(tmp_path)
    assert list(run.trials.trial_id) == ["a", "b"]
    assert len(run.epochs) == 2
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.*"))  # no temporary folders


def test_one_row_per_trial_enforced(tmp_path):
    with pytest.raises(store.StoreError, match="trial a appears more than once"):
        store.write_run(tmp_path, factor_names=FACTORS, trials=[trial("a"), trial("a")],
                        epochs=[], info={})
    assert not any(tmp_path.iterdir())  # nothing written


def test_unknown_column_or_status_is_an_error(tmp_path):
    with pytest.raises(store.StoreError, match="unknown trial status"):
        store.write_run(tmp_path, factor_names=FACTORS, trials=[trial("a", status="done")],
                        epochs=[], info={})
    with pytest.raises(store.StoreError, match="not in the schema"):
        store.write_run(tmp_path, factor_names=FACTORS, trials=[trial("a", bogus=1)],
                        epochs=[], info={})


def test_failed_write_keeps_previous_run(tmp_path, monkeypatch):
    run = tmp_path / "run"
    info = {"spec": {"factors": {f: [] for f in FACTORS}}}
    store.write_run(run, factor_names=FACTORS, trials=[trial("a")], epochs=[], info=info)
    calls = []

    def failing_write(table, path):  # the second file fails, as a full disk would
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        pq.write_table.__wrapped__(table, path)

    failing_write.__wrapped__ = pq.write_table
    monkeypatch.setattr(store.pq, "write_table", failing_write)
    with pytest.raises(OSError, match="disk full"):
        store.write_run(run, factor_names=FACTORS, trials=[trial("b")], epochs=[], info=info)
    monkeypatch.undo()
    assert list(store.read_run(run).trials.trial_id) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folders


@pytest.mark.parametrize("missing", ["run.json", "trials.parquet", "epochs.parquet"])
def test_read_run_names_missing_file(tmp_path, missing):
    store.write_run(tmp_path, factor_names=FACTORS, trials=[trial("a")], epochs=[],
                    info={"spec": {"factors": {f: [] for f in FACTORS}}})
    (tmp_path / missing).unlink()
    with pytest.raises(store.StoreError, match=f"missing {missing}"):
        store.read_run(tmp_path)


def test_read_run_rejects_corrupt_parquet(tmp_path):
    store.write_run(tmp_path, factor_names=FACTORS, trials=[trial("a")], epochs=[],
                    info={"spec": {"factors": {f: [] for f in FACTORS}}})
    (tmp_path / "trials.parquet").write_bytes(b"PAR1garbage")
    with pytest.raises(store.StoreError, match="unreadable run"):
        store.read_run(tmp_path)
