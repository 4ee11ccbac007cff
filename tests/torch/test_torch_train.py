"""The training loop of one trial, on a tiny separable problem (class = band of a bright bar)."""

from __future__ import annotations

import math

import pytest
import torch

from gridrun.spec import techniques
from gridrun.torch import build_model, count_parameters, train
from gridrun.torch import _recipe, _train
from gridrun.torch._optim import DEFAULT_LR
from gridrun.torch._train import IMPLEMENTED, REPORT_KEYS

OPTIMIZERS = techniques.get("optimizer").choices
BACKBONES = techniques.get("backbone").choices


def run(config, data, seed=0, **kwargs):
    reports = []
    summary = train(config, data, seed=seed, report=reports.append, device="cpu", **kwargs)
    return reports, summary


def without_time(reports):
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in reports]


def test_learns_a_separable_problem(data, config):
    reports, summary = run(config(epochs=3), data)
    assert reports[0]["val_acc"] > 0.25 + 0.3  # 4 classes: chance is 0.25
    assert reports[-1]["val_acc"] > 0.9 and summary["test_acc"] > 0.9
    assert reports[-1]["train_loss"] < reports[0]["train_loss"]


def test_one_report_per_epoch_with_every_key(data, config):
    reports, summary = run(config(epochs=3), data)
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    assert [set(r) for r in reports] == [set(REPORT_KEYS)] * 2 + [{*REPORT_KEYS, "test_acc"}]
    expected = build_model("simple_cnn", 1, 4, 8, batchnorm=False, dropout=0.0)
    for r in reports:
        assert 0 <= r["train_acc"] <= 1 and 0 <= r["val_acc"] <= 1
        assert math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"])
        assert r["epoch_seconds"] > 0 and r["params"] == count_parameters(expected)
    assert 0 <= summary["test_acc"] <= 1
    assert {k: summary[k] for k in reports[-1]} == reports[-1]
    assert summary["device"] == "cpu" and summary["best_epoch"] in (1, 2, 3)


def test_test_set_is_evaluated_once_and_only_after_the_last_epoch(make_data, config,
                                                                  monkeypatch):
    data = make_data(n_val=200, n_test=100)  # sizes tell the two splits apart
    sizes = []
    evaluate = _train._evaluate
    monkeypatch.setattr(_train, "_evaluate",
                        lambda model, x, y, std: sizes.append(len(y)) or evaluate(model, x, y, std))
    run(config(epochs=3), data)
    assert sizes == [200, 200, 200, 100]

    class Stopped(Exception):  # what an early-stopping scheduler does to a trial
        pass

    def stop(metrics):
        raise Stopped

    sizes.clear()
    with pytest.raises(Stopped):
        train(config(epochs=3), data, seed=0, report=stop, device="cpu")
    assert sizes == [200]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_chunked_evaluation_gives_the_whole_batch_numbers_exactly(backbone, make_data):
    # On CPU evaluation runs EVAL_CHUNK images at a time (cache-sized): an image's logits
    # must not depend on the chunking, so val_loss and val_acc are those of whole batches.
    data = _train.prepare_data(make_data(n_val=300, size=32, channels=3), "cpu")
    torch.manual_seed(0)
    model = build_model(backbone, 3, 4, 32, batchnorm=True, dropout=0.0)
    with torch.no_grad():  # non-trivial batch-norm statistics for eval mode
        model.train()(torch.rand(64, 3, 32, 32) * 3)
    x, y = data.x_val, data.y_val

    def whole_batches():
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        with torch.inference_mode():
            for start in range(0, len(y), _train.EVAL_BATCH):
                logits = model.eval()(data.standardize(x[start:start + _train.EVAL_BATCH]))
                yb = y[start:start + _train.EVAL_BATCH]
                loss_sum += torch.nn.functional.cross_entropy(logits, yb, reduction="sum")
                correct += (logits.argmax(1) == yb).sum()
        return loss_sum.item() / len(y), correct.item() / len(y)

    assert len(y) > _train.EVAL_CHUNK  # the chunking is exercised
    assert _train._evaluate(model, x, y, lambda xb: model(data.standardize(xb))) \
        == whole_batches()


def test_same_seed_same_reports_other_seed_other_reports(data, config):
    cfg = config(augmentation=True, dropout=0.25)
    first, second = run(cfg, data, seed=3)[0], run(cfg, data, seed=3)[0]
    assert without_time(first) == without_time(second)
    assert without_time(run(cfg, data, seed=4)[0]) != without_time(first)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_trains_at_its_default_lr(data, config, optimizer):
    reports, _ = run(config(optimizer=optimizer, lr=None), data)
    assert reports[-1]["val_acc"] > 0.7
    assert all(r["lr"] == DEFAULT_LR[optimizer] for r in reports)


def test_default_lrs_are_the_ones_the_registry_documents():
    assert set(DEFAULT_LR) == set(OPTIMIZERS)
    description = techniques.get("lr").description
    for optimizer, lr in DEFAULT_LR.items():
        assert f"{optimizer} {lr:g}" in description


def test_an_explicit_lr_is_used_and_reported(data, config):
    reports, _ = run(config(optimizer="adam", lr=0.003, weight_decay=1e-4, epochs=1), data)
    assert reports[0]["lr"] == 0.003


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_trains_with_every_technique_on(data, config, backbone):
    cfg = config(backbone=backbone, batchnorm=True, augmentation=True, dropout=0.2,
                 weight_decay=5e-4,
                 # a 9M-parameter VGG-11's batch-norm statistics need more than these 16
                 # steps at full width; a quarter of it learns the bars as the others do
                 width=0.25 if backbone == "vgg" else 1.0)
    reports, _ = run(cfg, data)
    assert reports[-1]["val_acc"] > 0.5


def test_the_trainer_implements_every_registered_technique():
    assert set(IMPLEMENTED) == set(techniques.names())


def test_config_keys_are_checked(data, config):
    with pytest.raises(ValueError, match="unknown config key.*'dropuot'.*did you mean 'dropout'"):
        run({**config(), "dropuot": 0.5}, data)
    cfg = config()
    del cfg["optimizer"]
    with pytest.raises(ValueError, match="missing 'optimizer'"):
        run(cfg, data)
    with pytest.raises(ValueError,
                       match=r"config\['optimizer'\].*sgd, nesterov, adam, adamw, rmsprop"):
        run(config(optimizer="adagrad"), data)
    with pytest.raises(ValueError, match=r"config\['dropout'\]"):
        run(config(dropout=1.0), data)


def test_a_diverging_run_raises_a_clear_error(data, config):
    reports = []
    with pytest.raises(RuntimeError, match="non-finite loss in epoch 1 .* lr=10"):
        train(config(backbone="vgg_small", lr=10.0), data, seed=0, report=reports.append,
              device="cpu")
    assert reports == []  # the diverged epoch is never reported


def test_a_nan_in_a_later_epoch_stops_training(data, config, monkeypatch):
    def poisoned_after_epoch_1(metrics):
        reports.append(metrics)
        for p in models[0].parameters():
            p.data.fill_(float("nan"))

    reports, models, build = [], [], _train.build_model
    monkeypatch.setattr(_train, "build_model",
                        lambda *a, **k: models.append(build(*a, **k)) or models[-1])
    with pytest.raises(RuntimeError, match="non-finite loss in epoch 2"):
        train(config(epochs=3), data, seed=0, report=poisoned_after_epoch_1, device="cpu")
    assert [r["epoch"] for r in reports] == [1]


def test_threads_sets_torch_threads(data, config):
    before = torch.get_num_threads()
    try:
        run(config(epochs=1), data, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads"):
        run(config(epochs=1), data, threads=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a CPU machine")
def test_no_device_means_cpu_without_cuda(data, config):
    summary = train(config(epochs=1), data, seed=0, report=lambda r: None)
    assert summary["device"] == "cpu"
    with pytest.raises(ValueError, match="no CUDA device"):
        train(config(epochs=1), data, seed=0, report=lambda r: None, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="torch.cuda.is_available() is False: no CUDA device here")
def test_trains_on_cuda(data, config):
    reports = []
    summary = train(config(epochs=3, augmentation=True, batchnorm=True), data, seed=0,
                    report=reports.append)  # device None picks cuda
    assert summary["device"].startswith("cuda")
    assert reports[-1]["val_acc"] > 0.9 and len(reports) == 3


def test_crop_augments_without_flipping(data, config, monkeypatch):
    """crop changes training (it draws from the augmentation stream) but never mirrors."""
    plain = without_time(run(config(epochs=2), data)[0])
    cropped = without_time(run(config(epochs=2, crop=True), data)[0])
    assert cropped != plain
    flips = []
    real_flip = _recipe.augment
    monkeypatch.setattr(_recipe, "augment", lambda x, g: flips.append(1) or real_flip(x, g))
    run(config(epochs=1, crop=True), data)
    assert flips == []  # the flipping augmentation is never called


def test_a_reused_worker_prepares_the_same_dataset_once(make_data):
    # Ray hands every cell of a reused worker the dataset as a new object with the same
    # arrays: the tensors are made once per worker and device, not once per cell.
    from gridrun.torch import prepare_data

    data, same = make_data(n_train=64), make_data(n_train=64)  # equal arrays, two objects
    assert same is not data
    assert prepare_data(data, "cpu") is prepare_data(same, "cpu")
    other = make_data(n_train=64, seed=1)
    assert prepare_data(other, "cpu") is not prepare_data(data, "cpu")
