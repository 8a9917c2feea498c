"""AutoML against hand-coded: per task the best AutoML pipeline against the best hand-coded one."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.analysis import stats
from bench.analysis.criteria import P, S, T

if TYPE_CHECKING:
    from bench.analysis.aggregate import Aggregate

AUTOML_TECHNOLOGIES = {"flaml"}


def automl_vs_manual(agg: Aggregate) -> dict[str, Any]:
    """Per task: the best AutoML pipeline against the best hand-coded one on that task.

    Quality difference is paired by seed (same split) in normalised-quality units, with a bootstrap
    interval over seeds; effort, training time and latency as ratios (AutoML / hand-coded). Picking the best
    hand-coded pipeline per task after the fact favours the hand-coded side slightly.
    """
    table = agg.table
    if table.empty:
        return {"available": False, "note": "no runs", "tasks": [], "overall": {}}
    is_auto = table["technology"].isin(AUTOML_TECHNOLOGIES)
    auto, manual = list(table.index[is_auto]), list(table.index[~is_auto])
    if not auto or not manual:
        side = "AutoML" if not auto else "hand-coded"
        return {"available": False, "note": f"no {side} pipeline in the selection", "tasks": [], "overall": {}}
    done = agg.runs[agg.runs["status"] == "FINISHED"]
    fin = done[[c for c in (P, T, S, "quality", "primary_metric") if c in done]]
    rows = []
    for task, pt in agg.per_task.groupby(level=T):
        pt = pt.droplevel(T)
        pt = pt[pt["seeds"] > 0] if "seeds" in pt else pt  # a pipeline with no finished run here has no score
        a_q, m_q = pt["quality"].reindex(auto).dropna(), pt["quality"].reindex(manual).dropna()
        if a_q.empty or m_q.empty:
            continue
        rows.append(_task_verdict(fin, pt, str(task), a_q.idxmax(), m_q.idxmax()))
    return {"available": bool(rows), "note": "" if rows else "no task has both an AutoML and a hand-coded result",
            "tasks": rows, "overall": _overall_verdict(rows)}


def _task_verdict(fin: pd.DataFrame, pt: pd.DataFrame, task: str, a: str, m: str) -> dict[str, Any]:
    on_task = fin[fin[T] == task]
    qa = on_task[on_task[P] == a].set_index(S)["quality"]
    qm = on_task[on_task[P] == m].set_index(S)["quality"]
    paired = (qa - qm).dropna()
    diff = float(paired.mean())
    low, high = stats.bootstrap_ci(paired.to_numpy())
    if len(paired) < 2:
        verdict = "one seed: no interval"
    elif low > 0:
        verdict = "AutoML better"
    elif high < 0:
        verdict = "hand-coded better"
    else:
        verdict = "no clear difference"
    metric = on_task["primary_metric"].iloc[0] if "primary_metric" in on_task else "score"

    def ratio(c: str) -> float:
        return float(pt.loc[a, c] / pt.loc[m, c]) if pt.loc[m, c] else math.nan

    return {"task": task, "automl": a, "manual": m, "metric": metric,
            "automl_score": float(pt.loc[a, "primary_score"]), "manual_score": float(pt.loc[m, "primary_score"]),
            "quality_diff": diff, "ci_low": low, "ci_high": high, "seeds": len(paired), "verdict": verdict,
            "lloc_ratio": ratio("lloc"), "fit_time_ratio": ratio("fit_wall_s"),
            "latency_p50_ratio": ratio("latency_p50_ms")}


def _overall_verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {}
    frame = pd.DataFrame(rows)

    def geo(c: str) -> float:
        x = frame[c].astype(float)
        x = x[np.isfinite(x) & (x > 0)]
        return float(np.exp(np.log(x).mean())) if len(x) else math.nan

    low, high = stats.bootstrap_ci(frame["quality_diff"].to_numpy())
    counts = frame["verdict"].value_counts().to_dict()
    out = {"tasks": len(frame), "quality_diff": float(frame["quality_diff"].mean()), "ci_low": low, "ci_high": high,
           "verdicts": counts, "lloc_ratio": geo("lloc_ratio"), "fit_time_ratio": geo("fit_time_ratio"),
           "latency_p50_ratio": geo("latency_p50_ratio")}
    ci = f" [{low:+.3f}, {high:+.3f}] over tasks" if np.isfinite(low) else ""
    out["summary"] = (f"over {len(frame)} task(s): " + ", ".join(f"{v} {k}" for k, v in counts.items())
                      + f"; mean normalised-quality difference (AutoML - best hand-coded) {out['quality_diff']:+.3f}"
                      + ci + f"; AutoML needs {out['lloc_ratio']:.2g}x the LLOC, {out['fit_time_ratio']:.2g}x the "
                      f"training time and {out['latency_p50_ratio']:.2g}x the online p50 latency")
    return out

