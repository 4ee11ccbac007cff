"""gridrun: ablation grids of CNN training techniques on Ray Tune, with the tables papers print.

The flow, one package per stage: ``spec`` -> ``design`` -> ``run`` (Ray Tune, with the
trainers in ``torch`` and ``keras`` and the datasets in ``data``) -> ``store`` ->
``analysis`` -> ``report``.

Importing gridrun imports neither torch, tensorflow nor ray: ``launch``, ``resume``,
``confirm`` and ``report_text`` are loaded when first used.
"""

from gridrun.spec import ASHA, Ablation, Factor, SpecError, load_spec

__all__ = ["Ablation", "Factor", "ASHA", "SpecError", "load_spec", "launch", "resume",
           "confirm", "report_text", "Trackers"]
__version__ = "0.1.0"

_LAZY = {"launch": "gridrun.run", "resume": "gridrun.run", "confirm": "gridrun.run",
         "report_text": "gridrun.report", "Trackers": "gridrun.run"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gridrun' has no attribute {name!r}")
