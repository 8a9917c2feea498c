"""``bench rescore``: a metric recomputed for stored runs from their kept predictions, without refitting.

Each finished suite job's run holds ``predictions.parquet`` (see :mod:`bench.predictions`). The metric is
recomputed through the same registry the job scored with, logged onto the run as ``rescore_<metric>`` and
printed beside the value the job logged (``test_<metric>``) where it logged one. A file whose split hash is not
the run's is refused rather than scored: it would be a score of other rows.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError


@dataclass
class Rescored:
    run_id: str
    task: str
    pipeline: str
    seed: str
    value: float | None  # None: not rescored, ``note`` says why
    logged: float | None = None
    note: str = ""


def rescore_runs(uri: str, metric: str, tasks: list[str] | None = None, pipelines: list[str] | None = None,
                 log: bool = True) -> list[Rescored]:
    """Every finished suite job of the selection, rescored (or with the reason it could not be)."""
    from bench import store, tracking
    from bench.metrics import METRIC_KINDS, METRICS
    from bench.predictions import PREDICTIONS_FILE, read_predictions, rescore

    if metric not in METRICS:
        raise BenchError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}", field="--metric")
    runs = store.read_runs(uri, tasks=tasks, pipelines=pipelines)
    if not runs.empty:
        runs = runs[(runs["kind"] == "job") & (runs["status"] == "FINISHED")]
    if runs.empty:
        raise BenchError(f"no finished runs in {uri} for this selection; run `bench run` first or widen --tasks/"
                         "--pipelines", field="--tracking-uri")
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-rescore-") as tmp:
        for i, run in enumerate(runs.itertuples(index=False)):
            row = Rescored(run.run_id, str(run.task), str(run.pipeline), str(run.seed), None)
            logged = getattr(run, f"test_{metric}", None)
            row.logged = float(logged) if logged is not None and not _missing(logged) else None
            out.append(row)
            try:
                path = tracking.download_artifacts(uri, run.run_id, PREDICTIONS_FILE, Path(tmp) / str(i))
                frame, meta = read_predictions(path)
            except Exception:  # noqa: BLE001 - runs logged before predictions were kept have none
                row.note = "no predictions kept (run logged before they were)"
                continue
            if meta["kind"] not in METRIC_KINDS[metric]:
                row.note = f"{metric} does not apply to a {meta['kind']} task"
            elif meta["split_hash"] != getattr(run, "split_hash", meta["split_hash"]):
                row.note = f"predictions of split {meta['split_hash']}, the run's is {run.split_hash}: not scored"
            else:
                row.value = rescore(frame, meta, metric)
                if log:
                    tracking.log_metrics(uri, run.run_id, {f"rescore_{metric}": row.value})
    if all(r.value is None for r in out):
        reasons = sorted({r.note for r in out})
        raise BenchError(f"no run could be rescored with {metric}: {'; '.join(reasons)}", field="--metric")
    return out


def _missing(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def print_rescored(rows: list[Rescored], metric: str) -> None:
    """Task, pipeline and seed as rows (fits a 100-column terminal), the logged value beside the new one."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{metric} recomputed from the kept predictions", box=None)
    for col in ("task", "pipeline", "seed", f"logged test_{metric}", f"rescore_{metric}"):
        table.add_column(col, justify="right" if col[0] in "slr" and col != "task" else "left")
    for r in sorted(rows, key=lambda r: (r.task, r.pipeline, r.seed)):
        table.add_row(r.task, r.pipeline, r.seed, "-" if r.logged is None else f"{r.logged:.6g}",
                      f"{r.value:.6g}" if r.value is not None else r.note)
    Console(width=100).print(table)
    done = sum(r.value is not None for r in rows)
    print(f"rescored {done} of {len(rows)} run(s); logged as metric rescore_{metric}" if done else "")
