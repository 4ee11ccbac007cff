"""The Ray Tune trainable of one cell (a configuration with all its seeds), run in Ray workers.

Every seed is checkpointed to the run's storage (a local folder or any URI) at the rungs
where ASHA may stop the cell and after every epoch (at most every ``checkpoint_seconds``
when that is set above 0): beside each
checkpoint, the metrics of the epochs it holds. A cell started again (Tune retrying it
after its worker died, a resumed run, a confirmation) continues every seed from its
checkpoint and first reports the epochs the checkpoint holds again, marked ``replayed``, so
the driver's bookkeeping and the scheduler see the cell's whole history.

A storage that does not answer never fails a trial: a checkpoint it refuses is skipped (the
cell trains on, and the driver warns once per cell), and a seed whose checkpoint it cannot
give back starts from its first epoch.
"""

from __future__ import annotations

import json
import math
import time

from gridrun.spec import plugins
from gridrun.store.location import Location, StorageError
from gridrun.store.spool import retry

__all__ = ["cell_trainable", "checkpoint_of", "history_of", "weights_of", "trainer_module",
           "SUFFIX"]


# The file suffix of a framework's checkpoints and weights: a torch state_dict, or the
# Keras trainer's npz (arrays only, no pickle).
SUFFIX = {"torch": ".pt", "tensorflow": ".npz"}


def checkpoint_of(checkpoints: Location, trial_id: str, framework: str = "torch") -> Location:
    """The latest checkpoint of one trial (a configuration and a seed)."""
    return checkpoints.child(f"{trial_id}{SUFFIX[framework]}")


def weights_of(run: Location, trial_id: str, framework: str = "torch") -> Location:
    """A completed trial's final model weights, with keep_weights: a torch state_dict
    (.pt) or the Keras trainer's .npz, as ``pretrained`` reads them."""
    return run.child("weights", f"{trial_id}{SUFFIX[framework]}")


def trainer_module(framework: str):
    """The package of the trainer: the spec's own when its plug-ins bring one, else the
    framework's (imported here, in the worker)."""
    if plugins.active().trainer is not None:
        import gridrun.run.own_trainer as module
    elif framework == "tensorflow":
        import gridrun.keras as module
    else:
        import gridrun.torch as module
    return module


def history_of(checkpoints: Location, trial_id: str) -> Location:
    """The metrics of the epochs the trial's checkpoint holds (JSON, written first)."""
    return checkpoints.child(f"{trial_id}.history.json")


def _node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # outside Ray (tests calling the trainable directly)
        return None


def _rss_mb() -> float | None:
    """This worker's resident memory in MiB (what a trial costs a node; a reused worker's
    growth over a grid)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2 ** 20
    except Exception:  # noqa: BLE001 - a number for the record, never a failed trial
        return None


def _restore(cell, trial, shared, ckpts: Location):
    """(trainer, replayed history) of one seed: continued from its checkpoint when there is
    one whose history is whole, else a new trainer and no history."""
    framework = cell["config"]["framework"]
    Trainer = trainer_module(framework).Trainer
    tid = trial["trial_id"]
    pt = checkpoint_of(ckpts, tid, framework)
    try:  # a storage that does not answer: the seed starts again rather than fail
        blob = retry(lambda: pt.read_bytes() if pt.is_file() else None)[0] \
            if cell["resume"] else None
        hist = history_of(ckpts, tid)
        text = retry(lambda: hist.read_text() if hist.is_file() else "[]")[0] \
            if blob is not None and cell["replay"] else "[]"
    except StorageError:
        blob = None
    if blob is None:
        return Trainer(cell["config"], shared, seed=trial["seed"]), []
    trainer = Trainer.from_bytes(blob, shared)
    if not cell["replay"]:
        return trainer, []
    try:
        history = json.loads(text)
    except ValueError:
        history = []
    history = history[:trainer.epoch]
    if len(history) < trainer.epoch:  # the metrics before the checkpoint are lost
        return Trainer(cell["config"], shared, seed=trial["seed"]), []
    return trainer, history


def _save(trainer, history, ckpts: Location, trial_id: str) -> str | None:
    """Checkpoint one seed; when the storage refuses it, the seed goes on without this
    checkpoint and the reason is returned (for the driver's one warning)."""
    # history first: a checkpoint is only used with a history at least as long as it.
    # One try each: the storage's client has already retried every request, and the next
    # epoch writes a newer checkpoint anyway; training waits for neither.
    blob = trainer.to_bytes()
    try:
        retry(lambda: history_of(ckpts, trial_id).write_text(json.dumps(history)),
              attempts=1)
        retry(lambda: checkpoint_of(ckpts, trial_id, trainer.config["framework"])
              .write_bytes(blob), attempts=1)
    except StorageError as e:
        return (f"trial {trial_id} could not write its checkpoint at epoch {trainer.epoch} "
                f"and trains on without it ({e})")
    return None


def cell_trainable(config: dict, data=None, own=None) -> None:
    """Train every seed of one cell in lockstep and report once per epoch: the seeds' mean
    metric (what the scheduler judges) and each seed's own metrics. Before each report at an
    epoch in ``save_at`` every seed is checkpointed, because the scheduler may stop the cell
    at that report and the loop never resumes. A seed that raises is dropped and reported as
    an error; the cell goes on with the others. ``own``: the spec's plug-ins
    (``gridrun.spec.plugins.Plugins``), installed for this process's trainers."""
    from ray import tune

    plugins.install(own)
    cell, metric = config["cell"], config["metric"]
    framework = cell["config"]["framework"]
    package = trainer_module(framework)
    if framework == "tensorflow":
        package.release()  # a reused actor forgets the previous cell's Keras state
    ckpts = Location(cell["checkpoints"])
    package.set_threads(config["threads"])
    shared = package.prepare_data(data)
    node = _node_id()
    trainers, errors, history = {}, {}, {}
    for t in cell["trials"]:
        try:
            trainers[t["trial_id"]], history[t["trial_id"]] = _restore(cell, t, shared, ckpts)
        except (RuntimeError, ValueError, OSError) as e:
            errors[t["trial_id"]] = f"{type(e).__name__}: {e}"
    # Replay what the checkpoints hold, epoch by epoch, so the driver and the scheduler
    # see the same sequence of reports as if the cell had never been interrupted.
    for i in range(max((len(h) for h in history.values()), default=0)):
        per_seed = {tid: {**h[i], "replayed": True} for tid, h in history.items()
                    if i < len(h)}
        _report(tune, metric, min(m["epoch"] for m in per_seed.values()), per_seed, errors)
    try:
        _train_cell(tune, cell, metric, trainers, errors, history, ckpts, node, framework)
    finally:
        for tr in trainers.values():  # a trainer function's thread ends with its cell
            getattr(tr, "close", lambda: None)()


def _train_cell(tune, cell, metric, trainers, errors, history, ckpts, node, framework):
    """The epochs of a cell's seeds, in lockstep, from where their checkpoints left off."""
    resumed = {tid: tr.epoch for tid, tr in trainers.items() if tr.epoch}
    save_at, every = set(cell["save_at"]), float(cell.get("checkpoint_seconds", 0) or 0)
    last_save = time.monotonic()
    while any(not tr.done for tr in trainers.values()):
        per_seed = {}
        for tid, tr in list(trainers.items()):
            if tr.done:  # a seed that resumed from a later checkpoint than its siblings
                continue
            try:
                m = {**tr.step(), "elapsed": tr.seconds, "node": node, "rss_mb": _rss_mb()}
            except (RuntimeError, ValueError) as e:  # e.g. a diverged seed
                errors[tid] = f"{type(e).__name__}: {e}"
                del trainers[tid]
                continue
            if tid in resumed:
                m["resumed_from"] = resumed.pop(tid)
            per_seed[tid] = m
            history.setdefault(tid, []).append(m)
        if not per_seed:
            break
        epoch = min(m["epoch"] for m in per_seed.values())
        due = time.monotonic() - last_save >= every  # 0: every epoch
        warning = None
        if epoch in save_at or (due and any(not tr.done for tr in trainers.values())):
            for tid, tr in trainers.items():
                warning = _save(tr, history.get(tid, []), ckpts, tid) or warning
            last_save = time.monotonic()
        if cell.get("weights"):
            for tid in per_seed:
                if trainers.get(tid) is not None and trainers[tid].done:
                    warning = _keep_weights(cell, tid, framework, trainers[tid]) or warning
        _report(tune, metric, epoch, per_seed, errors, warning)
    if not trainers and errors:
        raise RuntimeError(next(iter(errors.values())))


def _keep_weights(cell, tid, framework, trainer) -> str | None:
    """A completed seed's final weights (keep_weights), tried longer than a checkpoint: no
    later write replaces them."""
    blob = trainer.model_bytes()
    try:
        retry(lambda: weights_of(Location(cell["weights"]), tid, framework).write_bytes(blob),
              attempts=5, backoff=1.0)
    except StorageError as e:
        return f"trial {tid} could not save its final weights ({e})"
    return None


def _report(tune, metric, epoch, per_seed, errors, warning=None) -> None:
    vals = [m[metric] for m in per_seed.values()
            if m.get(metric) is not None and math.isfinite(m[metric])]
    tune.report({"epoch": epoch, metric: sum(vals) / len(vals) if vals else math.nan,
                 "per_seed": per_seed, "seed_errors": dict(errors),
                 **({"storage_warning": warning} if warning else {})})
