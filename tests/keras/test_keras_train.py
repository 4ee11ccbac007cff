"""The Keras Trainer's contract: the PyTorch trainer's metrics, seeded runs, exact resumption
from a checkpoint, seeds that do not perturb each other, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from gridrun.data.testing import bars  # noqa: E402
from gridrun.design.grid import resolve_config  # noqa: E402
from gridrun.keras import Trainer, train  # noqa: E402
from gridrun.keras._train import REPORT_KEYS  # noqa: E402

DATA = bars(n_train=256, n_val=96, n_test=64, size=8)
# every source of randomness at once: init, order, augmentation, dropout, mixing
BUSY = {"augment_policy": "strong", "dropout": 0.3, "batchnorm": True, "mixup": 0.2,
        "optimizer": "adam", "lr_schedule": "cosine"}


def config(epochs=3, **kw):
    return resolve_config({"framework": "tensorflow", **kw}, {"epochs": epochs,
                                                              "batch_size": 32})


def run(cfg, seed=0, data=DATA):
    t = Trainer(cfg, data, seed=seed)
    return [t.step() for _ in range(cfg["epochs"])]


def test_reports_the_torch_trainers_keys_and_learns():
    reports = run(config(epochs=2))
    assert [r["epoch"] for r in reports] == [1, 2]
    for r in reports:
        assert set(REPORT_KEYS) <= set(r) and 0 <= r["val_acc"] <= 1
    assert "test_acc" in reports[-1] and "test_acc" not in reports[0]
    assert reports[-1]["val_acc"] > 0.9  # the bars are separable
    assert reports[0]["params"] == Trainer(config(), DATA, seed=1).params


def test_same_seed_same_metrics_other_seed_other_metrics():
    a, b, c = run(config(**BUSY)), run(config(**BUSY)), run(config(**BUSY), seed=1)
    assert a == [{**r, "epoch_seconds": x["epoch_seconds"]} for r, x in zip(b, a)]
    assert [r["train_loss"] for r in a] != [r["train_loss"] for r in c]


def test_a_checkpoint_continues_exactly():
    straight = run(config(**BUSY), seed=3)
    t = Trainer(config(**BUSY), DATA, seed=3)
    first = [t.step()]
    blob = t.to_bytes()
    again = Trainer.from_bytes(blob, DATA)
    assert again.epoch == 1
    rest = [again.step(), again.step()]
    for x, y in zip(straight, first + rest):
        assert x["train_loss"] == y["train_loss"] and x["val_loss"] == y["val_loss"]
    assert straight[-1]["test_acc"] == rest[-1]["test_acc"]


def test_interleaved_seeds_do_not_perturb_each_other():
    alone = run(config(**BUSY), seed=5)
    a, b = Trainer(config(**BUSY), DATA, seed=5), Trainer(config(**BUSY), DATA, seed=6)
    mixed = []
    for _ in range(3):
        mixed.append(a.step())
        b.step()
    assert [r["val_loss"] for r in mixed] == [r["val_loss"] for r in alone]


def test_train_returns_the_summary():
    seen = []
    out = train(config(epochs=2), DATA, seed=0, report=seen.append)
    assert len(seen) == 2 and out["best_epoch"] in (1, 2) and out["seconds"] > 0


def test_a_checkpoint_of_other_config_seed_or_data_is_refused():
    t = Trainer(config(), DATA, seed=0)
    t.step()
    blob = t.to_bytes()
    other = Trainer(config(dropout=0.5), DATA, seed=0)
    with pytest.raises(ValueError, match="another config.*dropout"):
        other.load_state_dict(Trainer.from_bytes(blob, DATA).state_dict())
    with pytest.raises(ValueError, match="other data"):
        Trainer.from_bytes(blob, bars(n_train=128, n_val=96, n_test=64, size=8))
    with pytest.raises(ValueError, match="not a gridrun Keras trainer state"):
        Trainer.from_bytes(b"not a checkpoint", DATA)


def test_bad_configs_fail_before_training():
    with pytest.raises(ValueError, match="unknown config key.*'dropuot'.*did you mean"):
        Trainer({**config(), "dropuot": 0.1}, DATA, seed=0)
    cfg = config()
    del cfg["dropout"]
    with pytest.raises(ValueError, match="missing 'dropout'"):
        Trainer(cfg, DATA, seed=0)
    with pytest.raises(ValueError, match=r"config\['dropout'\]"):
        Trainer(config(dropout=1.5), DATA, seed=0)


def test_a_diverging_run_raises_with_its_config():
    t = Trainer(config(lr=10.0, normalize="none"), DATA, seed=0)
    with pytest.raises(RuntimeError, match="non-finite loss.*try a smaller lr"):
        for _ in range(3):
            t.step()


def test_weights_save_as_pretrained_reads_them(tmp_path):
    t = Trainer(config(epochs=1), DATA, seed=0)
    t.step()
    path = tmp_path / "w.npz"
    path.write_bytes(t.model_bytes())
    loaded = Trainer(config(epochs=1, pretrained=str(path)), DATA, seed=1)
    base = [v for v in t.model.weights if not v.path.startswith("classifier")]
    got = {v.path: v.numpy() for v in loaded.model.weights}
    assert base and all(np.array_equal(got[v.path], v.numpy()) for v in base)
