"""The sweep: every pipeline x strategy x seed as a child of the execution protocol, logged to MLflow."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.stream.job import StreamSpec
from bench.stream.protocol import POINT_METRICS, PROTOCOL_VERSION, load_stream


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
    from bench.discovery import class_attribute

    return bool(class_attribute(pipeline, "supports_online_learning", False))


def job_key(task, spec: StreamSpec) -> str:
    from bench import environment
    from bench.discovery import source_hash

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
        handle = child.start_fresh("bench.stream.job:job_main", folder, os.environ | thread_env(spec.threads))
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
    from bench.discovery import source_hash, technology_of
    from bench.environment import machine

    info = machine()
    return {"task": task.name, "pipeline": spec.pipeline, "technology": technology_of(spec.pipeline),
            "strategy": spec.strategy, "seed": str(spec.seed), "kind": "stream", "job_key": job_key(task, spec),
            "task_hash": task.definition_hash, "pipeline_hash": source_hash(spec.pipeline),
            "cpu_model": info["cpu_model"], "git_revision": info["git_revision"]}


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


def period_step(period: Any, position: int) -> int:
    """The MLflow step of a period: its label when it is a number (month 3), else its position."""
    return int(period) if isinstance(period, int) else position


def _log_periods(uri: str, run_id: str, job_dir: Path) -> list[dict[str, Any]]:
    from bench import tracking

    periods = _read_periods(job_dir)
    steps = [(period_step(p["period"], p["position"]), {k: p[k] for k in POINT_METRICS}) for p in periods]
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
    exp_id = tracking.experiment_id(config.tracking_uri, f"stream-{task.name}", task.description)
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
