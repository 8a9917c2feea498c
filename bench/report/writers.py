"""Exports of the decision matrix: CSV, Markdown and JSON (HTML in :mod:`bench.report.html`).

Every file carries what is needed to trust or reproduce it: the profile (weights, constraints, bounds),
the run selection, the number of runs, the library versions and the machine the runs were measured on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.matrix import Matrix
from bench.errors import BenchError
from bench.report.html import write_html
from bench.report.meta import header_lines
from bench.report.tables import (
    csv_table,
    decision_lines,
    sections,
)

FORMATS = ("csv", "md", "json", "html")


def check_formats(formats: list[str]) -> list[str]:
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise BenchError(f"unknown format(s) {', '.join(unknown) or '(none)'}; expected a comma-separated subset of "
                         f"{','.join(FORMATS)}", field="--format")
    return [f for f in FORMATS if f in formats]


def file_stem(profile_name: str) -> str:
    """``decision_matrix`` for the default profile (the README's file), ``decision_matrix_<profile>`` else."""
    from bench.analysis.profiles import DEFAULT_PROFILE

    if profile_name == DEFAULT_PROFILE:
        return "decision_matrix"
    return "decision_matrix_" + re.sub(r"[^\w.-]+", "_", profile_name)



def export(m: Matrix, meta: dict[str, Any], formats: list[str], out: Path) -> list[Path]:
    """Write the asked formats into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    stem = file_stem(m.decision.profile.name)
    writers = {"csv": write_csv, "md": write_md, "json": write_json, "html": write_html}
    paths = []
    for fmt in check_formats(formats):
        path = out / f"{stem}.{fmt}"
        writers[fmt](m, meta, path)
        paths.append(path)
    return paths


def write_csv(m: Matrix, meta: dict[str, Any], path: Path) -> None:
    """CSV with '# ' comment lines on top (read back with ``pd.read_csv(path, comment='#')``)."""
    lines = [f"# {line}" for line in header_lines(m, meta) + decision_lines(m)]
    path.write_text("\n".join(lines) + "\n" + csv_table(m).to_csv(index=False))


def write_md(m: Matrix, meta: dict[str, Any], path: Path) -> None:
    parts = [f"# Decision matrix: profile `{m.decision.profile.name}`", ""]
    for title, blocks in sections(m, meta):
        parts += [f"## {title}", ""] if title else []
        for kind, value in blocks:
            if kind == "lead":
                parts += [f"**{value}**", ""]
            elif kind == "list":
                parts += [f"- {x}" for x in value] + [""]
            elif kind == "text":
                parts += [value, ""]
            elif kind == "table" and len(value[0]):
                parts += [value[0].to_markdown(index=False), ""]
            elif kind == "links":
                parts += [f"- [{t}]({u})" for t, u in value.items()] + [""]
            elif kind == "figures":
                parts += ["(plots: in the HTML export beside this file, written by default)", ""]
    path.write_text("\n".join(parts))


def as_json(m: Matrix, meta: dict[str, Any]) -> dict[str, Any]:
    d = m.decision
    per_task = m.aggregate.per_task.reset_index() if len(m.aggregate.per_task) else pd.DataFrame()
    return _clean({"profile": d.profile.as_dict(), "meta": meta, "winner": d.winner, "winner_reason": d.winner_reason,
                   "sensitivity": {"delta": 0.2, "flips": d.sensitivity, "stable": not d.sensitivity},
                   "topsis": d.topsis_note, "notes": d.notes, "weights_used": d.weights,
                   "rows": csv_table(m).to_dict(orient="records"),
                   "per_task": per_task.to_dict(orient="records"),
                   "automl_vs_manual": m.verdict, "ranks": m.ranks.as_dict()})


def write_json(m: Matrix, meta: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(as_json(m, meta), indent=1, allow_nan=False))


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and pandas NA become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if value is None or value is pd.NA or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return None
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value

