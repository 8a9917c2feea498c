"""From runs to a decision: criteria, aggregation, the profile's decision, the AutoML verdict, statistics.

    criteria   what each column measures and which way is better (the root: everything here imports it)
    profiles   requirement profiles (per criterion a limit, a target, a weight) from YAML; built-ins in ``profiles/``
    cost       money: training and serving priced per vCPU-hour and GB-hour (documented defaults, user-set)
    aggregate  runs -> criteria per pipeline and per pipeline and task; failed or missing jobs score quality 0
    decide     constraints, utilities, weighted sum, TOPSIS, Pareto, sensitivity, reasons
    verdict    AutoML against the best hand-coded pipeline
    stats      spread, bootstrap intervals, ranks, Friedman and Nemenyi
    matrix     all of it together: :func:`build`

The analysis reads runs as :mod:`bench.store` returns them and imports nothing from execution or report.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"build": "bench.analysis.matrix", "Matrix": "bench.analysis.matrix"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
