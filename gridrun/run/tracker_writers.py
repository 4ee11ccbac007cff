"""How each tracker stores a launch's trials (``gridrun.run.trackers`` decides what and when):
one TensorBoard event folder, one MLflow child run under its cell's run, one W&B run per
trial. Each imports its package when it is made, never at import.

Every writer has the same five methods: ``epoch`` (one seed's epoch), ``end`` (a trial's
status and final metrics), ``cell_end``, ``close``, and a ``name``. Metric names are
epochs.parquet's columns; final metrics are trials.parquet's, as ``final/<column>``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["TensorBoard", "MLflow", "WandB", "cell_label", "hparams_of", "short"]


def cell_label(cell) -> str:
    """A cell's levels as a reader names them: ``batchnorm=True, dropout=0.3``."""
    return ", ".join(f"{k}={v}" for k, v in cell.levels.items()) or "(no factors)"


def short(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters, kept unique by a hash of the whole."""
    if len(text) <= n:
        return text
    return text[:n - 9] + "~" + hashlib.sha1(text.encode()).hexdigest()[:8]


def hparams_of(trial) -> dict[str, Any]:
    """The trial's config and seed, each value a bool, number or text (None as 'None')."""
    plain = (bool, int, float, str)
    return {**{k: v if isinstance(v, plain) else str(v) for k, v in trial.config.items()},
            "seed": trial.seed}


# -- TensorBoard ------------------------------------------------------------------------------
def _scalar(tag: str, value: float):
    """A scalar as TensorBoard's default (fast) loader shows it: float32, the precision every
    TensorBoard writer keeps (the Parquet store, MLflow and W&B keep float64)."""
    from tensorboardX.summary import scalar

    return scalar(tag, value)


_TB_STATUS = {"completed": "STATUS_SUCCESS", "stopped_early": "STATUS_SUCCESS",
              "error": "STATUS_FAILURE"}


def _session_end(status: str):
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    sei = SessionEndInfo(status=Status.Value(_TB_STATUS[status]))
    data = HParamsPluginData(session_end_info=sei, version=0)
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name="hparams", content=data.SerializeToString()))
    return Summary(value=[Summary.Value(tag="_hparams_/session_end_info", metadata=meta)])


_FILES = itertools.count(1)  # event file names must differ within one second and process


def _restart(step: int):
    """TensorBoard's mark of a restart: on reading it drops the run's events from ``step``
    on, so a resumed trial's replayed epochs replace the earlier session's, not double them."""
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    return Event(session_log=SessionLog(status=SessionLog.START), step=step,
                 wall_time=time.time())


class TensorBoard:
    """DIR/<trial id>/: a scalar per metric per epoch, then the config as hparams with the
    final metrics (the hparams dashboard's columns)."""

    name = "tensorboard"

    def __init__(self, folder: str):
        from tensorboardX.writer import FileWriter

        self.folder, self._make = Path(folder), FileWriter
        self.writers: dict = {}

    def _writer(self, trial, step: int | None = None):
        w = self.writers.get(trial.trial_id)
        if w is None:  # a continued trial gets a new event file beside its earlier ones
            w = self.writers[trial.trial_id] = self._make(
                str(self.folder / trial.trial_id), flush_secs=10,
                filename_suffix=f".{os.getpid()}.{next(_FILES)}")
            if step is not None:
                w.add_event(_restart(step), step)
        return w

    def epoch(self, cell, trial, epoch, metrics, replayed):
        w = self._writer(trial, epoch)
        for k, v in metrics.items():
            w.add_summary(_scalar(k, v), epoch)

    def end(self, cell, trial, status, final, error):
        from tensorboardX.summary import hparams

        w = self._writer(trial)
        if status == "interrupted":  # TensorBoard keeps a run's first hparams: wait for the
            self.close_one(trial)    # session that ends the trial
            return
        finals = {f"final/{k}": v for k, v in final.items()}
        exp, ssi, _ = hparams(hparams_of(trial), finals)
        for summary in (exp, ssi, _session_end(status)):
            w.add_summary(summary)
        for k, v in finals.items():
            w.add_summary(_scalar(k, v), int(final.get("epochs_run", 0)))
        self.close_one(trial)

    def close_one(self, trial):
        self.writers.pop(trial.trial_id).close()

    def cell_end(self, cell):
        pass

    def close(self):
        for w in self.writers.values():
            w.close()
        self.writers = {}


# -- MLflow -----------------------------------------------------------------------------------
_MLFLOW_STATUS = {"completed": "FINISHED", "stopped_early": "FINISHED", "error": "FAILED",
                  "interrupted": "KILLED"}


class MLflow:
    """One experiment per grid; per cell a parent run (params: its levels), per trial a
    nested child run (params: config and seed; metrics per epoch with step=epoch; tags
    gridrun.trial_id and gridrun.status). Runs of earlier sessions of the same run folder
    (found by the gridrun.run tag) are continued, not made again."""

    name = "mlflow"

    def __init__(self, uri: str, experiment: str, tag: str, run):
        import logging

        from mlflow import MlflowClient

        # its "Creating initial MLflow database tables" would break into the live view
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        if uri.startswith("sqlite:///"):
            Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.client, self.tag = MlflowClient(tracking_uri=uri), tag
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:  # artifacts of the default store stay in the run folder
            place = (str(run.local_path / "mlflow-artifacts")
                     if uri.startswith("sqlite:") and run.is_local else None)
            self.exp = self.client.create_experiment(experiment, artifact_location=place)
        else:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            self.exp = exp.experiment_id
        self.runs = self._earlier()
        self.live: dict[str, str] = {}  # key -> run id, started in this session, not ended
        self.done: dict[str, int] = {}  # trial id -> last epoch an earlier session logged
        self.status: dict[str, str] = {}  # trial id -> its status at its end

    def _earlier(self) -> dict[str, str]:
        runs, token = {}, None
        while True:
            page = self.client.search_runs([self.exp], f"tags.`gridrun.run` = '{self.tag}'",
                                           max_results=1000, page_token=token)
            for r in page:
                runs[r.data.tags.get("gridrun.trial_id") or r.data.tags["gridrun.cell"]] = \
                    r.info.run_id
            token = page.token
            if not token:
                return runs

    def _run(self, key: str, make) -> str:
        if key in self.live:
            return self.live[key]
        if key in self.runs:
            self.client.update_run(self.runs[key], status="RUNNING")
        else:
            self.runs[key] = make()
        self.live[key] = self.runs[key]
        return self.runs[key]

    def _params(self, run_id: str, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]  # MLflow's longest
        for i in range(0, len(items), 100):  # MLflow takes 100 params per call
            self.client.log_batch(run_id, params=items[i:i + 100])

    def _cell_run(self, cell) -> str:
        def make():
            r = self.client.create_run(self.exp, run_name=short(cell_label(cell), 250), tags={
                "gridrun.run": self.tag, "gridrun.cell": cell.key})
            self._params(r.info.run_id, dict(cell.levels))
            return r.info.run_id
        return self._run(cell.key, make)

    def _trial_run(self, cell, trial) -> str:
        def make():
            r = self.client.create_run(self.exp, run_name=f"seed {trial.seed} ({trial.trial_id})",
                                       tags={"mlflow.parentRunId": self._cell_run(cell),
                                             "gridrun.run": self.tag,
                                             "gridrun.cell": cell.key,
                                             "gridrun.trial_id": trial.trial_id,
                                             "gridrun.status": "running"})
            self._params(r.info.run_id, hparams_of(trial))
            return r.info.run_id
        fresh = trial.trial_id not in self.runs and trial.trial_id not in self.live
        run_id = self._run(trial.trial_id, make)
        if not fresh and trial.trial_id not in self.done:
            self._cell_run(cell)  # the parent runs again too
            self.done[trial.trial_id] = self._last_step(run_id)
        return run_id

    def _last_step(self, run_id: str) -> int:
        keys = [k for k in self.client.get_run(run_id).data.metrics if "/" not in k]
        return max((m.step for m in self.client.get_metric_history(run_id, keys[0])),
                   default=0) if keys else 0

    def epoch(self, cell, trial, epoch, metrics, replayed):
        from mlflow.entities import Metric

        run_id = self._trial_run(cell, trial)
        if replayed and epoch <= self.done.get(trial.trial_id, 0):
            return  # an earlier session logged it
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, v, now, epoch)
                                               for k, v in metrics.items()])

    def end(self, cell, trial, status, final, error):
        from mlflow.entities import Metric, RunTag

        run_id, now = self._trial_run(cell, trial), int(time.time() * 1000)
        step = int(final.get("epochs_run", 0))
        tags = [RunTag("gridrun.status", status)] + (
            [RunTag("gridrun.error", error[:5000])] if error else [])
        self.client.log_batch(run_id, metrics=[Metric(f"final/{k}", v, now, step)
                                               for k, v in final.items()], tags=tags)
        self.client.set_terminated(run_id, status=_MLFLOW_STATUS[status])
        del self.live[trial.trial_id]
        self.status[trial.trial_id] = status

    def cell_end(self, cell):
        """The cell's run ends as its seeds did: FAILED when all failed, KILLED when one
        was cut off; its gridrun.status tag lists their statuses."""
        if cell.key not in self.live:
            return
        seen = sorted({self.status.get(t.trial_id, "interrupted") for t in cell.trials})
        status = ("KILLED" if "interrupted" in seen else "FAILED" if seen == ["error"]
                  else "FINISHED")
        run_id = self.live.pop(cell.key)
        self.client.set_tag(run_id, "gridrun.status", ",".join(seen))
        self.client.set_terminated(run_id, status=status)

    def close(self):
        for run_id in self.live.values():  # cells whose trials were all cut off
            self.client.set_terminated(run_id, status="KILLED")
        self.live = {}


# -- Weights & Biases -------------------------------------------------------------------------
class WandB:
    """One W&B run per trial (project = the grid, group = its cell, id from the run folder
    and trial id, so a resumed trial continues its run): config and seed, a row per epoch
    with step=epoch, status and final metrics in the summary. W&B's own variables
    (WANDB_MODE, WANDB_DIR, WANDB_ENTITY, ...) apply; without WANDB_DIR its files go in the
    run folder."""

    name = "wandb"

    def __init__(self, project: str, tag: str, run):
        import wandb

        self.wandb, self.project, self.tag = wandb, project, tag
        self.dir = None if os.environ.get("WANDB_DIR") or not run.is_local else str(
            run.local_path)
        self.runs: dict = {}

    def _run(self, cell, trial):
        r = self.runs.get(trial.trial_id)
        if r is None:
            # no console capture (it would fight the live view), no system-stats process
            settings = self.wandb.Settings(console="off", silent=True, save_code=False,
                                           x_disable_stats=True)
            r = self.runs[trial.trial_id] = self.wandb.init(
                project=self.project, group=short(cell_label(cell), 128),
                name=f"seed {trial.seed} ({trial.trial_id})",
                id=f"{self.tag}-{trial.trial_id}", resume="allow", reinit="create_new",
                config={**hparams_of(trial), "trial_id": trial.trial_id}, dir=self.dir,
                job_type="trial", settings=settings)
        return r

    def epoch(self, cell, trial, epoch, metrics, replayed):
        self._run(cell, trial).log(metrics, step=epoch)

    def end(self, cell, trial, status, final, error):
        r = self._run(cell, trial)
        r.summary.update({"status": status, **{f"final/{k}": v for k, v in final.items()},
                          **({"error": error} if error else {})})
        r.finish(exit_code=1 if status in ("error", "interrupted") else 0)
        del self.runs[trial.trial_id]

    def cell_end(self, cell):
        pass

    def close(self):
        for r in self.runs.values():
            r.finish(exit_code=1)
        self.runs = {}
