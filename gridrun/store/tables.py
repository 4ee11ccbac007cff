"""The results store: ``trials.parquet``, ``epochs.parquet`` and ``run.json`` in one folder,
on local disk or any storage ``gridrun.store.location.Location`` opens (``s3://``, ``gs://``,
``file://``, ...).

Locally a run is written into a temporary folder beside its final place and renamed into
place in one step, so a crash never leaves a half-written or mixed run. On other storage
each file is one upload and run.json is written last: it holds the trial count, and
``read_run`` refuses tables that disagree with it. ``read_run`` reads a run back for analysis
(pyarrow and pandas only).

    >>> run = read_run("runs/quickstart")          # doctest: +SKIP
    >>> run.trials.groupby("status").size()        # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from gridrun.spec import techniques
from gridrun.store.location import Location, StorageError

__all__ = ["Run", "StoreError", "trials_schema", "epochs_schema", "EPOCHS_SCHEMA", "STATUSES",
           "write_run", "read_run", "metric_columns", "spec_metric", "default_mode",
           "NOT_EPOCH_COLUMNS", "TRIALS_FILE", "EPOCHS_FILE", "RUN_FILE", "CHECKPOINTS"]

TRIALS_FILE, EPOCHS_FILE, RUN_FILE = "trials.parquet", "epochs.parquet", "run.json"
CHECKPOINTS = "checkpoints"  # rung checkpoints of screened trials, kept across rewrites
STATUSES = ("completed", "stopped_early", "error")

_KIND_TYPES = {"bool": pa.bool_(), "float": pa.float64(), "int": pa.int64(),
               "choice": pa.string(), "str": pa.string()}

# Columns of trials.parquet that follow the factor columns; documented in the README.
_TRIAL_FIELDS = [
    ("seed", pa.int64()), ("status", pa.string()), ("epochs_run", pa.int64()),
    ("last_val_acc", pa.float64()), ("best_val_acc", pa.float64()),
    ("best_epoch", pa.int64()), ("test_acc", pa.float64()), ("params", pa.int64()),
    ("wall_seconds", pa.float64()), ("error", pa.string()),
    ("continued_from", pa.int64()), ("node", pa.string()),
]

EPOCHS_SCHEMA = pa.schema([
    ("trial_id", pa.string()), ("epoch", pa.int64()),
    ("train_loss", pa.float64()), ("train_acc", pa.float64()),
    ("val_loss", pa.float64()), ("val_acc", pa.float64()),
    ("lr", pa.float64()), ("seconds", pa.float64()), ("rss_mb", pa.float64()),
])


class StoreError(ValueError):
    """A run folder that cannot be read or written; the message says which file and why."""


def metric_columns(metric: str | None) -> tuple[str, ...]:
    """The trials.parquet columns of a spec's metric other than val_acc (whose last and best
    values are columns of every run): ``last_<metric>``, ``best_<metric>``."""
    if metric is None or metric == "val_acc":
        return ()
    return (f"last_{metric}", f"best_{metric}")


def default_mode(metric: str) -> str:
    """The rule ``Ablation`` applies to a spec that names no mode: smaller is better for
    losses and errors ("min"), larger for the rest ("max")."""
    return "min" if metric.endswith(("loss", "error", "mse", "mae")) else "max"


def spec_metric(spec: Mapping[str, Any]) -> tuple[str, str]:
    """(metric, mode) of a run.json spec; a spec written before specs carried a mode gets
    ``default_mode``."""
    metric = spec.get("metric") or "val_acc"
    return metric, spec.get("mode") or default_mode(metric)


def trials_schema(factor_names: Iterable[str], kinds: Mapping[str, str] | None = None, *,
                  metric: str | None = None) -> pa.Schema:
    """trial_id, one typed column per factor (named as the technique, or a custom factor
    of kind ``kinds[name]``: "bool", "int", "float" or "str"), then the outcome, with
    ``metric_columns(metric)`` after best_val_acc."""
    fields = [("trial_id", pa.string())] + [(n, _factor_type(n, kinds or {}))
                                            for n in factor_names]
    outcome = list(_TRIAL_FIELDS)
    at = [n for n, _ in outcome].index("best_val_acc") + 1
    outcome[at:at] = [(c, pa.float64()) for c in metric_columns(metric)]
    names = [n for n, _ in fields + outcome]
    if len(names) != len(set(names)):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise StoreError(f"trials.parquet would have the column(s) {dup} twice; rename the "
                         "factor or the metric")
    return pa.schema(fields + outcome)


def _factor_type(name: str, kinds: Mapping[str, str]) -> pa.DataType:
    kind = kinds.get(name)
    if kind is None:
        try:
            kind = techniques.get(name).kind
        except ValueError:  # a custom factor: its kind is the spec's word, not the registry's
            raise StoreError(f"factor {name!r} is no technique and has no kind: pass "
                             f"kinds={{{name!r}: 'bool'|'int'|'float'|'str'}} (a run's spec "
                             "records them in spec['plugins']['factors'])") from None
    if kind not in _KIND_TYPES:
        raise StoreError(f"factor {name!r}: unknown kind {kind!r}; allowed: "
                         f"{', '.join(_KIND_TYPES)}")
    return _KIND_TYPES[kind]


# Keys of an epoch's report that are never columns of their own: they are columns already
# (seconds), belong to trials.parquet (params, test_acc) or are the driver's bookkeeping.
NOT_EPOCH_COLUMNS = frozenset({
    "trial_id", "epoch", "seconds", "epoch_seconds", "params", "test_acc", "elapsed", "node",
    "replayed", "resumed_from", "per_seed", "seed_errors", "early_stopped",
    "restored_epoch"})


def epochs_schema(extra: Iterable[str] = ()) -> pa.Schema:
    """EPOCHS_SCHEMA, then one float64 column per metric in ``extra`` (a trainer's own),
    sorted by name; with no extra metrics, EPOCHS_SCHEMA itself."""
    have = set(EPOCHS_SCHEMA.names)
    names = sorted(set(extra) - have)
    bad = [n for n in names if n in NOT_EPOCH_COLUMNS]
    if bad:
        raise StoreError(f"epochs.parquet cannot have a metric column named {bad}: "
                         "gridrun keeps that name for its own bookkeeping")
    return pa.schema(list(EPOCHS_SCHEMA) + [(n, pa.float64()) for n in names])


def _table(rows: list[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    extra = {k for r in rows for k in r} - set(schema.names)
    if extra:  # unknown columns are a bug upstream, never silently dropped
        raise StoreError(f"rows have columns not in the schema: {sorted(extra)}")
    cols = {name: [r.get(name) for r in rows] for name in schema.names}
    try:
        return pa.Table.from_pydict(cols, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:  # e.g. text where a metric goes
        bad = [f"{f.name} ({f.type})" for f in schema if not _fits(cols[f.name], f.type)]
        raise StoreError(f"rows hold values of the wrong type in {', '.join(bad) or '?'}: "
                         f"{e}") from None


def _fits(values, type_) -> bool:
    try:
        pa.array(values, type=type_)
        return True
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False


def write_run(run_dir: str | Path | Location, *, factor_names: list[str], trials: list[Mapping],
              epochs: list[Mapping], info: Mapping[str, Any],
              kinds: Mapping[str, str] | None = None, metric: str | None = None
              ) -> Path | Location:
    """Write the three files of a run; returns the run folder.

    ``kinds`` types the custom factors' columns and ``metric`` adds its trials columns
    (``metric_columns``); both default to what ``info["spec"]`` says (its "plugins"
    "factors", its "metric"). Every key of the epochs rows beyond EPOCHS_SCHEMA is a metric
    of the trainer's own and becomes a float64 column (``epochs_schema``).

    Locally the files are written into a temporary sibling folder that then replaces
    ``run_dir`` in one rename, so a reader sees the old run or the new one, never a mix or a
    partial file; what else the folder holds (checkpoints, the journal of a run in
    progress) moves with it. On other storage, the tables are uploaded first and run.json
    last. ``trials`` must hold exactly one row per trial id (checked before writing)."""
    loc = run_dir if isinstance(run_dir, Location) else Location(run_dir)
    ids = [t["trial_id"] for t in trials]
    if len(ids) != len(set(ids)):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise StoreError(f"trial {dup} appears more than once; a run holds one row per trial")
    bad = {t["status"] for t in trials} - set(STATUSES)
    if bad:
        raise StoreError(f"unknown trial status {sorted(bad)}; allowed: {', '.join(STATUSES)}")
    spec = info.get("spec") or {}
    kinds = (spec.get("plugins") or {}).get("factors") if kinds is None else kinds
    metric = spec.get("metric") if metric is None else metric
    t_table = _table(trials, trials_schema(factor_names, kinds, metric=metric))
    e_table = _table(epochs, epochs_schema(k for r in epochs for k in r))
    text = json.dumps({**info, "n_rows": len(trials)}, indent=2, default=str) + "\n"
    if not loc.is_local:
        try:
            for name, table in ((TRIALS_FILE, t_table), (EPOCHS_FILE, e_table)):
                buf = io.BytesIO()
                pq.write_table(table, buf)
                loc.child(name).write_bytes(buf.getvalue())
            loc.child(RUN_FILE).write_text(text)
        except StorageError as e:
            raise StoreError(str(e)) from None
        return loc
    run_dir = loc.local_path
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.writing-", dir=run_dir.parent))
    try:
        pq.write_table(t_table, tmp / TRIALS_FILE)
        pq.write_table(e_table, tmp / EPOCHS_FILE)
        (tmp / RUN_FILE).write_text(text)
        _swap_into_place(tmp, run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return run_dir


_STORE_FILES = (TRIALS_FILE, EPOCHS_FILE, RUN_FILE)


def _swap_into_place(new: Path, run_dir: Path) -> None:
    if not run_dir.exists():
        new.rename(run_dir)
        return
    for entry in run_dir.iterdir():  # checkpoints, journal: they belong to the run
        if entry.name not in _STORE_FILES and not (new / entry.name).exists():
            entry.rename(new / entry.name)
    old = run_dir.parent / f".{run_dir.name}.replaced-{uuid.uuid4().hex[:8]}"
    run_dir.rename(old)
    new.rename(run_dir)
    shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class Run:
    """A run read back: the two tables (pandas) and run.json."""

    path: Any  # Path (local) or gridrun.store.location.Location
    trials: Any  # pandas.DataFrame
    epochs: Any  # pandas.DataFrame
    info: dict

    @property
    def spec(self) -> dict:
        return self.info["spec"]


def read_run(run_dir: str | Path | Location) -> Run:
    """Read a run folder written by ``write_run`` (a path or a storage URI); StoreError
    names what is missing. ``Run.path`` is a Path for local runs, else the Location."""
    try:
        loc = run_dir if isinstance(run_dir, Location) else Location(run_dir)
        if not loc.is_dir():
            raise StoreError(f"{run_dir}: no such run folder")
        for name in (RUN_FILE, TRIALS_FILE, EPOCHS_FILE):
            if not loc.child(name).is_file():
                raise StoreError(f"{run_dir}: missing {name}; is this a gridrun run folder?")
    except StorageError as e:
        raise StoreError(str(e)) from None
    try:
        info = json.loads(loc.child(RUN_FILE).read_text())
        spec = info["spec"]
        trials = pq.read_table(loc.child(TRIALS_FILE).path, filesystem=loc.fs).to_pandas()
        epochs = pq.read_table(loc.child(EPOCHS_FILE).path, filesystem=loc.fs).to_pandas()
    except (ValueError, KeyError, OSError, pa.ArrowException) as e:
        raise StoreError(f"{run_dir}: unreadable run ({type(e).__name__}: {e})") from None
    missing = [c for c in ["trial_id", *spec["factors"], "status"] if c not in trials]
    if missing:
        raise StoreError(f"{loc.child(TRIALS_FILE)}: missing columns {missing}")
    if "n_rows" in info and info["n_rows"] != len(trials):  # a write caught half-way
        raise StoreError(f"{run_dir}: run.json counts {info['n_rows']} trials but "
                         f"{TRIALS_FILE} holds {len(trials)}; the run is being rewritten, "
                         "read it again when that is done")
    path = loc.local_path if loc.is_local else loc
    return Run(path, trials, epochs, info)
