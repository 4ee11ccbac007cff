"""The cells of a grid as Ray Tune's search: one trial per cell, in the order given.

Tune's own grid search (``tune.grid_search``) costs the driver O(n) for every trial it makes:
``Tuner.fit`` deep-copies the search space per trial, the whole grid included, so a run of
n cells costs O(n^2) (measured: 156 ms a trial at 4,096 cells with the cells in the grid,
0.7 ms with only their keys). Here a searcher hands Tune one key per trial, and the trial's
cell is looked up by that key as Tune resolves the trial's config: what Tune copies for a
trial is that trial's suggestion and the few constants beside it, whatever n is.

Imported only by the driver when it builds a Tuner (it imports Ray).
"""

from __future__ import annotations

import contextlib
import copy
import os
import pickle
from collections import deque
from pathlib import Path

from ray import tune
from ray.tune.search import Searcher

__all__ = ["CellSearch", "cell_search", "pending_trials"]

PENDING = "TUNE_MAX_PENDING_TRIALS_PG"


class CellSearch(Searcher):
    """Suggests ``{"key": key}`` once for each key, in order, then says it has finished."""

    def __init__(self, keys):
        super().__init__()
        self.left = deque(keys)

    def suggest(self, trial_id):
        return {"key": self.left.popleft()} if self.left else Searcher.FINISHED

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass  # a grid learns nothing from its results

    def save(self, checkpoint_path):
        Path(checkpoint_path).write_bytes(pickle.dumps(list(self.left)))

    def restore(self, checkpoint_path):
        self.left = deque(pickle.loads(Path(checkpoint_path).read_bytes()))


def cell_search(grid: list[dict], **constants) -> dict:
    """The Tuner's arguments for the cells of ``grid`` (dicts with distinct ``key``s), one
    trial each: ``param_space`` (``constants`` and ``cell``, each trial's own copy of its
    cell, looked up by the ``key`` it was suggested), ``search_alg`` and ``num_samples``.
    ``max_concurrent_trials`` still applies (Tune wraps the searcher in its
    ``ConcurrencyLimiter``)."""
    cells = {c["key"]: c for c in grid}
    if len(cells) != len(grid):
        raise ValueError("the cells of a grid must have distinct keys")
    space = {"cell": tune.sample_from(lambda config: copy.deepcopy(cells[config["key"]])),
             **constants}
    return {"param_space": space, "search_alg": CellSearch(list(cells)),
            "num_samples": len(cells)}


@contextlib.contextmanager
def pending_trials(max_concurrent: int | None):
    """While a Tuner with ``cell_search`` runs: as many trials waiting for resources as Tune
    allows a grid search. Tune lets a searcher keep only ``max_concurrent_trials`` trials
    pending, or one without that limit, where it lets a grid search keep max(200, 1.1 x the
    cluster's CPUs): with one, an autoscaling cluster would see one trial's demand at a
    time and grow a node at a time. Nothing changes when ``max_concurrent`` is set or
    ``TUNE_MAX_PENDING_TRIALS_PG`` is (the user's own setting)."""
    if max_concurrent is not None or PENDING in os.environ:
        yield
        return
    import ray

    os.environ[PENDING] = str(max(200, int(ray.cluster_resources().get("CPU", 1.0) * 1.1)))
    try:
        yield
    finally:
        os.environ.pop(PENDING, None)
