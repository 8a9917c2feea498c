"""The quality table of a study: primary metric per task x pipeline, mean +- sd over seeds, against the floors.

    python benchmarks/quality_table.py --suite standard                 # every pipeline in the store
    python benchmarks/quality_table.py --suite standard --pipelines torch_mlp,keras_mlp --out results/quality.md

Reads the finished suite-job runs of the store (the newest run per task, pipeline and seed, so a rerun with
``--force`` or a changed pipeline replaces the older one) and checks each cell against the reference scores in
the task files (``reference: {hgb, linear}``: default HGB and a linear model on one 80/20 split), which are
floors: ``sklearn_hgb`` at the HGB reference; ``torch_mlp``/``keras_mlp`` at least at the
linear reference on classification and within 10 % of its RMSE on regression, and >= 0.97 balanced accuracy on
digits; ``flaml_automl``/``sklearn_hgb_tuned`` at the HGB reference on at least 8 of 10 tasks. A missed floor
is marked ``*``, with ``(~)`` when the gap is within one standard deviation over seeds (the references come
from one split; small test sets make one split noisy). Appends the table and verdicts as one JSON line to
benchmarks/quality_table.jsonl.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bench.analysis.criteria import lower_is_better

OUT = Path(__file__).with_suffix(".jsonl")


@functools.cache
def references(task: str) -> tuple[float, float] | None:
    """The task file's ``reference: {hgb, linear}`` scores (default HGB and a linear model on one 80/20 split,
    random_state=0); None for a task without them or not in the tasks folder."""
    from bench.errors import TaskError
    from bench.tasks import resolve_task

    try:
        reference = resolve_task(task).reference
    except TaskError:
        return None
    return (reference["hgb"], reference["linear"]) if {"hgb", "linear"} <= set(reference) else None


HGB_FLOOR_PIPELINES = {"sklearn_hgb", "flaml_automl", "sklearn_hgb_tuned"}
NETWORKS = {"torch_mlp", "keras_mlp"}


def floor(pipeline: str, task: str, metric: str) -> float | None:
    """The score a pipeline must reach on a task (None: no floor for it)."""
    if references(task) is None:
        return None
    hgb, linear = references(task)
    if pipeline in HGB_FLOOR_PIPELINES:
        return hgb
    if pipeline in NETWORKS:
        if task == "digits":
            return max(linear, 0.97)
        return linear * 1.10 if lower_is_better(metric) else linear
    return None


def latest_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished suite-job runs, one per task, pipeline and seed: the matrix's own selection (``aggregate.prepare``:
    the newest job key per slot, its newest finished run), without the stream benchmark's runs."""
    from bench.analysis import aggregate

    jobs, _ = aggregate.split_stream(runs)
    current, _ = aggregate.prepare(jobs)
    return current[(current["status"] == "FINISHED") & current["primary_score"].notna()]


def build(runs: pd.DataFrame, tasks: list[str], pipelines: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The table (one row per task) and the floor verdict lines."""
    runs = latest_runs(runs)
    metric = runs.groupby("task")["primary_metric"].first()
    rows, met = [], {p: [0, 0] for p in pipelines}
    for task in tasks:
        if task not in metric:
            continue
        row = {"task": task, "metric": metric[task]}
        hgb_linear = references(task)
        row["ref HGB / linear"] = f"{hgb_linear[0]:g} / {hgb_linear[1]:g}" if hgb_linear else ""
        for p in pipelines:
            scores = runs[(runs["task"] == task) & (runs["pipeline"] == p)]["primary_score"]
            if scores.empty:
                row[p] = "-"
                continue
            mean, sd = scores.mean(), scores.std() if len(scores) > 1 else 0.0
            cell = f"{mean:.4g} ± {sd:.2g} (n={len(scores)})"
            target = floor(p, task, metric[task])
            if target is not None:
                lower = lower_is_better(metric[task])
                ok = mean <= target if lower else mean >= target
                met[p][0] += ok
                met[p][1] += 1
                if not ok:
                    cell += " *" + (" (~)" if abs(mean - target) <= sd else "")
            row[p] = cell
        rows.append(row)
    verdicts = []
    for p, (ok, total) in met.items():
        if total:
            need = "8 of 10" if p in {"flaml_automl", "sklearn_hgb_tuned"} else "every task"
            verdicts.append(f"{p}: floor met on {ok} of {total} tasks (required: {need})")
    return pd.DataFrame(rows), verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="standard")
    parser.add_argument("--pipelines", help="comma-separated (default: every pipeline with runs)")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--out", type=Path, help="also write the table as markdown here")
    opts = parser.parse_args(argv)

    from bench import store, tracking
    from bench.environment import machine, versions
    from bench.tasks import suite_tasks

    tasks = [t.name for t in suite_tasks(opts.suite)]
    uri = tracking.resolve_uri(opts.tracking_uri)
    runs = store.read_runs(uri, tasks=tasks, pipelines=opts.pipelines.split(",") if opts.pipelines else None)
    if runs.empty:
        print(f"no runs of suite {opts.suite} in {uri}", file=sys.stderr)
        return 2
    pipelines = opts.pipelines.split(",") if opts.pipelines else sorted(runs["pipeline"].dropna().unique())
    table, verdicts = build(runs, tasks, pipelines)
    text = "\n".join([table.to_markdown(index=False), "", *[f"- {v}" for v in verdicts], "",
                      "`*` below its floor, `(~)` within one sd of it; floors from the tasks' `reference:` scores."])
    print(text)
    if opts.out:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(f"# Quality, suite {opts.suite} ({uri})\n\n{text}\n")
        print(f"wrote {opts.out}")
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "benchmark": "quality_table",
              "suite": opts.suite, "store": uri, "runs": int(len(runs)), "table": table.to_dict(orient="records"),
              "verdicts": verdicts, "machine": machine(), "versions": versions()}
    with OUT.open("a") as out:
        out.write(json.dumps(record, default=str) + "\n")
    print(f"appended to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
