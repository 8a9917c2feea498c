"""What a sweep leaves: the table (console, CSV, Markdown) and the quality-per-period plot."""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.stream.protocol import RECOVERY_TOLERANCE, STRATEGIES
from bench.stream.sweep import StreamConfig, StreamOutcome, period_step, recovery_text

COLUMNS = ("task", "pipeline", "strategy", "seed", "status", "mean quality", "post-drift quality",
           "drift_quality", "recovery periods", "initial fit s", "total update s", "update ms/row", "model MB",
           "note")


def table_rows(task_name: str, outcomes: list[StreamOutcome]) -> list[dict[str, str]]:
    def num(value: Any, fmt: str) -> str:
        return format(value, fmt) if isinstance(value, int | float) and math.isfinite(value) else ""

    rows = []
    for o in outcomes:
        s = o.summary
        last_bytes = [p["model_bytes"] for p in o.periods if p.get("model_bytes") is not None
                      and math.isfinite(p["model_bytes"])] or [s.get("initial_model_bytes", math.nan)]
        rows.append({"task": task_name, "pipeline": o.pipeline, "strategy": o.strategy, "seed": str(o.seed),
                     "status": o.status, "mean quality": num(s.get("mean_quality"), ".4f"),
                     "post-drift quality": num(s.get("post_drift_quality"), ".4f"),
                     "drift_quality": num(s.get("drift_quality"), ".3f"),
                     "recovery periods": recovery_text(s.get("recovery")),
                     "initial fit s": num(s.get("initial_fit_wall_s"), ".2f"),
                     "total update s": num(s.get("total_update_s"), ".2f") if o.status != "no incremental path"
                     else "", "update ms/row": num(s.get("update_ms"), ".3g"),
                     "model MB": num(last_bytes[-1] / 1e6 if last_bytes[-1] else math.nan, ".3g"),
                     "note": o.message[:120]})
    return rows


def write_outputs(task, outcomes: list[StreamOutcome], config: StreamConfig, command: str) -> list[Path]:
    """``results/stream_<task>.{csv,md,png}``; also logged on a ``stream-summary`` run of the experiment."""
    import csv

    from bench import tracking

    config.out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(task.name, outcomes)
    base = config.out / f"stream_{task.name}"
    with base.with_suffix(".csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Stream benchmark: {task.name}", "", f"`{command}`", "",
             f"Prequential (score period t, then learn it). Budget {config.budget_s:g} s per fit, "
             f"{config.update_budget_s:g} s per update, periodic refit every {config.retrain_every} period(s) on "
             f"{f'the last {config.window} periods' if config.window else 'all data so far'}, "
             f"{config.threads} thread(s). Recovery: periods from the drift to the first period within "
             f"{RECOVERY_TOLERANCE:.0%} of the pre-drift mean. update ms/row: update wall time per new row absorbed.",
             "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows]
    base.with_suffix(".md").write_text("\n".join(lines) + "\n")
    written = [base.with_suffix(".csv"), base.with_suffix(".md")]
    if plot(task, outcomes, base.with_suffix(".png")):
        written.append(base.with_suffix(".png"))
    with contextlib.suppress(Exception):  # the files are written; the summary run is a convenience
        exp_id = tracking.experiment_id(config.tracking_uri, f"stream-{task.name}", task.description)
        run_id = tracking.create_run(config.tracking_uri, exp_id, "stream-summary",
                                     {"task": task.name, "kind": "stream-summary"}, {"command": command})
        tracking.log_files(config.tracking_uri, run_id, written)
        tracking.finish_run(config.tracking_uri, run_id)
    return written


def plot(task, outcomes: list[StreamOutcome], path: Path) -> bool:
    """Quality per period, one panel per pipeline, one line per strategy (mean over seeds), drifts dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = figure(task, outcomes, plt)
    if fig is None:
        return False
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def figure(task, outcomes: list[StreamOutcome], plt: Any) -> Any:
    """The plot's Figure, None with nothing to plot. The figure is wide enough for its title (one panel of
    4.2 inches cut the title off at both ends) and the title wraps before it would outgrow it."""
    import textwrap

    pipelines = list(dict.fromkeys(o.pipeline for o in outcomes if o.periods))
    if not pipelines:
        return None
    width = max(4.2 * len(pipelines), 7.0)
    fig, axes = plt.subplots(1, len(pipelines), figsize=(width, 3.4), sharey=True, squeeze=False)
    drifts = task.stream.get("drifts", [])
    for ax, pipeline in zip(axes[0], pipelines, strict=True):
        for strategy in STRATEGIES:
            runs = [o for o in outcomes if o.pipeline == pipeline and o.strategy == strategy and o.periods]
            if not runs:
                continue
            steps = sorted({period_step(p["period"], p["position"]) for o in runs for p in o.periods})
            mean = [np.nanmean([p["quality"] if p["quality"] is not None else np.nan for o in runs
                                for p in o.periods if period_step(p["period"], p["position"]) == s]) for s in steps]
            ax.plot(steps, mean, marker="o", markersize=3, label=strategy)
        for d in drifts:
            ax.axvline(d, color="grey", linestyle="--", linewidth=1)
        ax.set_title(pipeline)
        ax.set_xlabel("period")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(task.metric)
    axes[0][0].legend()
    title = f"{task.name}: prequential {task.metric} per period (drifts dashed)"
    fig.suptitle("\n".join(textwrap.wrap(title, int(width * 9))))  # about 9 characters an inch at 12 pt
    fig.tight_layout()
    return fig


def print_table(task_name: str, outcomes: list[StreamOutcome]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 170))
    table = Table(title=f"stream benchmark on {task_name}: prequential, one process per job")
    shown = [c for c in COLUMNS if c not in ("task", "note")]
    for col in shown:
        table.add_column(col, justify="left" if col in ("pipeline", "strategy", "status") else "right")
    for row, o in zip(table_rows(task_name, outcomes), outcomes, strict=True):
        cells = [row[c] for c in shown]
        if o.status == "failed":
            cells[shown.index("status")] += f": {o.message[:60]}"
        table.add_row(*cells)
    console.print(table)


def print_job(outcome: StreamOutcome) -> None:
    s = outcome.summary
    quality = s.get("mean_quality", math.nan)
    text = f"mean quality {quality:.4f}, updates {s.get('total_update_s', 0):.1f} s" if outcome.periods else ""
    print(f"{outcome.pipeline}/{outcome.strategy}/s{outcome.seed}: {outcome.status} {text} {outcome.message[:200]}",
          file=sys.stderr, flush=True)


def parse_strategies(values: list[str]) -> list[str]:
    unknown = [v for v in values if v not in STRATEGIES]
    if unknown or not values:
        raise BenchError(f"unknown strategies {unknown}; expected a comma-separated subset of "
                         f"{', '.join(STRATEGIES)}", field="--strategies")
    return values
