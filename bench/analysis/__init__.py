"""From runs to a decision: criteria, aggregation, the profile's decision, the AutoML verdict, statistics.

    criteria   what each column measures and which way is better (the root: everything here imports it)
    profiles   requirement profiles (constraints, weights, bounds) from YAML; built-ins in ``profiles/``
    aggregate  runs -> criteria per pipeline and per pipeline and task
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
