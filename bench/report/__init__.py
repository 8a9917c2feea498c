"""What the decision matrix becomes: files, plots, a terminal summary and an MLflow run.

    meta     what every export states: selection, runs, versions, machine, profile
    tables   ranking, all criteria, quality per task, CSV numbers, the AutoML verdict
    writers  CSV, Markdown and JSON files (``export`` writes the asked formats)
    html     the self-contained HTML page
    plots    matplotlib Figures (the HTML page inlines them as PNG)
    console  the terminal summary
    logger   the detached process that logs the files as a run of MLflow's ``matrix`` experiment

Names used by ``bench matrix`` are importable from here (lazily: ``python -m bench.report.logger`` stays clean).
"""

from __future__ import annotations

from typing import Any

_LAZY = {"check_formats": "writers", "export": "writers", "file_stem": "writers", "FORMATS": "writers",
         "describe": "meta", "console_summary": "console", "MatrixRunLogger": "logger", "figures": "plots"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"bench.report.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
