"""The run stage: the grid's cells on Ray Tune, and everything a running grid needs.

- ``driver``: ``launch``, ``resume`` and ``confirm`` (Ray init, the Tuner, retries, the store);
- ``trainable``: one cell (a configuration with all its seeds) in a Ray worker;
- ``scheduler``: the ablation-aware ASHA as a Ray Tune scheduler;
- ``collector``: the driver's callback that journals each finished cell;
- ``trackers``, ``tracker_writers``: each seed's epochs to TensorBoard, MLflow or W&B;
- ``cells``: cells and the rows they become (pure bookkeeping);
- ``runfolder``: the run folder's state across sessions;
- ``cluster``, ``reaper``: joining a cluster; no Ray processes left behind a killed driver;
- ``progress``, ``status``, ``runinfo``: the live line, ``gridrun status``, run.json's facts;
- ``calibrate``: measured seconds per epoch for ``gridrun plan --calibrate``.

Importing this package imports no framework and no Ray; they are imported when a run starts.

    >>> from gridrun import launch, load_spec
    >>> result = launch(load_spec("ablations/quickstart.py"))   # doctest: +SKIP
"""

from gridrun.run.driver import LaunchResult, confirm, launch, resume
from gridrun.run.status import read_status, status_text
from gridrun.run.trackers import TrackerError, Trackers

__all__ = ["launch", "resume", "confirm", "LaunchResult", "status_text", "read_status",
           "Trackers", "TrackerError"]
