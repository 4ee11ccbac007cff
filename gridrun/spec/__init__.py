"""The spec stage: what a researcher writes, checked before anything runs.

``Ablation``, ``Factor`` and ``ASHA`` (``ablation``), the registry of techniques a spec may
name (``techniques``), the training rules both trainers follow (``rules``) and the backbone
options they share (``model_options``). Imports no framework and no Ray.

    >>> from gridrun.spec import Factor
    >>> Factor("batchnorm", [False, True]).levels
    (False, True)
"""

from gridrun.spec import techniques
from gridrun.spec.ablation import (ASHA, DESIGNS, METRICS, Ablation, Factor, SpecError, load_spec)

__all__ = ["Ablation", "Factor", "ASHA", "SpecError", "load_spec", "DESIGNS", "METRICS",
           "techniques"]
