"""Scaling sweep: fit time, memory, throughput and quality against training rows, and how time grows.

``bench scale --task flights --pipelines sklearn_linear,sklearn_hgb --rows 1000,10000,100000,full``

- Same split for every point (the task's seeded split); the training rows of a point are a seeded subsample
  of the training split, nested (the 10k rows contain the 1k rows) and stratified for classification; the
  test set never changes, so quality is comparable along the curve.
- Each point is fitted in its own fresh process (memory is the RSS peak of that fit alone, nothing left
  over from the previous size), with the thread count pinned before any framework loads and a time limit.
  A point past its limit ends that pipeline's sweep: larger sizes would only take longer.
- Growth: least-squares fit of ``log(fit_wall_s)`` on ``log(rows)`` over a pipeline's points gives the
  exponent ``k`` in ``time ~ rows^k``; ``projected_fit_s_10x`` is the largest measured time times ``10^k``
  (anchored at the largest point, where fixed overheads matter least). Small sizes are dominated by fixed
  costs, so ``k`` over a sweep from 1k rows understates the asymptotic growth; ``k_last`` (between the two
  largest sizes) is printed beside it. A budget-bound search (AutoML) takes its budget at every size:
  its ``k`` says nothing about the algorithm.
- MLflow: experiment ``scale-<task>``, one run per pipeline (tags ``pipeline``, ``kind=scale``, ``task``)
  with every per-point metric logged with ``step`` = training rows (the UI draws the curves against it),
  plus ``scale_exponent``, ``scale_exponent_last``, ``scale_exponent_cpu`` (the same fit on CPU seconds,
  steadier on a shared machine), ``projected_fit_s_10x``, ``projected_rows_10x`` and ``max_rows``. These
  runs carry no ``job_key``: they are not suite jobs and never enter the suite's criteria; the matrix reads
  them for its "big data" criterion.

Run a single point directly with ``python -m bench.scale POINT_DIR`` (what the sweep does).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.errors import BenchError

POINT_METRICS = ("train_rows", "fit_wall_s", "fit_cpu_s", "peak_rss_mb", "batch_rows_per_s", "primary_score")


@dataclass
class PointSpec:
    task_path: str
    pipeline: str
    rows: int | None  # None: the whole training split
    seed: int = 0
    budget_s: float = 60.0
    threads: int = 1
    batch_rows: int = 10_000


@dataclass
class Point:
    pipeline: str
    requested: int | None
    status: str  # ok | failed | timeout | skipped
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    cause: str = ""  # the execution protocol's failure cause (exception, timeout, memory, crash, ...)

    @property
    def rows(self) -> int | None:
        return int(self.metrics["train_rows"]) if "train_rows" in self.metrics else self.requested


@dataclass
class Growth:
    pipeline: str
    exponent: float
    exponent_last: float
    projected_rows: int
    projected_fit_s: float
    points: int
    exponent_cpu: float = float("nan")  # the same fit on CPU seconds: steadier on a shared machine


@dataclass
class Sweep:
    task: str
    experiment: str
    points: list[Point]
    growth: dict[str, Growth]
    run_ids: dict[str, str]


# ------------------------------------------------------------------ sizes, task, growth


def parse_rows(text: str) -> list[int | None]:
    """``"1000,10k,1e5,full"`` -> ``[1000, 10000, 100000, None]`` (None = the whole training split)."""
    sizes: list[int | None] = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        if part in ("full", "all"):
            sizes.append(None)
            continue
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1], 1)
        try:
            value = int(float(part[:-1] if scale > 1 else part) * scale)
        except ValueError:
            raise BenchError(f"expected row counts like 1000,10k,full, got {part!r}", field="--rows") from None
        if value < 20:
            raise BenchError(f"a point needs at least 20 training rows, got {value}", field="--rows")
        sizes.append(value)
    if not sizes:
        raise BenchError("give at least one size", field="--rows")
    numeric = sorted(set(s for s in sizes if s is not None))
    return numeric + ([None] if None in sizes else [])


def synthetic_task(kind: str, sizes: list[int | None], features: int = 20, seed: int = 0):
    """A task on the synthetic generator, with enough rows that its training split holds the largest size."""
    from bench.tasks import cache_dir, load_task

    numeric = [s for s in sizes if s is not None]
    if not numeric:
        raise BenchError("with --synthetic give numeric sizes (the generator needs a row count)", field="--rows")
    rows = math.ceil(max(numeric) / 0.8) + 1
    folder = cache_dir() / "scale-tasks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"synthetic_{kind}.yaml"
    lines = [f"name: synthetic_{kind}", f"kind: {kind}", "target: y", "description: synthetic scaling task",
             f"source: {{type: synthetic, rows: {rows}, features: {features}, categorical: 2, seed: {seed}}}"]
    if kind == "binary":
        lines.append("positive_label: pos")
    path.write_text("\n".join(lines) + "\n")
    return load_task(path)


def growth(pipeline: str, points: list[Point]) -> Growth | None:
    """``time ~ rows^k`` by least squares on logs; None with fewer than two measured sizes."""
    import numpy as np

    good = sorted((p.metrics["train_rows"], p.metrics["fit_wall_s"], p.metrics.get("fit_cpu_s", 0.0))
                  for p in points if p.status == "ok" and p.metrics.get("fit_wall_s", 0) > 0)
    if len({r for r, _, _ in good}) < 2:
        return None
    x, y = np.log([r for r, _, _ in good]), np.log([t for _, t, _ in good])
    k = float(np.polyfit(x, y, 1)[0])
    k_last = float((y[-1] - y[-2]) / (x[-1] - x[-2])) if x[-1] != x[-2] else k
    cpu = [c for _, _, c in good]
    k_cpu = float(np.polyfit(x, np.log(cpu), 1)[0]) if min(cpu) > 0 else float("nan")
    rows, seconds, _ = good[-1]
    return Growth(pipeline, k, k_last, int(rows * 10), float(seconds * 10 ** k), len(good), k_cpu)


# ------------------------------------------------------------------ one point, in its own process


def measure_point(spec: PointSpec) -> dict[str, float]:
    """Fit on the subsample, score on the fixed test set, time a batch prediction."""
    import gc

    import numpy as np

    from bench import measure
    from bench.discovery import load_module
    from bench.metrics import score_all
    from bench.splits import make_split
    from bench.tasks import cached_data, load_task

    task = load_task(Path(spec.task_path))
    data = cached_data(task)
    split = make_split(data, spec.seed)
    train = subsample(split.train, data.y.to_numpy(), spec.rows, spec.seed, task.kind != "regression")
    X_train, y_train = data.X.iloc[train], data.y.iloc[train]
    X_test, y_test = data.X.iloc[split.test], data.y.iloc[split.test]
    module = load_module(spec.pipeline)
    measure.pin_framework_threads(spec.threads)
    pipe = module.Pipeline()
    gc.collect()
    with measure.RssSampler() as memory:
        info = data.info(seed=spec.seed, threads=spec.threads, budget_s=spec.budget_s,
                         deadline=time.monotonic() + spec.budget_s)
        with measure.timed() as fit:
            pipe.fit(X_train, y_train, info)
    pred = np.asarray(pipe.predict(X_test))
    proba = np.asarray(pipe.predict_proba(X_test)) if task.kind != "regression" else None
    scores = score_all(task.kind, y_test, pred, proba, data.classes, task.positive_label)
    rng = np.random.default_rng(spec.seed)
    batch = X_test.iloc[rng.integers(0, len(X_test), size=spec.batch_rows)]
    throughput = measure.batch_throughput(pipe.predict, batch, len(batch), repeats=3, max_seconds=10)
    return {"train_rows": float(len(train)), "test_rows": float(len(X_test)), "fit_wall_s": fit.wall_s,
            "fit_cpu_s": fit.cpu_s, "peak_rss_mb": memory.peak_over_baseline_mb,
            "batch_rows_per_s": throughput.rows_per_s, "primary_score": scores[task.metric],
            **{f"test_{k}": v for k, v in scores.items()}}


def subsample(train, y, rows: int | None, seed: int, stratify: bool):
    """Nested seeded subsample of the training indices: the first ``rows`` of a fixed permutation (per class,
    in proportion, when stratified); the whole split when ``rows`` is None or not smaller than it."""
    import numpy as np

    if rows is None or rows >= len(train):
        return train
    rng = np.random.default_rng(seed + 7919)
    if not stratify:
        return np.sort(rng.permutation(train)[:rows])
    labels = y[train]
    parts = []
    for label in sorted(set(labels.tolist()), key=str):
        members = rng.permutation(train[labels == label])
        take = max(2, round(rows * len(members) / len(train)))
        parts.append(members[:take])
    return np.sort(np.concatenate(parts))


def point_main(folder: Path) -> None:
    """A point's entry function on the child protocol (``bench.scale:point_main``)."""
    from bench.execution.child import read_spec, write_result

    spec = read_spec(folder)
    spec.pop("cores", None)
    write_result(folder, measure_point(PointSpec(**spec)))


def run_point(spec: PointSpec, time_limit_s: float, root: Path, memory_limit_mb: float = float("inf")) -> Point:
    """One point as a child of the execution protocol: a fresh process with pinned threads, killed (with its
    children) past the time or memory limit, its end classified like every other run's."""
    from bench.execution import child
    from bench.measure import thread_env

    folder = Path(tempfile.mkdtemp(prefix=f"{spec.pipeline}-{spec.rows or 'full'}-", dir=root))
    child.write_spec(folder, asdict(spec))
    limits = child.Limits(time_limit_s, memory_limit_mb)
    handle = child.start_fresh("bench.scale:point_main", folder, os.environ | thread_env(spec.threads))
    end = child.classify(handle, child.supervise(handle, limits), limits)
    shutil.rmtree(folder, ignore_errors=True)
    if end.ok:
        return Point(spec.pipeline, spec.rows, "ok", end.result)
    status = "timeout" if end.cause == "timeout" else "failed"
    return Point(spec.pipeline, spec.rows, status, error=end.message, cause=end.cause)


# ------------------------------------------------------------------ the sweep, logged to MLflow


def run_sweep(task, pipelines: list[str], sizes: list[int | None], uri: str, seed: int = 0, budget_s: float = 60.0,
              threads: int = 1, time_limit_s: float = 900.0, batch_rows: int = 10_000,
              on_point: Callable[[Point], None] = lambda _: None, memory_limit_mb: float = float("inf")) -> Sweep:
    """Every pipeline at every size, smallest first; logs to ``scale-<task>`` as it goes.

    Example:
        >>> sweep = run_sweep(resolve_task("flights"), ["sklearn_hgb"], [1000, 10000, None],
        ...                   "sqlite:///mlflow/mlflow.db")  # doctest: +SKIP
        >>> sweep.growth["sklearn_hgb"].exponent  # doctest: +SKIP
    """
    from bench import tracking
    from bench.splits import make_split
    from bench.tasks import cached_data

    make_split(cached_data(task), seed)  # load and cache the data once, validate the split, before any point
    experiment = f"scale-{task.name}"
    exp_id = tracking.experiment_id(uri, experiment)
    root = Path(tempfile.mkdtemp(prefix=f"bench-scale-{task.name}-"))
    points: list[Point] = []
    fits: dict[str, Growth] = {}
    run_ids: dict[str, str] = {}
    for pipeline in pipelines:
        run_id = _start_run(uri, exp_id, task, pipeline, sizes, seed, budget_s, threads)
        run_ids[pipeline] = run_id
        mine: list[Point] = []
        try:
            for rows in sizes:
                if mine and mine[-1].cause in ("timeout", "memory"):
                    point = Point(pipeline, rows, "skipped", error=f"a smaller size ran past its {mine[-1].cause} "
                                  "limit")
                else:
                    spec = PointSpec(str(task.path), pipeline, rows, seed, budget_s, threads, batch_rows)
                    point = run_point(spec, time_limit_s, root, memory_limit_mb)
                mine.append(point)
                _log_point(uri, run_id, point)
                on_point(point)
        except BaseException:
            _client(uri).set_terminated(run_id, "KILLED")
            shutil.rmtree(root, ignore_errors=True)
            raise
        points += mine
        fit = growth(pipeline, mine)
        if fit:
            fits[pipeline] = fit
        _finish_run(uri, run_id, mine, fit)
    shutil.rmtree(root, ignore_errors=True)
    return Sweep(task.name, experiment, points, fits, run_ids)


def _client(uri: str):
    from bench import tracking

    return tracking._client(uri)


def _start_run(uri: str, exp_id: str, task, pipeline: str, sizes: list[int | None], seed: int, budget_s: float,
               threads: int) -> str:
    from bench.discovery import source_hash, technology_of
    from bench.environment import machine, versions

    info = machine()
    tags = {"task": task.name, "pipeline": pipeline, "technology": technology_of(pipeline), "kind": "scale",
            "seed": str(seed), "task_hash": task.definition_hash, "pipeline_hash": source_hash(pipeline),
            "cpu_model": info["cpu_model"], "git_revision": info["git_revision"],
            "mlflow.runName": f"{pipeline}-scale"}
    client = _client(uri)
    run_id = client.create_run(exp_id, run_name=f"{pipeline}-scale", tags=tags).info.run_id
    params = {"rows": ",".join(str(s or "full") for s in sizes), "budget_s": budget_s, "threads": threads,
              "growth_fit": "least squares of log(fit_wall_s) on log(train_rows)",
              "projection": "fit_wall_s at the largest size x 10^scale_exponent",
              "subsample": "nested seeded subsample of the training split, stratified; fixed test set",
              "cpu_count": info["cpu_count"], "memory_gb": info["memory_gb"]}
    params |= {f"version.{k}": v for k, v in versions().items()}
    for key, value in params.items():
        client.log_param(run_id, key, str(value))
    return run_id


def _log_point(uri: str, run_id: str, point: Point) -> None:
    client = _client(uri)
    if point.status != "ok":
        client.set_tag(run_id, f"point_{point.requested or 'full'}", f"{point.status}: {point.error}"[:5000])
        return
    step = int(point.metrics["train_rows"])
    for key, value in point.metrics.items():
        if math.isfinite(value):
            client.log_metric(run_id, key, float(value), step=step)


def _finish_run(uri: str, run_id: str, points: list[Point], fit: Growth | None) -> None:
    client = _client(uri)
    client.log_text(run_id, table_csv(points), "scale_points.csv")
    if fit is None:
        client.set_tag(run_id, "error", "fewer than two sizes measured: no growth exponent")
        client.set_terminated(run_id, "FAILED")
        return
    for key, value in {"scale_exponent": fit.exponent, "scale_exponent_last": fit.exponent_last,
                       "scale_exponent_cpu": fit.exponent_cpu,
                       "projected_fit_s_10x": fit.projected_fit_s, "projected_rows_10x": fit.projected_rows,
                       "max_rows": fit.projected_rows / 10, "scale_points": fit.points}.items():
        if math.isfinite(value):
            client.log_metric(run_id, key, float(value))
    client.set_terminated(run_id, "FINISHED")


# ------------------------------------------------------------------ output


def table_csv(points: list[Point]) -> str:
    lines = ["pipeline,requested_rows,status," + ",".join(POINT_METRICS) + ",error"]
    for p in points:
        values = ",".join(f"{p.metrics[m]:.6g}" if m in p.metrics else "" for m in POINT_METRICS)
        lines.append(f"{p.pipeline},{p.requested or 'full'},{p.status},{values},\"{p.error.replace(chr(34), '')}\"")
    return "\n".join(lines) + "\n"


def print_point(point: Point) -> None:
    if point.status == "ok":
        m = point.metrics
        print(f"{point.pipeline} at {int(m['train_rows']):,} rows: fit {m['fit_wall_s']:.2f} s, "
              f"score {m['primary_score']:.4f}", file=sys.stderr)
    else:
        print(f"{point.pipeline} at {point.requested or 'full'} rows: {point.status}: {point.error[:300]}",
              file=sys.stderr)


def print_report(sweep: Sweep) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 130))  # a pipe gets 80 columns: too narrow for the table
    table = Table(title=f"scaling on {sweep.task}: one fresh process per point, same test set")
    for col in ("pipeline", "rows", "fit s", "fit CPU s", "peak MB", "batch rows/s", "score", "status"):
        table.add_column(col, justify="left" if col in ("pipeline", "status") else "right")
    for p in sweep.points:
        m = p.metrics
        cells = [f"{int(m['train_rows']):,}", f"{m['fit_wall_s']:.3g}", f"{m['fit_cpu_s']:.3g}",
                 f"{m['peak_rss_mb']:.0f}", f"{m['batch_rows_per_s']:.3g}", f"{m['primary_score']:.4f}"] \
            if p.status == "ok" else [str(p.requested or "full"), "", "", "", "", ""]
        table.add_row(p.pipeline, *cells, p.status if p.status == "ok" else f"{p.status}: {p.error[:60]}")
    console.print(table)
    fits = Table(title="growth: fit time ~ rows^k (least squares on logs); projection at 10x the largest size")
    for col in ("pipeline", "k", "k (last step)", "k (CPU s)", "points", "10x rows", "projected fit s"):
        fits.add_column(col, justify="left" if col == "pipeline" else "right")
    for g in sweep.growth.values():
        fits.add_row(g.pipeline, f"{g.exponent:.2f}", f"{g.exponent_last:.2f}", f"{g.exponent_cpu:.2f}", str(g.points),
                     f"{g.projected_rows:,}", f"{g.projected_fit_s:.3g}")
    console.print(fits)
    for pipeline in sweep.run_ids:
        if pipeline not in sweep.growth:
            console.print(f"{pipeline}: fewer than two sizes measured, no exponent")
    console.print(f"logged to MLflow experiment '{sweep.experiment}' (rows as the step; kind=scale runs)")


