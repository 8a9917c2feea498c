"""What every export states: the selection, run counts, versions and machine (read from the runs), the profile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from bench.analysis.criteria import CRITERIA, T, fmt_value
from bench.analysis.matrix import Matrix

MAX_COMPARE_RUNS = 40


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
        "versions": _distinct(runs, "version."),
        "machine": _distinct(runs, "", ["cpu_model", "cpu_count", "memory_gb", "platform", "threads"]),
        "harness": _distinct(runs, "", ["git_revision", "budget_s", "protocol_version"]),
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
                out[column.removeprefix(prefix)] = ", ".join(values)
    return out


def compare_urls(runs: pd.DataFrame, ui_url: str) -> dict[str, str]:
    """Per task, the MLflow UI view comparing its finished runs (the newest ones if there are many)."""
    from bench.store import compare_url

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
             "targets (utility 1 at or better): " + (", ".join(
                 f"{CRITERIA[c].label} {fmt_value(c, v)}" for c, v in getattr(p, "targets", {}).items()) or "none"),
             "normalisation: fixed [worst, best] per criterion (best = target, worst = limit where given), log10 scale "
             "for times, sizes and money: " + ", ".join(f"{c} [{p.bound(c)[0]:g}, {p.bound(c)[1]:g}]"
                                                         for c in p.weights)]
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

