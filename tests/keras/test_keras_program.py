"""The compiled programs Keras trainers share: one per structure, bounded, and never a way
for one trainer's state to leak into another's."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import gridrun.keras._program as P  # noqa: E402
from gridrun.data.testing import bars  # noqa: E402
from gridrun.design.grid import resolve_config  # noqa: E402
from gridrun.keras import Trainer  # noqa: E402

DATA = bars(n_train=128, n_val=64, n_test=64, size=8)


def config(**kw):
    return resolve_config({"framework": "tensorflow", **kw}, {"epochs": 2, "batch_size": 32})


@pytest.fixture(autouse=True)
def empty_cache():
    P.forget_programs()
    yield
    P.forget_programs()


def key(**kw):
    return P.structure_key(config(**kw), (8, 8, 1), 4)


def test_values_share_a_structure_switches_do_not():
    assert key() == key(lr=0.2) == key(batch_size=64, crop=True, label_smoothing=0.1)
    assert key(weight_decay=1e-4) == key(weight_decay=5e-4) != key()
    assert key(dropout=0.3) != key() and key(optimizer="adam") != key()
    assert key(batchnorm=True) != key() and key(l1=1e-4) != key()


def test_trainers_of_one_structure_share_a_program_and_keep_their_own_state():
    a, b = Trainer(config(), DATA, seed=0), Trainer(config(weight_decay=0.0), DATA, seed=1)
    assert a._program is b._program and len(P._PROGRAMS) == 1
    alone = Trainer(config(), DATA, seed=0)
    P.forget_programs()  # a fresh program: "alone" must not see a's steps
    solo = Trainer(config(), DATA, seed=0)
    first = [a.step()["val_loss"], b.step()["val_loss"], a.step()["val_loss"]]
    assert first[0] == solo.step()["val_loss"] and first[2] == solo.step()["val_loss"]
    assert alone.epoch == 0  # never stepped, untouched by the others


def test_the_cache_is_bounded_and_evicted_programs_keep_working(monkeypatch):
    monkeypatch.setattr(P, "CACHE_SIZE", 2)
    first = Trainer(config(), DATA, seed=0)
    first.step()
    for opt in ("adam", "rmsprop", "adamw"):
        Trainer(config(optimizer=opt), DATA, seed=0)
    assert len(P._PROGRAMS) == 2 and first._program not in P._PROGRAMS.values()
    weights = [w.copy() for w in (v.numpy() for v in first.model.weights)]
    m = first.step()  # its evicted program still serves it
    assert m["epoch"] == 2 and any(not np.array_equal(w, v.numpy())
                                   for w, v in zip(weights, first.model.weights))


def test_the_cache_is_bounded_by_bytes(monkeypatch):
    monkeypatch.setattr(P, "CACHE_BYTES", 1)  # any program is too big: only the newest stays
    Trainer(config(), DATA, seed=0)
    Trainer(config(optimizer="adam"), DATA, seed=0)
    assert len(P._PROGRAMS) == 1


def test_a_reused_worker_prepares_a_dataset_once_and_a_new_one_again():
    from gridrun.keras import prepare_data

    same = bars(n_train=128, n_val=64, n_test=64, size=8)  # equal arrays, another object
    assert prepare_data(DATA) is prepare_data(same)
    other = bars(n_train=128, n_val=64, n_test=64, size=8, seed=1)
    assert prepare_data(other) is not prepare_data(DATA)


def test_release_between_cells_hands_each_trainer_its_state_back():
    from gridrun.keras import release

    t = Trainer(config(), DATA, seed=0)
    t.step()
    before = [v.numpy().copy() for v in t.model.weights]
    release()  # what a reused worker does before its next cell
    assert t._program.owner is None
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, t.model.weights))
    assert t.step()["epoch"] == 2
