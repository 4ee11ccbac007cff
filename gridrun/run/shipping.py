"""Carrying a spec's own modules to workers on other machines: every module imported from
the spec's folder is registered with Ray's cloudpickle to be pickled by value, so a worker
whose machine has only gridrun installed still gets the researcher's functions and classes
(those defined in the spec file itself are pickled by value already: its module is not
importable)."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["ship_by_value"]


def ship_by_value(spec_path: str | Path | None) -> list[str]:
    """Register the modules loaded from ``spec_path``'s folder (not gridrun, not an installed
    package) to be pickled by value; returns their names."""
    if spec_path is None:
        return []
    from ray import cloudpickle

    root = Path(spec_path).resolve().parent
    shipped = []
    for name, module in sorted(sys.modules.items()):
        path = getattr(module, "__file__", None)
        # some modules carry a pseudo file name (torch.ops: "_ops.py"): real files only
        if not isinstance(path, str) or not Path(path).is_absolute() \
                or name.split(".")[0] == "gridrun":
            continue
        try:
            file = Path(path).resolve()
        except (OSError, ValueError):
            continue
        if not file.is_file():
            continue
        if file.is_relative_to(root) and "site-packages" not in file.parts:
            cloudpickle.register_pickle_by_value(sys.modules[name.split(".")[0]]
                                                 if "." in name else module)
            shipped.append(name)
    return shipped
