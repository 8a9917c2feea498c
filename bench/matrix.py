"""Runs -> criteria per pipeline -> the decision matrix.

Quality is normalised per task so tasks with different metrics can be averaged: 0 is the constant
predictor (logged with each run as ``primary_constant``), 1 the best score seen on that task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LOWER_IS_BETTER = {"rmse", "mae", "log_loss"}
CRITERIA = {  # column -> (run metric, aggregate, unit)
    "fit_wall_s": ("metrics.fit_wall_s", "median", "s"),
    "fit_cpu_s": ("metrics.fit_cpu_s", "median", "s"),
    "batch_rows_per_s": ("metrics.batch_rows_per_s", "median", "rows/s"),
    "latency_p50_ms": ("metrics.latency_p50_ms", "median", "ms"),
    "latency_p99_ms": ("metrics.latency_p99_ms", "median", "ms"),
    "model_latency_p50_ms": ("metrics.model_latency_p50_ms", "median", "ms"),
    "model_mb": ("metrics.model_bytes", "median", "MB"),
    "peak_rss_mb": ("metrics.peak_rss_mb", "median", "MB"),
    "cold_start_s": ("metrics.cold_start_s", "median", "s"),
    "lloc": ("metrics.lloc", "max", "lines"),
    "complexity": ("metrics.complexity_total", "max", ""),
}


def normalised_quality(runs: pd.DataFrame) -> pd.Series:
    """Per run: (score - constant) / (best on the task - constant), direction-aware."""
    out = pd.Series(np.nan, index=runs.index)
    for _task, group in runs.groupby("tags.task"):
        metric = group["params.primary_metric"].iloc[0] if "params.primary_metric" in group else None
        score, const = group["metrics.primary_score"], group["metrics.primary_constant"]
        lower = metric in LOWER_IS_BETTER if metric else bool((score < const).mean() > 0.5)
        best = score.min() if lower else score.max()
        span = best - const
        out[group.index] = ((score - const) / span).where(span != 0, 1.0)
    return out


def criteria(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per pipeline: quality and cost criteria aggregated over tasks and seeds."""
    if runs.empty:
        return pd.DataFrame()
    finished = runs[runs["status"] == "FINISHED"].copy()
    finished["quality"] = normalised_quality(finished)
    rows = []
    for pipeline, group in runs.groupby("tags.pipeline"):
        ok = finished[finished["tags.pipeline"] == pipeline]
        row = {"pipeline": pipeline, "technology": group["tags.technology"].iloc[0],
               "runs": len(group), "failure_rate": 1 - len(ok) / len(group),
               "quality": ok["quality"].mean(), "quality_sd": ok["quality"].std(),
               "tasks": ok["tags.task"].nunique()}
        for name, (column, how, _unit) in CRITERIA.items():
            values = ok[column] if column in ok else pd.Series(dtype=float)
            row[name] = getattr(values, how)() if len(values) else np.nan
        row["model_mb"] = row["model_mb"] / 1e6 if pd.notna(row["model_mb"]) else np.nan
        rows.append(row)
    return pd.DataFrame(rows).sort_values("quality", ascending=False).reset_index(drop=True)


def export(uri: str, tasks: list[str] | None, pipelines: list[str] | None, formats: list[str],
           out: Path) -> list[Path]:
    from bench import tracking

    runs = tracking.load_runs(uri, tasks=tasks, pipelines=pipelines)
    table = criteria(runs)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if "csv" in formats:
        path = out / "decision_matrix.csv"
        table.to_csv(path, index=False)
        written.append(path)
    if "md" in formats:
        path = out / "decision_matrix.md"
        header = (f"# Decision matrix\n\n{len(runs)} runs over {runs['tags.task'].nunique() if len(runs) else 0} "
                  "tasks. quality: per task 0 = constant predictor, 1 = best seen, mean over tasks and seeds; "
                  "times and sizes: medians.\n\n")
        path.write_text(header + table.to_markdown(index=False, floatfmt=".4g") + "\n")
        written.append(path)
    return written
