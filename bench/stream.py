"""Offline versus online learning on a stream: the prequential (test-then-train) protocol.

``bench stream --task drift_stream --pipelines sklearn_sgd,torch_mlp --strategies static,periodic,incremental``

- A stream task (``stream:`` in its YAML) cuts its rows into periods, by a period column (flights by month,
  the column is then no feature) or by row counts, optionally sorted by an ``order`` column and sampled per
  period (seeded). The first ``initial_periods`` train the initial model.
- Prequential by construction: for each later period ``t`` the current model scores period ``t`` first; only
  then may the strategy learn from it. A model that scores period ``t`` has seen periods ``< t`` only.
- Strategies: ``static`` fits once on the initial periods; ``periodic`` (the offline schedule) refits from
  scratch every ``retrain_every`` periods on all data so far or on the last ``window`` periods; ``incremental``
  (online learning) calls ``pipeline.update(X_t, y_t)`` after scoring each period. A pipeline without
  ``supports_online_learning`` gets a "no incremental path" row instead. Nothing is learned after the last
  period: no period is left to score with it.
- Per period (MLflow step = the period): ``quality`` (the task's primary metric), ``constant_quality`` (the
  training prior's score), ``update_wall_s``, ``update_cpu_s``, ``update_rows`` (rows given to fit/update),
  ``model_bytes`` (saved size after the update). Overall: ``mean_quality``; ``pre_drift_quality`` (mean over
  the scored periods before the first known drift: the quality on a concept the model was trained on); per
  known drift ``d`` the mean quality over periods ``d .. d+drift_window-1`` (``post_drift_quality``), the
  recovery (periods from ``d`` to the first period, before the next drift, within 5 % of the pre-drift
  quality; tag ``recovery`` lists them, "never" where it did not recover, and metric ``recovery_periods`` is
  the largest when every drift recovered); ``drift_quality``: the share of its pre-drift edge over the constant
  predictor a pipeline keeps after the drift, ``(post - constant) / (pre - constant)`` clipped to [0, 1], so
  it is comparable across tasks and metrics; ``total_update_s`` and ``update_ms`` (update wall time per new
  row absorbed: a periodic refit on 30k rows to take in 3k new ones costs 10x per row what it costs per row
  trained).
- Each (pipeline, strategy, seed) runs in its own process with pinned threads, a time limit and an RSS
  limit (the runner's supervisor). A failure is a FAILED run with its cause; the periods measured before it
  are logged all the same. Runs go to experiment ``stream-<task>`` tagged ``kind=stream`` and ``strategy``;
  ``bench matrix`` reads ``update_ms`` and ``drift_quality`` from the ``incremental`` runs (the online
  strategy, :data:`FEED_STRATEGY`). A ``stream-summary`` run holds the table and the plot.

Each job is the entry function ``bench.stream:job_main`` run by the execution protocol (``bench.execution``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError, TaskError

STRATEGIES = ("static", "periodic", "incremental")
FEED_STRATEGY = "incremental"  # the strategy whose update_ms and drift_quality feed the decision matrix
PROTOCOL_VERSION = "stream-1"
RECOVERY_TOLERANCE = 0.05
POINT_METRICS = ("quality", "constant_quality", "update_wall_s", "update_cpu_s", "update_rows", "model_bytes")


# ------------------------------------------------------------------ the stream and the protocol (in process)


@dataclass(frozen=True)
class Stream:
    """A stream task's rows in time order, with each row's period position (0 .. n_periods-1)."""

    data: Any  # TaskData without the period column
    position: np.ndarray
    labels: list[Any]  # the period of each position, as the task names it (month 3, period 8)
    initial: int
    drifts: list[int]  # positions
    drift_window: int

    @property
    def n_periods(self) -> int:
        return len(self.labels)


def load_stream(task, data=None) -> Stream:
    """Cut a stream task's data into periods (validated against the data: errors name file and field)."""
    import pandas as pd

    from bench.tasks import cached_data

    cfg = task.stream
    if not cfg:
        raise TaskError("not a stream task: add a 'stream:' section (period or rows, initial_periods)",
                        file=task.path, field="stream")
    data = data or cached_data(task)
    X, y = data.X, data.y
    for key in ("order", "period"):
        if key in cfg and cfg[key] not in X.columns:
            raise TaskError(f"column {cfg[key]!r} is not among the prepared features ({', '.join(X.columns)})",
                            file=task.path, field=f"stream.{key}")
    if "order" in cfg:
        keys = X[cfg["order"]]
        order = np.argsort(keys.cat.codes.to_numpy() if hasattr(keys, "cat") else keys.to_numpy(), kind="stable")
        X, y = X.iloc[order], y.iloc[order]
    if "period" in cfg:
        values = X[cfg["period"]]
        keep = values.notna().to_numpy()
        X, y, values = X[keep], y[keep], values[keep]
        labels = sorted(pd.unique(values).tolist())
        position = pd.Index(labels).get_indexer(values)
        X = X.drop(columns=cfg["period"])
        data = replace(data, numeric=tuple(c for c in data.numeric if c != cfg["period"]),
                       categorical=tuple(c for c in data.categorical if c != cfg["period"]))
    else:
        position = np.arange(len(X)) // cfg["rows"]
        labels = list(range(int(position.max()) + 1))
    labels = [int(v) if isinstance(v, float) and v.is_integer() else v for v in labels]
    if "sample_per_period" in cfg:
        rng = np.random.default_rng(cfg.get("seed", 0))
        take = [np.sort(rng.permutation(np.flatnonzero(position == p))[:cfg["sample_per_period"]])
                for p in range(len(labels))]
        rows = np.sort(np.concatenate(take))
        X, y, position = X.iloc[rows], y.iloc[rows], position[rows]
    if len(labels) <= cfg["initial_periods"]:
        raise TaskError(f"the stream has {len(labels)} periods: initial_periods must leave at least one to score",
                        file=task.path, field="stream.initial_periods")
    unknown = [d for d in cfg.get("drifts", []) if d not in labels]
    if unknown:
        raise TaskError(f"drift periods {unknown} are not periods of the stream ({labels[0]} .. {labels[-1]})",
                        file=task.path, field="stream.drifts")
    data = replace(data, X=X.reset_index(drop=True), y=y.reset_index(drop=True))
    return Stream(data, np.asarray(position), labels, cfg["initial_periods"],
                  [labels.index(d) for d in cfg.get("drifts", [])], cfg.get("drift_window", 3))


@dataclass
class PeriodResult:
    position: int
    period: Any
    rows: int
    quality: float
    constant_quality: float
    update: str = ""  # "" (none), "refit" or "update"
    update_wall_s: float = 0.0
    update_cpu_s: float = 0.0
    update_rows: int = 0  # rows given to fit/update
    new_rows: int = 0  # rows not learned before, absorbed by this update
    model_bytes: float = math.nan


def _score(pipe, X, y, y_seen, data) -> tuple[float, float]:
    """The primary metric of the model and of the constant predictor (prior of the labels seen so far)."""
    from bench.metrics import constant_predictions, score_all

    task = data.task
    proba = np.asarray(pipe.predict_proba(X)) if task.kind != "regression" else None
    pred = np.asarray(pipe.predict(X))
    const_pred, const_proba = constant_predictions(task.kind, y_seen, len(y), data.classes)
    out = []
    for p, q in ((pred, proba), (const_pred, const_proba)):
        try:
            with np.errstate(all="ignore"):
                out.append(score_all(task.kind, y, p, q, data.classes, task.positive_label)[task.metric])
        except ValueError:  # e.g. AUC of a period holding one class only
            out.append(math.nan)
    return out[0], out[1]


def prequential(make_pipe: Callable[[], Any], stream: Stream, strategy: str, info: Callable[[str], Any], *,
                retrain_every: int = 1, window: int | None = None,
                model_bytes: Callable[[Any], float] = lambda _: math.nan,
                on_period: Callable[[PeriodResult], None] = lambda _: None) -> tuple[dict[str, float], list]:
    """Test, then train, period by period. ``info("fit")`` / ``info("update")`` give a TaskInfo with a fresh
    deadline. Returns the initial fit's figures and one ``PeriodResult`` per scored period.

    Example:
        >>> initial, periods = prequential(Pipeline, load_stream(task), "incremental",
        ...                                lambda kind: data.info(0, 1, 5.0))  # doctest: +SKIP
    """
    from bench.measure import timed

    if strategy not in STRATEGIES:
        raise BenchError(f"unknown strategy {strategy!r}; expected {', '.join(STRATEGIES)}", field="--strategies")
    X, y, pos = stream.data.X, stream.data.y, stream.position
    first = pos < stream.initial
    pipe = make_pipe()
    with timed() as fit:
        pipe.fit(X[first], y[first], info("fit"))
    initial = {"initial_fit_wall_s": fit.wall_s, "initial_fit_cpu_s": fit.cpu_s,
               "initial_rows": float(first.sum()), "initial_model_bytes": model_bytes(pipe)}
    learned_until = stream.initial  # every period below this one has been learned from
    last_refit = stream.initial - 1
    results = []
    for t in range(stream.initial, stream.n_periods):
        rows = pos == t
        assert learned_until <= t  # prequential: the scoring model has never seen period t
        quality, constant = _score(pipe, X[rows], y[rows], y[pos < t], stream.data)
        result = PeriodResult(t, stream.labels[t], int(rows.sum()), quality, constant)
        if t < stream.n_periods - 1:  # nothing learned after the last period: nothing is left to score
            if strategy == "periodic" and t - last_refit >= retrain_every:
                lo = max(0, t + 1 - window) if window else 0
                train = (pos >= lo) & (pos <= t)
                result.update, result.update_rows = "refit", int(train.sum())
                result.new_rows = int(((pos > last_refit) & (pos <= t)).sum())
                pipe = make_pipe()
                with timed() as cost:
                    pipe.fit(X[train], y[train], info("fit"))
                last_refit, learned_until = t, t + 1
            elif strategy == "incremental":
                result.update, result.update_rows, result.new_rows = "update", int(rows.sum()), int(rows.sum())
                with timed() as cost:
                    pipe.update(X[rows], y[rows], info("update"))
                learned_until = t + 1
            if result.update:
                result.update_wall_s, result.update_cpu_s = cost.wall_s, cost.cpu_s
                result.model_bytes = model_bytes(pipe)
        results.append(result)
        on_period(result)
    return initial, results


def summarise(periods: list[PeriodResult], stream: Stream, higher_is_better: bool = True) -> dict[str, Any]:
    """Mean quality, post-drift quality, recovery periods, drift_quality and update costs."""
    by_pos = {p.position: p for p in periods}
    quality = np.array([p.quality for p in periods], dtype=float)
    out: dict[str, Any] = {"mean_quality": float(np.nanmean(quality)) if np.isfinite(quality).any() else math.nan}
    updates = [p for p in periods if p.update]
    out["total_update_s"] = float(sum(p.update_wall_s for p in updates))
    out["total_update_cpu_s"] = float(sum(p.update_cpu_s for p in updates))
    out["updates"] = float(len(updates))
    new_rows = sum(p.new_rows for p in updates)
    out["update_ms"] = 1000 * out["total_update_s"] / new_rows if new_rows else math.nan
    sign = 1.0 if higher_is_better else -1.0
    post, kept, recovery = [], [], []
    # The reference is the quality on the first concept, before any drift: the level a strategy that keeps
    # up with the concept returns to (a strategy that never recovered from drift 1 must not "recover" at 2).
    before = [by_pos[t] for t in range(stream.initial, stream.drifts[0] if stream.drifts else 0)
              if t in by_pos and np.isfinite(by_pos[t].quality)]
    ends = [*stream.drifts[1:], stream.n_periods]  # a drift's recovery must come before the next drift
    for d, end in zip(stream.drifts, ends[:len(stream.drifts)], strict=True):
        after = [by_pos[t] for t in range(d, min(d + stream.drift_window, stream.n_periods)) if t in by_pos]
        if not before or not after:
            continue
        pre = float(np.mean([p.quality for p in before]))
        pre_const = float(np.mean([p.constant_quality for p in before]))
        post_q = float(np.nanmean([p.quality for p in after]))
        post_const = float(np.nanmean([p.constant_quality for p in after]))
        post.append(post_q)
        edge = sign * (pre - pre_const)
        kept.append(min(1.0, max(0.0, sign * (post_q - post_const) / edge)) if edge > 0 else math.nan)
        target = pre * (1 - sign * RECOVERY_TOLERANCE)
        back = [t for t in range(d, end) if t in by_pos and sign * (by_pos[t].quality - target) >= 0]
        recovery.append(back[0] - d if back else None)
    if before:
        out["pre_drift_quality"] = float(np.mean([p.quality for p in before]))
    if post:
        out["post_drift_quality"] = float(np.mean(post))
        out["drift_quality"] = float(np.nanmean(kept)) if np.isfinite(kept).any() else math.nan
        out["recovery"] = recovery
    return out


# ------------------------------------------------------------------ one job, in its own process


@dataclass
class StreamSpec:
    task_path: str
    pipeline: str
    strategy: str
    seed: int = 0
    budget_s: float = 10.0
    update_budget_s: float = 5.0
    retrain_every: int = 1
    window: int | None = None
    threads: int = 1


def run_job(spec: StreamSpec, job_dir: Path) -> dict[str, Any]:
    """The prequential loop for one pipeline x strategy x seed; periods are appended to ``periods.jsonl`` as
    they are measured, so a job killed half-way keeps them."""
    from bench import measure
    from bench.metrics import METRICS
    from bench.pipelines import load_module
    from bench.tasks import load_task

    task = load_task(Path(spec.task_path))
    stream = load_stream(task)
    module = load_module(spec.pipeline)
    measure.pin_framework_threads(spec.threads)
    budgets = {"fit": spec.budget_s, "update": spec.update_budget_s}

    def info(kind: str):
        return stream.data.info(seed=spec.seed, threads=spec.threads, budget_s=budgets[kind],
                                deadline=time.monotonic() + budgets[kind])

    def model_bytes(pipe) -> float:
        folder = Path(tempfile.mkdtemp(dir=job_dir))
        try:
            pipe.save(folder)
            return float(measure.directory_bytes(folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    log = (job_dir / "periods.jsonl").open("a")

    def on_period(result: PeriodResult) -> None:
        log.write(json.dumps(asdict(result), default=str) + "\n")
        log.flush()

    with log:
        initial, periods = prequential(lambda: module.Pipeline(), stream, spec.strategy, info,
                                       retrain_every=spec.retrain_every, window=spec.window,
                                       model_bytes=model_bytes, on_period=on_period)
    summary = summarise(periods, stream, METRICS[task.metric].greater_is_better) | initial
    result = {"summary": summary, "drifts": [stream.labels[d] for d in stream.drifts],
              "n_periods": stream.n_periods, "initial_periods": stream.initial}
    from bench.execution.child import write_result

    write_result(job_dir, result)
    return result


def job_main(folder: Path) -> None:
    """The stream job's entry function on the child protocol (``bench.stream:job_main``)."""
    from bench.execution.child import read_spec

    spec = read_spec(folder)
    spec.pop("cores", None)
    run_job(StreamSpec(**spec), folder)


# ------------------------------------------------------------------ the sweep (parent process)


@dataclass
class StreamConfig:
    """The stream settings plus the limits each job child runs under (its time limit is per job: see
    :func:`time_limit`)."""

    tracking_uri: str
    budget_s: float = 10.0
    update_budget_s: float = 5.0
    retrain_every: int = 1
    window: int | None = None
    threads: int = 1
    seeds: int = 1
    time_margin_s: float = 120.0
    memory_limit_mb: float = field(default_factory=lambda: 0.6 * __import__("psutil").virtual_memory().total / 2**20)
    out: Path = Path("results")


@dataclass
class StreamOutcome:
    pipeline: str
    strategy: str
    seed: int
    status: str  # finished | failed | no incremental path
    periods: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    run_id: str | None = None
    seconds: float = 0.0
    cause: str = ""  # the execution protocol's failure cause when it failed


def supports_online_learning(pipeline: str) -> bool:
    """``supports_online_learning = True`` in the pipeline's class, read from its source (no framework import)."""
    import ast

    from bench.pipelines import source_file

    for node in ast.walk(ast.parse(source_file(pipeline).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef) and node.name == "Pipeline":
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
                        and stmt.targets[0].id == "supports_online_learning"
                        and isinstance(stmt.value, ast.Constant)):
                    return bool(stmt.value.value)
    return False


def job_key(task, spec: StreamSpec) -> str:
    from bench import environment
    from bench.pipelines import source_hash

    parts = asdict(spec) | {"task_path": task.definition_hash, "source": source_hash(spec.pipeline),
                            "versions": environment.versions(), "protocol": PROTOCOL_VERSION}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def time_limit(spec: StreamSpec, n_periods: int, initial: int, margin_s: float) -> float:
    """Every fit and update at its budget, plus a margin for start-up and saving models."""
    learned = n_periods - initial - 1
    per = {"static": 0.0, "periodic": spec.budget_s, "incremental": spec.update_budget_s}[spec.strategy]
    return spec.budget_s + learned * per * 1.5 + margin_s


def run_stream_job(task, spec: StreamSpec, config: StreamConfig, exp_id: str, n_periods: int,
                   initial: int) -> StreamOutcome:
    """One job as a child of the execution protocol (its time and memory limits, the same failure causes),
    logged as one MLflow run; the periods measured before a failure are logged all the same."""
    from bench import tracking
    from bench.execution import child
    from bench.measure import thread_env

    if spec.strategy == "incremental" and not supports_online_learning(spec.pipeline):
        return StreamOutcome(spec.pipeline, spec.strategy, spec.seed, "no incremental path",
                             message="no update(): retrain-only (periodic is its online answer)")
    run_id = tracking.create_run(config.tracking_uri, exp_id, f"{spec.pipeline}-{spec.strategy}-s{spec.seed}",
                                 _tags(task, spec), _params(spec, config))
    folder = Path(tempfile.mkdtemp(prefix=f"stream-{spec.pipeline}-{spec.strategy}-"))
    child.write_spec(folder, asdict(spec))
    limits = child.Limits(time_limit(spec, n_periods, initial, config.time_margin_s), config.memory_limit_mb)
    try:
        handle = child.start_fresh("bench.stream:job_main", folder, os.environ | thread_env(spec.threads))
        end = child.classify(handle, child.supervise(handle, limits), limits)
    except BaseException:  # interrupted: keep what was measured, mark the run killed
        _log_periods(config.tracking_uri, run_id, folder)
        tracking.fail_run(config.tracking_uri, run_id, "interrupted", "the sweep was interrupted", "", killed=True)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    outcome = StreamOutcome(spec.pipeline, spec.strategy, spec.seed, "finished", run_id=run_id, seconds=end.wall_s)
    outcome.periods = _log_periods(config.tracking_uri, run_id, folder)
    if end.ok:
        outcome.summary = end.result["summary"]
        _log_summary(config.tracking_uri, run_id, end.result)
        tracking.finish_run(config.tracking_uri, run_id)
    else:
        outcome.status, outcome.message, outcome.cause = "failed", end.message, end.cause
        outcome.summary = _partial_summary(outcome.periods)
        tracking.fail_run(config.tracking_uri, run_id, end.cause, end.message, end.trace)
    shutil.rmtree(folder, ignore_errors=True)
    return outcome


def _tags(task, spec: StreamSpec) -> dict[str, str]:
    from bench.environment import machine
    from bench.pipelines import source_hash, technology_of

    info = machine()
    return {"task": task.name, "pipeline": spec.pipeline, "technology": technology_of(spec.pipeline),
            "strategy": spec.strategy, "seed": str(spec.seed), "kind": "stream", "job_key": job_key(task, spec),
            "task_hash": task.definition_hash, "pipeline_hash": source_hash(spec.pipeline),
            "cpu_model": info["cpu_model"], "git_revision": info["git_revision"],
            "matrix_feed": str(spec.strategy == FEED_STRATEGY).lower()}


def _params(spec: StreamSpec, config: StreamConfig) -> dict[str, str]:
    from bench.environment import machine, versions

    info = machine()
    params = {"budget_s": spec.budget_s, "update_budget_s": spec.update_budget_s,
              "retrain_every": spec.retrain_every, "window": spec.window or "all", "threads": spec.threads,
              "protocol_version": PROTOCOL_VERSION, "protocol": "prequential: score period t, then learn it",
              "memory_limit_mb": round(config.memory_limit_mb), "cpu_count": info["cpu_count"],
              "memory_gb": info["memory_gb"], "platform": info["platform"]}
    params |= {f"version.{k}": v for k, v in versions().items()}
    return {k: str(v) for k, v in params.items()}


def _read_periods(job_dir: Path) -> list[dict[str, Any]]:
    path = job_dir / "periods.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _step(period: Any, position: int) -> int:
    return int(period) if isinstance(period, int) else position


def _log_periods(uri: str, run_id: str, job_dir: Path) -> list[dict[str, Any]]:
    from bench import tracking

    periods = _read_periods(job_dir)
    steps = [(_step(p["period"], p["position"]), {k: p[k] for k in POINT_METRICS}) for p in periods]
    with contextlib.suppress(Exception):  # the figures are in the table either way
        tracking.log_steps(uri, run_id, steps)
    return periods


def _partial_summary(periods: list[dict[str, Any]]) -> dict[str, Any]:
    quality = [p["quality"] for p in periods if p["quality"] is not None and math.isfinite(p["quality"])]
    return {"mean_quality": float(np.mean(quality)) if quality else math.nan,
            "total_update_s": float(sum(p["update_wall_s"] for p in periods))}


def _log_summary(uri: str, run_id: str, result: dict[str, Any]) -> None:
    from bench import tracking

    summary = result["summary"]
    metrics = {k: v for k, v in summary.items() if isinstance(v, int | float) and math.isfinite(v)}
    tags = {"drifts": ",".join(map(str, result["drifts"])) or "none",
            "periods": str(result["n_periods"]), "initial_periods": str(result["initial_periods"])}
    if "recovery" in summary:
        tags["recovery"] = recovery_text(summary["recovery"])
        finite = [r for r in summary["recovery"] if r is not None]
        if len(finite) == len(summary["recovery"]):
            metrics["recovery_periods"] = float(max(finite))
    tracking.log_steps(uri, run_id, [], metrics=metrics, tags=tags)


def recovery_text(recovery: list[int | None] | None) -> str:
    if not recovery:
        return ""
    return ", ".join("never" if r is None else str(r) for r in recovery)


def run_sweep(task, pipelines: list[str], strategies: list[str], config: StreamConfig,
              on_job: Callable[[StreamOutcome], None] = lambda _: None) -> list[StreamOutcome]:
    """Every pipeline x strategy x seed, one supervised process each; a failed job is recorded and the rest go on."""
    from bench import tracking

    stream = load_stream(task)  # load, cache and validate the data once, before any job starts
    exp_id = tracking.experiment_id(config.tracking_uri, f"stream-{task.name}")
    outcomes = []
    for seed in range(config.seeds):
        for pipeline in pipelines:
            for strategy in strategies:
                spec = StreamSpec(str(task.path), pipeline, strategy, seed, config.budget_s, config.update_budget_s,
                                  config.retrain_every, config.window, config.threads)
                outcome = run_stream_job(task, spec, config, exp_id, stream.n_periods, stream.initial)
                outcomes.append(outcome)
                on_job(outcome)
    return outcomes


# ------------------------------------------------------------------ output: table, CSV/Markdown, plot


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
        exp_id = tracking.experiment_id(config.tracking_uri, f"stream-{task.name}")
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

    pipelines = list(dict.fromkeys(o.pipeline for o in outcomes if o.periods))
    if not pipelines:
        return False
    fig, axes = plt.subplots(1, len(pipelines), figsize=(4.2 * len(pipelines), 3.4), sharey=True, squeeze=False)
    drifts = task.stream.get("drifts", [])
    for ax, pipeline in zip(axes[0], pipelines, strict=True):
        for strategy in STRATEGIES:
            runs = [o for o in outcomes if o.pipeline == pipeline and o.strategy == strategy and o.periods]
            if not runs:
                continue
            steps = sorted({_step(p["period"], p["position"]) for o in runs for p in o.periods})
            mean = [np.nanmean([p["quality"] if p["quality"] is not None else np.nan for o in runs
                                for p in o.periods if _step(p["period"], p["position"]) == s]) for s in steps]
            ax.plot(steps, mean, marker="o", markersize=3, label=strategy)
        for d in drifts:
            ax.axvline(d, color="grey", linestyle="--", linewidth=1)
        ax.set_title(pipeline)
        ax.set_xlabel("period")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(task.metric)
    axes[0][0].legend()
    fig.suptitle(f"{task.name}: prequential {task.metric} per period (drifts dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


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


