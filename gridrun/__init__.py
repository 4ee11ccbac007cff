"""gridrun: ablation grids of CNN training techniques on Ray Tune, with the tables papers print.

Importing gridrun imports neither torch, tensorflow nor ray.
"""

from gridrun.spec import ASHA, Ablation, Factor, SpecError, load_spec

__all__ = ["Ablation", "Factor", "ASHA", "SpecError", "load_spec"]
__version__ = "0.1.0"
