"""AutoML-versus-hand-coded technology selection harness.

The Python API for notebooks (imported on first use, so ``import bench`` and ``bench --help`` load no
framework and no mlflow)::

    import bench
    runs = bench.load_runs()                     # the store's job runs, plain column names
    d = bench.decide(runs, "edge")               # renders as a table in Jupyter; d.table, d.winner, d.reasons
    figs = bench.figures(d)                      # {caption: matplotlib Figure}
    bench.run(["breast_cancer"], ["sklearn_linear"], seeds=1, budget_s=5)   # measure, then load_runs again
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_runs", "decide", "figures", "run", "Decision"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bench import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
