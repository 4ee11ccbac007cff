"""The trainer one epoch at a time: lockstep seeds, checkpoints that continue exactly."""

from __future__ import annotations

import os

import pytest
import torch

from gridrun.torch import DeviceData, Trainer, prepare_data, set_threads, train

EPOCHS = 4


def without_time(reports):
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in reports]


@pytest.fixture
def cfg(config):
    """Dropout, augmentation, batch norm and momentum: every random stream and every piece of
    state that a resumed run must get back."""
    return config(epochs=EPOCHS, augmentation=True, dropout=0.25, batchnorm=True)


@pytest.fixture(scope="module")
def shared(data):
    return prepare_data(data, "cpu")


def run_alone(cfg, data, seed):
    reports = []
    train(cfg, data, seed=seed, report=reports.append, device="cpu")
    return without_time(reports)


def steps(trainer, n=None):
    n = trainer.epochs - trainer.epoch if n is None else n
    return without_time([trainer.step() for _ in range(n)])


def test_a_stepped_trainer_reports_what_train_reports(data, shared, cfg):
    trainer = Trainer(cfg, shared, seed=3)
    assert (trainer.epoch, trainer.epochs, trainer.done) == (0, EPOCHS, False)
    assert steps(trainer) == run_alone(cfg, data, seed=3)
    assert trainer.done and trainer.epoch == EPOCHS


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("stop_at", [1, EPOCHS - 1])
def test_a_run_restored_from_a_file_continues_exactly(shared, config, tmp_path, optimizer,
                                                      stop_at):
    cfg = config(epochs=EPOCHS, augmentation=True, dropout=0.25, batchnorm=True,
                 optimizer=optimizer)
    uninterrupted = steps(Trainer(cfg, shared, seed=0))
    stopped = Trainer(cfg, shared, seed=0)
    assert steps(stopped, stop_at) == uninterrupted[:stop_at]
    stopped.save(tmp_path / "trial.pt")
    best = stopped.best_val_acc, stopped.best_epoch
    del stopped

    torch.manual_seed(12345)  # another process's global RNG: must not matter
    torch.rand(1000)
    resumed = Trainer.load(tmp_path / "trial.pt", shared)
    assert resumed.epoch == stop_at and (resumed.best_val_acc, resumed.best_epoch) == best
    rest = steps(resumed)
    assert rest == uninterrupted[stop_at:]  # exact, test_acc included
    assert "test_acc" in rest[-1]
    assert os.listdir(tmp_path) == ["trial.pt"]  # no temporary file left behind


def test_a_state_is_a_snapshot_that_later_steps_leave_alone(shared, cfg):
    trainer = Trainer(cfg, shared, seed=1)
    steps(trainer, 2)
    state = trainer.state_dict()
    rest = steps(trainer)  # trains on; the snapshot must still say epoch 2
    first, second = Trainer(cfg, shared, seed=1), Trainer(cfg, shared, seed=1)
    first.load_state_dict(state)
    second.load_state_dict(state)  # a state loaded twice is not shared by the two
    assert steps(first) == rest and steps(second) == rest
    assert first.seconds >= state["seconds"] > 0


def test_seeds_stepped_in_lockstep_match_each_seed_alone(data, shared, cfg):
    alone = [run_alone(cfg, data, seed) for seed in (0, 1)]
    assert alone[0] != alone[1]
    pair = [Trainer(cfg, shared, seed=seed) for seed in (0, 1)]
    lockstep = [[], []]
    while not pair[0].done:
        for trainer, reports in zip(pair, lockstep):
            reports.extend(steps(trainer, 1))
    assert lockstep == alone


def test_trainers_leave_the_process_global_rng_alone(shared, cfg):
    torch.manual_seed(7)
    expected = torch.rand(5)
    torch.manual_seed(7)
    steps(Trainer(cfg, shared, seed=0), 1)
    assert torch.equal(torch.rand(5), expected)


def test_seeds_share_one_copy_of_the_data(data, shared, cfg):
    trainers = [Trainer(cfg, shared, seed=s) for s in range(3)]
    assert all(t.data is shared for t in trainers)
    assert isinstance(shared, DeviceData) and shared.image_shape == (1, 8, 8)
    assert prepare_data(shared) is shared
    with pytest.raises(ValueError, match="the data is on 'cpu'"):
        Trainer(cfg, shared, seed=0, device="meta")


def test_stepping_past_the_budget_raises(shared, config):
    trainer = Trainer(config(epochs=1), shared, seed=0)
    assert "test_acc" in trainer.step()
    with pytest.raises(RuntimeError, match="all 1 epochs are trained"):
        trainer.step()


def test_a_state_of_another_config_seed_or_dataset_is_refused(shared, cfg, make_data,
                                                              tmp_path):
    trainer = Trainer(cfg, shared, seed=0)
    trainer.step()
    state = trainer.state_dict()
    other = {**cfg, "backbone": "resnet20", "dropout": 0.5}
    with pytest.raises(ValueError, match="another config: backbone='simple_cnn' there, "
                                         "'resnet20' here, dropout=0.25 there, 0.5 here"):
        Trainer(other, shared, seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match="seed 0, this trainer's is 1"):
        Trainer(cfg, shared, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match=r"another data: image_shape=\(1, 8, 8\) there"):
        Trainer(cfg, make_data(size=16), seed=0, device="cpu").load_state_dict(state)
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a gridrun torch Trainer state"):
        Trainer.load(tmp_path / "foreign.pt", shared)


def test_a_failed_save_keeps_the_previous_checkpoint(shared, cfg, tmp_path, monkeypatch):
    trainer = Trainer(cfg, shared, seed=0)
    path = tmp_path / "trial.pt"
    trainer.save(path)
    trainer.step()

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        trainer.save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["trial.pt"]
    assert Trainer.load(path, shared).epoch == 0


def test_set_threads(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    set_threads(None)
    set_threads(3)
    assert calls == [3]
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            set_threads(bad)
