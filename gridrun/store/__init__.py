"""The store stage: where a run lives and what it holds.

- ``location``: a local folder or a storage URI (``s3://``, ``gs://``, ``file://``, ...);
- ``journal``: a run in progress (its launch record, finished cells' parts, the heartbeat);
- ``claim``: which driver holds a run (one at a time, without atomic rename on S3);
- ``spool``: finished cells kept on the driver's machine while the storage does not answer;
- ``tables``: ``trials.parquet``, ``epochs.parquet`` and ``run.json``, written atomically and
  read back for analysis.

Imports no framework and no Ray.

    >>> run = read_run("runs/quickstart")          # doctest: +SKIP
"""

from gridrun.store.location import Location, StorageError
from gridrun.store.tables import (CHECKPOINTS, EPOCHS_FILE, EPOCHS_SCHEMA, RUN_FILE, STATUSES,
                                  TRIALS_FILE, Run, StoreError, read_run, trials_schema, write_run)

__all__ = ["Run", "StoreError", "trials_schema", "EPOCHS_SCHEMA", "STATUSES", "write_run",
           "read_run", "TRIALS_FILE", "EPOCHS_FILE", "RUN_FILE", "CHECKPOINTS", "Location",
           "StorageError"]
