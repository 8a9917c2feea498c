"""Which figures a matrix gets, with their captions: one plan for both renderers (matplotlib figures for the
notebook API, inline SVG for the HTML page), so the page and the notebook never disagree on what is shown."""

from __future__ import annotations

import pandas as pd

from bench.analysis.matrix import Matrix

LATENCY, FIT, SCORE, EFFORT, CD = "latency", "fit", "score", "effort", "cd"


def finished_rows(m: Matrix) -> pd.DataFrame:
    """The decision table's pipelines with at least one finished run: the ones a figure can place."""
    t = m.decision.table
    return t[t["finished"] > 0]


def plan(m: Matrix) -> list[tuple[str, str]]:
    """(caption, figure key) in display order; empty when no pipeline finished a run."""
    t = finished_rows(m)
    if t.empty:
        return []
    out = [("quality vs online latency (p50 marker, line to p99; Pareto front on quality and p50)", LATENCY),
           ("quality vs training wall time (Pareto front)", FIT)]
    if m.decision.weights and t["feasible"].any():
        out.append(("score by criterion (weight x utility / total weight), feasible pipelines", SCORE))
    out.append(("effort: logical lines of code and cyclomatic complexity of the pipeline file", EFFORT))
    if m.ranks.cd is not None and len(m.ranks.mean_ranks) > 1:
        out.append(("critical-difference diagram (Friedman + Nemenyi, mean rank of normalised quality per task)",
                    CD))
    return out
