"""The compiled programs Keras trainers share: one per structure, bounded, and never a way
for one trainer's state to leak into another's."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import gridrun.keras._program as P  # noqa: E402
from gridrun.data.testing import bars  # noqa: E402
from gridrun.design import resolve_config  # noqa: E402
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
