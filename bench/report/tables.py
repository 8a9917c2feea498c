"""The matrix as tables and sentences: ranking, all criteria, quality per task, CSV numbers, AutoML verdict."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.criteria import CRITERIA, T, fmt_value
from bench.analysis.matrix import Matrix
from bench.report.meta import header_lines

SHOWN = ["quality", "fit_wall_s", "fit_cpu_s", "batch_rows_per_s", "latency_p50_ms", "latency_p99_ms", "model_mb",
         "serving_rss_mb", "peak_rss_mb", "cold_start_s", "edge_exported", "edge_latency_p99_ms", "edge_model_mb",
         "edge_serving_rss_mb", "edge_cold_start_s", "service_p99_ms", "train_usd", "usd_per_million_batch",
         "usd_per_million_online", "lloc", "lloc_total", "complexity", "online_learning", "failure_rate", "update_ms",
         "drift_quality"]
WITH_SPREAD = {"quality", "fit_wall_s", "latency_p50_ms"}


def decision_lines(m: Matrix) -> list[str]:
    """Winner, robustness, cross-check and the data caveats, as sentences."""
    d = m.decision
    lines = [f"decision: {d.winner_reason}"]
    if d.winner:
        lines.append("sensitivity (each weight -20 % / +20 %): " + (
            "the winner holds under every change" if not d.sensitivity else "; ".join(d.sensitivity)))
    if d.topsis_note:
        lines.append(f"cross-check: {d.topsis_note}")
    lines += [f"note: {n}" for n in d.notes]
    return lines


# ---------------------------------------------------------------- tables

def ranking_table(m: Matrix) -> pd.DataFrame:
    """The profile's view: rank, scores, quality and the criteria the profile weighs or limits, and why."""
    d = m.decision
    relevant = [c for c in SHOWN if c != "quality" and (c in d.weights or c in {k.criterion for k in
                                                                                 d.profile.constraints})]
    return _formatted(m, ["quality", *relevant], scores=True)


def criteria_table(m: Matrix) -> pd.DataFrame:
    """Every criterion the runs have, for every pipeline (value ± sd over seeds where it is shown)."""
    return _formatted(m, SHOWN, scores=False)


def _formatted(m: Matrix, criteria: list[str], scores: bool) -> pd.DataFrame:
    t = m.decision.table
    out = pd.DataFrame(index=t.index)
    out["#"] = [str(r) if pd.notna(r) else "-" for r in t["rank"]]
    out["pipeline"] = t.index
    out["technology"] = t["technology"].fillna("")
    if scores:
        out["score"] = [_num(v, ".3f") for v in t["score"]]
        out["TOPSIS"] = [_num(v, ".3f") for v in t["topsis"]]
        out["Pareto"] = ["" if pd.isna(v) else ("yes" if v else "no") for v in t["pareto"]]
    for c in criteria:
        if c in t and not t[c].isna().all():
            _criterion_columns(out, m, c, scores)
    if scores:
        out["reason"] = t["reason"].fillna("")
    else:
        out["runs (tasks x seeds)"] = [f"{r} ({tk} x {s})" for r, tk, s in zip(t["runs"], t["tasks"], t["seeds"],
                                                                                 strict=True)]
        out["failures"] = t["failures"].fillna("")
        if "imputed" in t:
            out["imputed (quality 0)"] = [f"{i} of {n}" for i, n in zip(t["imputed"], t["planned"], strict=True)]
    return out.reset_index(drop=True)


def _criterion_columns(out: pd.DataFrame, m: Matrix, c: str, scores: bool) -> None:
    """A criterion's column, headed with its unit, weight and limit; quality adds its interval and mean rank."""
    d, t = m.decision, m.decision.table
    limits = {k.criterion: f"{k.symbol} {fmt_value(k.criterion, k.limit)}" for k in d.profile.constraints}
    head = CRITERIA[c].label + (f" ({CRITERIA[c].unit})" if CRITERIA[c].unit else "")
    extras = ([f"w {d.weights[c]:g}"] if c in d.weights else []) + ([limits[c]] if c in limits else [])
    extras += [f"target {fmt_value(c, d.profile.targets[c])}"] if c in getattr(d.profile, "targets", {}) else []
    head += f" [{', '.join(extras)}]" if extras else ""
    out[head] = [_cell(c, row) for _, row in t.iterrows()]
    if c != "quality":
        return
    out["quality 95% CI"] = [f"[{lo:.3f}, {hi:.3f}]" if pd.notna(lo) else "" for lo, hi in
                             zip(t["quality_ci_low"], t["quality_ci_high"], strict=True)]
    if not scores:
        ranks = t["mean_rank"] if "mean_rank" in t else t["quality"] * np.nan
        out["mean rank"] = [_num(v, ".2f") for v in ranks]


def _num(value: float, spec: str) -> str:
    return format(value, spec) if pd.notna(value) else ""


def quality_table(m: Matrix) -> pd.DataFrame:
    """Per task: normalised quality and the mean primary score of each pipeline ('0.97 (rmse 54.3)')."""
    per_task = m.aggregate.per_task
    if per_task.empty:
        return pd.DataFrame()
    runs = m.aggregate.runs
    metrics = (runs.groupby(T)["primary_metric"].first() if "primary_metric" in runs
               else pd.Series(dtype=str))
    cells = {(p, task): f"{row['quality']:.3f} ({metrics.get(task, 'score')} {row['primary_score']:.4g})"
             for (p, task), row in per_task.iterrows()}
    frame = pd.Series(cells).unstack(fill_value="-")
    frame = frame.reindex([p for p in m.decision.table.index if p in frame.index])
    return frame.rename_axis("pipeline").reset_index()


def _cell(name: str, row: pd.Series) -> str:
    value = row.get(name, math.nan)
    if name == "quality":
        text = f"{value:.3f}" if pd.notna(value) else "n/a"
    else:
        text = fmt_value(name, value).removesuffix(" " + CRITERIA[name].unit) if CRITERIA[name].unit else \
            fmt_value(name, value)
    sd = row.get(f"{name}_sd", math.nan)
    if name in WITH_SPREAD and pd.notna(sd) and pd.notna(value):
        text += f" ± {sd:.2g}" if name != "quality" else f" ± {sd:.3f}"
    return text


def csv_table(m: Matrix) -> pd.DataFrame:
    """All numbers unformatted, for spreadsheets and scripts."""
    t = m.decision.table
    first = ["rank", "technology", "feasible", "score", "topsis", "pareto", "reason", "quality", "quality_sd",
             "quality_ci_low", "quality_ci_high", "mean_rank"]
    rest = [c for c in t.columns if c not in first]
    out = t[[c for c in first if c in t] + rest].reset_index()
    floats = out.select_dtypes("float").columns  # 6 significant digits: the measurements carry no more
    out[floats] = out[floats].map(lambda v: float(f"{v:.6g}") if pd.notna(v) else v)
    return out


def verdict_table(m: Matrix) -> pd.DataFrame:
    rows = m.verdict.get("tasks", [])
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    return pd.DataFrame({
        "task": frame["task"], "AutoML": frame["automl"], "best hand-coded": frame["manual"],
        "metric": frame["metric"],
        "scores (AutoML / hand-coded)": [f"{a:.4g} / {b:.4g}" for a, b in zip(frame["automl_score"],
                                                                               frame["manual_score"], strict=True)],
        "quality diff [95% CI]": [f"{d:+.3f}" + (f" [{lo:+.3f}, {hi:+.3f}]" if pd.notna(lo) else "")
                                  for d, lo, hi in zip(frame["quality_diff"], frame["ci_low"], frame["ci_high"],
                                                       strict=True)],
        "seeds": frame["seeds"], "verdict": frame["verdict"],
        "LLOC ratio": frame["lloc_ratio"].map("{:.2g}x".format),
        "training time ratio": frame["fit_time_ratio"].map("{:.2g}x".format),
        "p50 latency ratio": frame["latency_p50_ratio"].map("{:.2g}x".format)})


def verdict_lines(m: Matrix) -> list[str]:
    v = m.verdict
    if not v.get("available"):
        return [f"AutoML vs hand-coded: {v.get('note', 'n/a')}"]
    return [f"AutoML vs hand-coded {v['overall']['summary']}",
            "quality diff is in normalised-quality units (1 = the gap between the constant predictor and the best "
            "seen), paired by seed; the best hand-coded pipeline is picked per task, which slightly favours it"]


def sections(m: Matrix, meta: dict[str, Any]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The report's content once, as (title, blocks); Markdown and HTML only render it differently."""
    d = m.decision
    excluded = ["" if f else "excluded" for f in d.table["feasible"]]
    mean_ranks = ", ".join(f"{p} {r:.2f}" for p, r in m.ranks.mean_ranks.items())
    out: list[tuple[str, list[tuple[str, Any]]]] = [
        ("", [("lead", d.winner_reason), ("list", header_lines(m, meta))]),
        ("Ranking", [("table", (ranking_table(m), excluded)), ("text", "Score: weighted sum of utilities in [0, 1] "
                     "between the profile's fixed bounds. Quality: per task and split 0 = constant predictor, 1 = "
                     "best seen; mean over tasks and seeds ± sd over seeds. Costs: median over seeds, geometric mean "
                     "over tasks. Limits must hold on every task.")]),
        ("Reasons", [("list", [f"{p}: {r}" for p, r in d.table["reason"].items()] + decision_lines(m))]),
        ("Plots", [("figures", None)]),
        ("All criteria", [("table", (criteria_table(m), excluded))]),
        ("Quality per task", [("table", (quality_table(m), None)), ("text", "normalised quality (primary metric, "
                              "mean over seeds)")]),
        ("AutoML vs hand-coded", [("list", verdict_lines(m)), ("table", (verdict_table(m), None))]),
        ("Statistics", [("list", [m.ranks.note, f"mean ranks across tasks (1 = best): {mean_ranks}"])]),
    ]
    if meta.get("compare_urls"):
        out.append(("Runs in the MLflow UI", [("links", meta["compare_urls"])]))
    return out
