"""Exports of the decision matrix: CSV, Markdown, JSON and a self-contained HTML page with plots.

Every file carries what is needed to trust or reproduce it: the profile (weights, constraints, bounds),
the run selection, the number of runs, the library versions and the machine the runs were measured on.
The same files become artifacts of a run in MLflow's ``matrix`` experiment. matplotlib (and autorank,
for the critical-difference diagram) is imported only when HTML is asked for.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import math
import re
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.matrix import CRITERIA, Matrix, T, fmt_value, pareto_front

FORMATS = ("csv", "md", "json", "html")
SHOWN = ["quality", "fit_wall_s", "fit_cpu_s", "batch_rows_per_s", "latency_p50_ms", "latency_p99_ms", "model_mb",
         "peak_rss_mb", "cold_start_s", "lloc", "complexity", "online_learning", "failure_rate", "update_ms",
         "drift_quality"]
WITH_SPREAD = {"quality", "fit_wall_s", "latency_p50_ms"}
MAX_COMPARE_RUNS = 40


def check_formats(formats: list[str]) -> list[str]:
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise BenchError(f"unknown format(s) {', '.join(unknown) or '(none)'}; expected a comma-separated subset of "
                         f"{','.join(FORMATS)}", field="--format")
    return [f for f in FORMATS if f in formats]


def file_stem(profile_name: str) -> str:
    """``decision_matrix`` for the default profile (the README's file), ``decision_matrix_<profile>`` else."""
    from bench.profiles import DEFAULT_PROFILE

    if profile_name == DEFAULT_PROFILE:
        return "decision_matrix"
    return "decision_matrix_" + re.sub(r"[^\w.-]+", "_", profile_name)


# ---------------------------------------------------------------- what the files carry

def describe(runs: pd.DataFrame, m: Matrix, *, uri: str, suite: str | None = None, tasks: list[str] | None = None,
             pipelines: list[str] | None = None, ui_url: str | None = None) -> dict[str, Any]:
    """Selection, run counts, versions and machine, read from the runs themselves (what was measured)."""
    used = m.aggregate.runs
    status = runs["status"].value_counts().to_dict() if len(runs) else {}
    meta: dict[str, Any] = {
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "selection": {"tracking_uri": uri, "suite": suite, "tasks": tasks or "all", "pipelines": pipelines or "all"},
        "runs": {"loaded": len(runs), "used": len(used), "finished": int((used["status"] == "FINISHED").sum())
                 if len(used) else 0, "failed": int((used["status"] != "FINISHED").sum()) if len(used) else 0,
                 "duplicates_dropped": m.aggregate.duplicates, "in_progress": int(status.get("RUNNING", 0))},
        "tasks": sorted(used[T].dropna().unique().tolist()) if len(used) else [],
        "pipelines": list(m.aggregate.table.index),
        "versions": _distinct(runs, "params.version."),
        "machine": _distinct(runs, "", ["tags.cpu_model", "params.cpu_count", "params.memory_gb", "params.platform",
                                        "params.threads"]),
        "harness": _distinct(runs, "", ["tags.git_revision", "params.budget_s", "params.protocol_version"]),
    }
    if ui_url:
        meta["compare_urls"] = compare_urls(used, ui_url)
    return meta


def _distinct(runs: pd.DataFrame, prefix: str, columns: list[str] | None = None) -> dict[str, str]:
    columns = columns or sorted(c for c in runs.columns if c.startswith(prefix))
    out = {}
    for column in columns:
        if column in runs:
            values = sorted({str(v) for v in runs[column].dropna()})
            if values:
                out[column.removeprefix(prefix).split(".", 1)[-1]] = ", ".join(values)
    return out


def compare_urls(runs: pd.DataFrame, ui_url: str) -> dict[str, str]:
    """Per task, the MLflow UI view comparing its finished runs (the newest ones if there are many)."""
    from bench.tracking import compare_url

    out = {}
    if runs.empty or "experiment_id" not in runs:
        return out
    finished = runs[runs["status"] == "FINISHED"]
    for task, group in finished.groupby(T):
        out[str(task)] = compare_url(ui_url, str(group["experiment_id"].iloc[0]),
                                     group["run_id"].head(MAX_COMPARE_RUNS).tolist())
    return out


def header_lines(m: Matrix, meta: dict[str, Any]) -> list[str]:
    """The facts every export starts with, one per line."""
    p = m.decision.profile
    weights = ", ".join(f"{CRITERIA[c].label} {w:g}" for c, w in p.weights.items())
    constraints = "; ".join(f"{CRITERIA[c.criterion].label} {c.symbol} {fmt_value(c.criterion, c.limit)}"
                            for c in p.constraints) or "none"
    runs = meta["runs"]
    lines = [f"profile: {p.name} ({p.source}): {p.description}",
             f"weights: {weights}", f"constraints (must hold on every task): {constraints}",
             "normalisation: fixed bounds [worst, best] per criterion, log10 scale for times and sizes: " + ", ".join(
                 f"{c} [{p.bound(c)[0]:g}, {p.bound(c)[1]:g}]" for c in p.weights)]
    if p.network_rtt_ms:
        lines.append(f"network round trip added to online latencies: {p.network_rtt_ms:g} ms")
    sel = meta["selection"]
    lines += [f"selection: suite {sel['suite'] or '-'}, tasks {_join(sel['tasks'])}, "
              f"pipelines {_join(sel['pipelines'])}, store {sel['tracking_uri']}",
              f"runs: {runs['used']} used ({runs['finished']} finished, {runs['failed']} failed) of {runs['loaded']} "
              f"loaded; {runs['duplicates_dropped']} older duplicates dropped; tasks: {', '.join(meta['tasks'])}",
              "machine: " + "; ".join(f"{k} {v}" for k, v in meta["machine"].items()),
              "versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
              "harness: " + "; ".join(f"{k} {v}" for k, v in meta["harness"].items()),
              f"created: {meta['created_utc']} UTC"]
    return lines


def _join(value: Any) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


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
    d, t = m.decision, m.decision.table
    limits = {c.criterion: f"{c.symbol} {fmt_value(c.criterion, c.limit)}" for c in d.profile.constraints}
    out = pd.DataFrame(index=t.index)
    out["#"] = [str(r) if pd.notna(r) else "-" for r in t["rank"]]
    out["pipeline"] = t.index
    out["technology"] = t["technology"].fillna("")
    if scores:
        out["score"] = [f"{v:.3f}" if pd.notna(v) else "" for v in t["score"]]
        out["TOPSIS"] = [f"{v:.3f}" if pd.notna(v) else "" for v in t["topsis"]]
        out["Pareto"] = ["" if pd.isna(v) else ("yes" if v else "no") for v in t["pareto"]]
    for c in criteria:
        if c not in t or t[c].isna().all():
            continue
        head = CRITERIA[c].label + (f" ({CRITERIA[c].unit})" if CRITERIA[c].unit else "")
        extras = ([f"w {d.weights[c]:g}"] if c in d.weights else []) + ([limits[c]] if c in limits else [])
        head += f" [{', '.join(extras)}]" if extras else ""
        out[head] = [_cell(c, row) for _, row in t.iterrows()]
        if c == "quality":
            out["quality 95% CI"] = [f"[{lo:.3f}, {hi:.3f}]" if pd.notna(lo) else "" for lo, hi in
                                     zip(t["quality_ci_low"], t["quality_ci_high"], strict=True)]
            if not scores:
                ranks = t["mean_rank"] if "mean_rank" in t else t["quality"] * np.nan
                out["mean rank"] = [f"{v:.2f}" if pd.notna(v) else "" for v in ranks]
    if scores:
        out["reason"] = t["reason"].fillna("")
    else:
        out["runs (tasks x seeds)"] = [f"{r} ({tk} x {s})" for r, tk, s in zip(t["runs"], t["tasks"], t["seeds"],
                                                                                 strict=True)]
        out["failures"] = t["failures"].fillna("")
    return out.reset_index(drop=True)


def quality_table(m: Matrix) -> pd.DataFrame:
    """Per task: normalised quality and the mean primary score of each pipeline ('0.97 (rmse 54.3)')."""
    per_task = m.aggregate.per_task
    if per_task.empty:
        return pd.DataFrame()
    runs = m.aggregate.runs
    metrics = (runs.groupby(T)["params.primary_metric"].first() if "params.primary_metric" in runs
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


# ---------------------------------------------------------------- writers

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
                parts += ["(plots: in the HTML export, `--format html`)", ""]
    path.write_text("\n".join(parts))


def as_json(m: Matrix, meta: dict[str, Any]) -> dict[str, Any]:
    d = m.decision
    per_task = m.aggregate.per_task.reset_index() if len(m.aggregate.per_task) else pd.DataFrame()
    return _clean({"profile": d.profile.as_dict(), "meta": meta, "winner": d.winner, "winner_reason": d.winner_reason,
                   "sensitivity": {"delta": 0.2, "flips": d.sensitivity, "stable": not d.sensitivity},
                   "topsis": d.topsis_note, "notes": d.notes, "weights_used": d.weights,
                   "rows": csv_table(m).to_dict(orient="records"),
                   "per_task": per_task.rename(columns={"tags.pipeline": "pipeline", "tags.task": "task"})
                   .to_dict(orient="records"),
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


# ---------------------------------------------------------------- HTML and plots

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1500px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f0f0f0}tr.excluded td{color:#888}ul.meta{font-size:13px}
.winner{font-size:17px;background:#eef7ee;padding:.6em;border-left:4px solid #3a3}img{max-width:100%}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:1em}p.note{font-size:13px;color:#555}
.scroll{overflow-x:auto}"""


def write_html(m: Matrix, meta: dict[str, Any], path: Path) -> None:
    """One self-contained file: tables, reasons and the plots inlined as PNG."""
    esc = html.escape
    name = esc(m.decision.profile.name)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Decision matrix: {name}</title>"
             f"<style>{CSS}</style></head><body><h1>Decision matrix: profile <code>{name}</code></h1>"]
    for title, blocks in sections(m, meta):
        parts.append(f"<h2>{esc(title)}</h2>" if title else "")
        for kind, value in blocks:
            if kind == "lead":
                parts.append(f"<p class='winner'>{esc(value)}</p>")
            elif kind == "list":
                parts.append("<ul class='meta'>" + "".join(f"<li>{esc(x)}</li>" for x in value) + "</ul>")
            elif kind == "text":
                parts.append(f"<p class='note'>{esc(value)}</p>")
            elif kind == "table" and len(value[0]):
                parts.append(f"<div class='scroll'>{_html_table(*value)}</div>")
            elif kind == "links":
                parts.append("<ul>" + "".join(f"<li><a href='{esc(u)}'>{esc(t)}</a></li>" for t, u in value.items())
                             + "</ul>")
            elif kind == "figures":
                parts.append("<div class='plots'>" + "".join(
                    f"<figure><img alt='{esc(k)}' src='data:image/png;base64,{v}'><figcaption>{esc(k)}</figcaption>"
                    "</figure>" for k, v in figures(m).items()) + "</div>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")


def _html_table(frame: pd.DataFrame, row_classes: list[str] | None = None) -> str:
    """A plain HTML table (pandas' to_html cannot mark rows), every cell escaped."""
    esc = html.escape
    head = "".join(f"<th>{esc(str(c))}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cls = f" class='{row_classes[i]}'" if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figures(m: Matrix) -> dict[str, str]:
    """The plots as base64 PNG: quality vs latency and vs training time (Pareto fronts), score parts,
    effort, and the critical-difference diagram when there are enough tasks."""
    import matplotlib

    matplotlib.use("Agg")
    t = m.decision.table
    t = t[t["finished"] > 0]
    out = {}
    if t.empty:
        return out
    out["quality vs online latency (p50 marker, line to p99; Pareto front on quality and p50)"] = _png(
        _tradeoff(m, t, "latency_p50_ms", "latency_p99_ms"))
    out["quality vs training wall time (Pareto front)"] = _png(_tradeoff(m, t, "fit_wall_s", None))
    if m.decision.weights and t["feasible"].any():
        out["score by criterion (weight x utility / total weight), feasible pipelines"] = _png(_score_parts(m))
    out["effort: logical lines of code and cyclomatic complexity of the pipeline file"] = _png(_effort(t))
    cd = _cd_diagram(m)
    if cd is not None:
        out["critical-difference diagram (Friedman + Nemenyi, normalised quality per task)"] = cd
    return out


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _tradeoff(m: Matrix, t: pd.DataFrame, x: str, x_hi: str | None) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.6))
    ax = fig.add_subplot()
    for name, row in t.iterrows():
        ok = bool(row["feasible"])
        color = "#2a7" if name == m.decision.winner else ("#357" if ok else "#aaa")
        if x_hi and pd.notna(row.get(x_hi)):
            ax.plot([row[x], row[x_hi]], [row["quality"]] * 2, color=color, lw=1, alpha=0.6)
        ax.errorbar(row[x], row["quality"], yerr=row.get("quality_sd") if pd.notna(row.get("quality_sd")) else None,
                    fmt="o" if ok else "x", color=color, ms=8 if name == m.decision.winner else 6, capsize=3)
        ax.annotate(str(name) + ("" if ok else " (excluded)"), (row[x], row["quality"]), fontsize=8,
                    xytext=(5, 5), textcoords="offset points", color=color)
    pts = t[[x, "quality"]].dropna()
    if len(pts):
        front = pts[pareto_front(np.column_stack([-pts[x], pts["quality"]]))].sort_values(x)
        ax.step(front[x], front["quality"], where="post", color="#c63", ls="--", lw=1, label="Pareto front")
        ax.legend(loc="lower right", fontsize=8)
    for con in m.decision.profile.constraints:
        if con.criterion in (x, x_hi):
            ax.axvline(con.limit, color="#c33", ls=":", lw=1)
            ax.annotate(f"{CRITERIA[con.criterion].label} limit", (con.limit, ax.get_ylim()[0]), fontsize=7,
                        color="#c33", rotation=90, va="bottom", ha="right")
    limits = [c.limit for c in m.decision.profile.constraints if c.criterion in (x, x_hi)]
    _log_axis(ax, [*t[x].dropna(), *(t[x_hi].dropna() if x_hi else []), *limits])
    ax.set_xlabel(f"{CRITERIA[x].label} ({CRITERIA[x].unit}, log scale)")
    ax.set_ylabel("quality (0 = constant predictor, 1 = best seen)")
    ax.grid(alpha=0.3)
    return fig


def _log_axis(ax: Any, values: list[float]) -> None:
    """Log x axis spanning at least a decade around the values, ticks as plain numbers ('0.5', '20')."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    positive = [v for v in values if v > 0]
    ax.set_xscale("log")
    if positive:
        low, high = min(positive), max(positive)
        mid = math.sqrt(low * high)
        span = max(high / low, 10.0) ** 0.5 * 1.6
        ax.set_xlim(min(low / 1.6, mid / span), max(high * 1.6, mid * span))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _score_parts(m: Matrix) -> Any:
    from matplotlib.figure import Figure

    d = m.decision
    t = d.table[d.table["feasible"]]
    total = sum(d.weights.values())
    fig = Figure(figsize=(7, 0.5 + 0.45 * len(t)))
    ax = fig.add_subplot()
    left = np.zeros(len(t))
    colors = matplotlib_colors(len(d.weights))
    for (c, w), color in zip(d.weights.items(), colors, strict=True):
        part = (w * t[f"u_{c}"] / total).to_numpy()
        ax.barh(list(t.index), part, left=left, color=color, label=f"{CRITERIA[c].label} (w {w:g})")
        left += part
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"weighted-sum score (profile {d.profile.name})")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def matplotlib_colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _effort(t: pd.DataFrame) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 0.6 + 0.4 * len(t)))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, col, color in zip(axes, ("lloc", "complexity"), ("#357", "#a73"), strict=True):
        ax.barh(list(t.index), t[col].fillna(0), color=color)
        ax.set_xlabel(CRITERIA[col].label)
        for y, v in enumerate(t[col]):
            if pd.notna(v):
                ax.annotate(f"{v:.0f}", (v, y), fontsize=7, xytext=(2, 0), textcoords="offset points", va="center")
    axes[0].invert_yaxis()
    return fig


def _cd_diagram(m: Matrix) -> str | None:
    """autorank's critical-difference diagram, drawn only when the rank test ran (>= 5 complete tasks)."""
    if m.ranks.cd is None:
        return None
    import matplotlib.pyplot as plt
    from autorank import autorank, plot_stats

    quality = m.aggregate.per_task["quality"].unstack("tags.pipeline").dropna()
    quiet = io.StringIO()  # autorank prints its tables and warns on tied ranks even when not verbose
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        result = autorank(quality, alpha=m.ranks.alpha, force_mode="nonparametric", verbose=False)
        fig, ax = plt.subplots(figsize=(8, 3))
        plot_stats(result, allow_insignificant=True, ax=ax)
    png = _png(fig)
    plt.close(fig)
    return png


# ---------------------------------------------------------------- console and MLflow

def console_summary(m: Matrix, meta: dict[str, Any]) -> str:
    """A short text for the terminal: the ranking with reasons, caveats and the compare-runs links."""
    d = m.decision
    t = d.table
    width = max([len(str(p)) for p in t.index] + [8])
    lines = [f"profile {d.profile.name}: {meta['runs']['used']} runs, {len(meta['tasks'])} task(s), "
             f"{len(t)} pipeline(s)", ""]
    lines.append(f"  {'#':>2}  {'pipeline':<{width}}  {'score':>6}  {'quality':>14}  reason")
    for name, row in t.iterrows():
        rank = f"{row['rank']}" if pd.notna(row["rank"]) else "-"
        score = f"{row['score']:.3f}" if pd.notna(row["score"]) else ""
        quality = _cell("quality", row)
        lines.append(f"  {rank:>2}  {name:<{width}}  {score:>6}  {quality:>14}  {row['reason']}")
    lines += ["", *decision_lines(m), *verdict_lines(m)[:1], f"statistics: {m.ranks.note}"]
    if meta.get("compare_urls"):
        lines += ["", "compare runs in the MLflow UI (start it with `bench ui`):"]
        lines += [f"  {task}: {url}" for task, url in meta["compare_urls"].items()]
    return "\n".join(lines)


def run_payload(m: Matrix, meta: dict[str, Any], paths: list[Path]) -> dict[str, Any]:
    """What the MLflow ``matrix`` run records: profile and selection as params, the files as artifacts."""
    p, d = m.decision.profile, m.decision
    params = {"profile": p.name, "profile_source": p.source, "weights": json.dumps(p.weights),
              "constraints": json.dumps([vars(c) for c in p.constraints]), "network_rtt_ms": p.network_rtt_ms,
              "selection": json.dumps(meta["selection"]), "tasks": ",".join(meta["tasks"]),
              "pipelines": ",".join(meta["pipelines"]), "runs_used": meta["runs"]["used"]}
    metrics = {"winner_score": float(d.table.loc[d.winner, "score"])} if d.winner else {}
    return {"run_name": f"matrix-{p.name}", "tags": {"profile": p.name, "winner": d.winner or "none",
                                                      "kind": "decision_matrix"},
            "params": {k: str(v)[:6000] for k, v in params.items()}, "metrics": metrics,
            "paths": [str(path.resolve()) for path in paths]}


def _log_payload(uri: str, payload: dict[str, Any]) -> str:
    from mlflow.entities import Metric, Param, RunTag

    from bench import tracking

    exp = tracking.experiment_id(uri, "matrix")
    client = tracking._client(uri)  # tracking has no public helper for a non-job run with artifacts (yet)
    run_id = client.create_run(exp, run_name=payload["run_name"], tags=payload["tags"]).info.run_id
    now = int(datetime.now(UTC).timestamp() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in payload["metrics"].items()],
                     params=[Param(k, v) for k, v in payload["params"].items()],
                     tags=[RunTag("mlflow.runName", payload["run_name"])])
    for path in payload["paths"]:
        client.log_artifact(run_id, path)
    tracking.finish_run(uri, run_id)
    return run_id


def log_run(uri: str, m: Matrix, meta: dict[str, Any], paths: list[Path]) -> str:
    """The exports as artifacts of a run in the ``matrix`` experiment (excluded from ``load_runs``)."""
    return _log_payload(uri, run_payload(m, meta, paths))


OUTCOME_FILE = "matrix_run.json"


class MatrixRunLogger:
    """Logs the exports as a run of the MLflow ``matrix`` experiment from a detached process.

    Importing mlflow and opening its SQL store costs 2.5-3 CPU-seconds here (its SQLAlchemy store imports
    MLflow's GenAI modules): more than everything else ``bench matrix`` does over 1,000 runs, and the files,
    which are what the user asked for, are ready before it. So the command writes them, hands a private
    copy to a detached process and returns; that process records its outcome (run id or error) in
    ``<out>/matrix_run.json``, which the next ``bench matrix`` reports if it failed. ``wait=True`` (``--wait``)
    blocks until the run is logged and turns a failure into an error.
    """

    def __init__(self, uri: str, out: Path, enabled: bool = True, wait: bool = False) -> None:
        self.uri, self.outcome, self.enabled, self.wait = uri, out / OUTCOME_FILE, enabled, wait

    def previous_failure(self) -> str | None:
        """The error of the last background logging into this folder, if it failed."""
        try:
            outcome = json.loads(self.outcome.read_text())
        except (OSError, ValueError):
            return None
        return outcome.get("error") if outcome.get("status") == "failed" else None

    def log(self, m: Matrix, meta: dict[str, Any], paths: list[Path]) -> str:
        """Start the logging; returns what to tell the user (the run id when waiting)."""
        import os
        import shutil
        import subprocess
        import sys
        import tempfile

        if not self.enabled:
            return ""
        staging = Path(tempfile.mkdtemp(prefix="bench-matrix-run-"))
        copies = [Path(shutil.copy2(path, staging / path.name)) for path in paths]  # later runs may overwrite
        (staging / "payload.json").write_text(json.dumps(run_payload(m, meta, copies) | {"uri": self.uri}))
        self.outcome.unlink(missing_ok=True)
        root = str(Path(__file__).resolve().parents[1])
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        with open(staging / "stderr.txt", "w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "bench.report", str(staging), str(self.outcome)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env,
                                    start_new_session=True)  # outlives the command, and its Ctrl-C
        if not self.wait:
            return (f"logging the files as a run of MLflow experiment 'matrix' in the background (pid {proc.pid};"
                    f" outcome in {self.outcome})")
        proc.wait(timeout=600)
        outcome = json.loads(self.outcome.read_text()) if self.outcome.is_file() else {"status": "failed",
                                                                                          "error": "no outcome"}
        if outcome["status"] != "logged":
            raise BenchError(f"the files are written, but logging them to MLflow failed: {outcome['error']}",
                             field="--tracking-uri")
        return f"logged as MLflow run {outcome['run_id']} in experiment 'matrix'"


def _logger_main(staging: Path, outcome_file: Path) -> int:
    """The detached process: log the staged files, write the outcome atomically, remove the staging folder."""
    import shutil
    import traceback

    payload = json.loads((staging / "payload.json").read_text())
    try:
        outcome = {"status": "logged", "run_id": _log_payload(payload.pop("uri"), payload)}
    except Exception as exc:  # noqa: BLE001 - the outcome file is the only place left to report it
        outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000],
                   "traceback": traceback.format_exc()}
    outcome["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    partial = outcome_file.with_suffix(".partial")
    partial.write_text(json.dumps(outcome, indent=1))
    partial.replace(outcome_file)
    shutil.rmtree(staging, ignore_errors=True)
    return 0 if outcome["status"] == "logged" else 1


if __name__ == "__main__":
    import sys

    sys.exit(_logger_main(Path(sys.argv[1]), Path(sys.argv[2])))
