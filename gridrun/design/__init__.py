"""The design stage: a spec becomes cells and trials, and the schedule decides which cells
ASHA may stop. Pure decisions; nothing here knows about Ray or a framework.

- ``grid``: expanding a spec into trials (every design), resolved configs, trial ids;
- ``fractional``: two-level regular fractions, their defining relations and aliases;
- ``schedule``: the ablation-aware ASHA rules (anchors, rungs, promotion, confirmation);
- ``plan``: what a spec would run and cost (``gridrun plan``, ``launch --dry-run``);
- ``labels``: which transforms change a dataset's labels.

    >>> from gridrun import Ablation, Factor
    >>> a = Ablation(name="x", dataset="digits", factors=[Factor("batchnorm", [False, True])],
    ...              seeds=3)
    >>> len(expand(a))
    6
"""

from gridrun.design.grid import Trial, design_points, expand, resolve_config, trial_id

__all__ = ["Trial", "expand", "design_points", "resolve_config", "trial_id"]
