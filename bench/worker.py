"""One job in its own process: fit, predict, measure, save, then log to MLflow.

Started by the runner as ``python -m bench.worker JOB_DIR`` with the thread count already in the
environment, so every native pool is pinned before numpy or a framework loads. It writes
``result.json`` as soon as the measurements exist (before MLflow is even imported), so a failure while
logging loses nothing; on an exception it writes ``error.json`` with the traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class JobSpec:
    """Everything a worker needs; written as ``job.json`` into the job's own folder."""

    task_path: str
    pipeline: str
    seed: int
    budget_s: float
    threads: int
    run_id: str | None = None
    tracking_uri: str | None = None
    latency_n: int = 1000
    latency_warmup: int = 50
    batch_rows: int = 10_000
    batch_repeats: int = 5
    cold_start_repeats: int = 3
    extra_params: dict[str, str] = field(default_factory=dict)

    def write(self, job_dir: Path) -> None:
        (job_dir / "job.json").write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, job_dir: Path) -> JobSpec:
        return cls(**json.loads((job_dir / "job.json").read_text()))


def run_job(spec: JobSpec, job_dir: Path) -> dict[str, Any]:
    """Fit and measure; returns ``{"metrics", "params", "tags"}`` and writes it to ``result.json``."""
    import gc

    import numpy as np

    from bench import measure
    from bench.api import BasePipeline
    from bench.metrics import constant_predictions, score_all
    from bench.pipelines import load_module
    from bench.splits import make_split
    from bench.tasks import cached_data, load_task

    task = load_task(Path(spec.task_path))
    data = cached_data(task)
    split = make_split(data, spec.seed)
    X_train, X_test = data.X.iloc[split.train], data.X.iloc[split.test]
    y_train, y_test = data.y.iloc[split.train], data.y.iloc[split.test]

    t0 = time.perf_counter()
    module = load_module(spec.pipeline)
    import_s = time.perf_counter() - t0
    measure.pin_framework_threads(spec.threads)
    pipe = module.Pipeline()

    gc.collect()
    with measure.RssSampler() as memory:
        deadline = time.monotonic() + spec.budget_s
        info = data.info(seed=spec.seed, threads=spec.threads, budget_s=spec.budget_s, deadline=deadline)
        with measure.timed() as fit:
            pipe.fit(X_train, y_train, info)

    pred = np.asarray(pipe.predict(X_test))
    proba = np.asarray(pipe.predict_proba(X_test)) if task.kind != "regression" else None
    if proba is not None and proba.shape != (len(X_test), len(data.classes)):
        raise ValueError(f"predict_proba returned shape {proba.shape}, expected ({len(X_test)}, "
                         f"{len(data.classes)}) with columns in the order of TaskInfo.classes")
    scores = score_all(task.kind, y_test, pred, proba, data.classes, task.positive_label)
    const_pred, const_proba = constant_predictions(task.kind, y_train, len(y_test), data.classes)
    baseline = score_all(task.kind, y_test, const_pred, const_proba, data.classes, task.positive_label)

    rng = np.random.default_rng(spec.seed)
    batch = X_test.iloc[rng.integers(0, len(X_test), size=max(spec.batch_rows, len(X_test)))]
    throughput = measure.batch_throughput(pipe.predict, batch, len(batch), repeats=spec.batch_repeats)

    rows = [X_test.iloc[[i]] for i in range(min(len(X_test), spec.latency_n))]
    online = measure.single_row_latency(pipe.predict, rows, n=spec.latency_n, warmup=spec.latency_warmup)
    has_model_path = type(pipe).encode is not BasePipeline.encode
    if has_model_path:
        encoded = [pipe.encode(r) for r in rows]
        model_path = measure.single_row_latency(pipe.predict_encoded, encoded, n=spec.latency_n,
                                                warmup=spec.latency_warmup)
    else:
        model_path = online

    model_dir = job_dir / "model"
    model_dir.mkdir(exist_ok=True)
    pipe.save(model_dir)
    cold = _cold_start(spec, model_dir, X_test.iloc[[0]], job_dir)

    from bench.measure import code_effort
    from bench.pipelines import source_file

    metrics: dict[str, float] = {f"test_{k}": v for k, v in scores.items()}
    metrics |= {"primary_score": scores[task.metric], "primary_constant": baseline[task.metric],
                "fit_wall_s": fit.wall_s, "fit_cpu_s": fit.cpu_s, "budget_used_frac": fit.wall_s / spec.budget_s,
                "import_s": import_s, "peak_rss_mb": memory.peak_over_baseline_mb,
                "baseline_rss_mb": memory.baseline / 2**20,
                "batch_rows_per_s": throughput.rows_per_s, "batch_rows": throughput.rows,
                "batch_repeats": throughput.repeats,
                "model_bytes": measure.directory_bytes(model_dir),
                "online_learning": float(getattr(pipe, "supports_online_learning", False))}
    metrics |= online.as_metrics("latency") | model_path.as_metrics("model_latency") | cold
    metrics |= code_effort(source_file(spec.pipeline))
    if (n_params := pipe.n_parameters()) is not None:
        metrics["n_parameters"] = float(n_params)
    params = {f"hp.{k}": v for k, v in pipe.get_params().items()}
    params |= {f"chosen.{k}": v for k, v in (getattr(pipe, "best_config_", None) or {}).items()}
    params |= {"n_train": len(X_train), "n_test": len(X_test), "n_features": X_train.shape[1],
               "latency_protocol": f"single row, {online.warmup} warm-up + {online.n} timed calls, "
                                   "perf_counter_ns, GC off",
               "batch_protocol": f"{throughput.rows} rows resampled from test, median of {throughput.repeats}",
               "memory_protocol": "RSS sampled every 5 ms during fit, minus post-import baseline",
               "latency_model_path": "encode() outside timing, predict_encoded()" if has_model_path
               else "same as end to end (no separate encode step)"} | spec.extra_params
    tags = {"split_hash": split.hash, "status_detail": "ok"}
    if fit.wall_s > spec.budget_s:
        tags["over_budget"] = "true"
    result = {"metrics": metrics, "params": {k: str(v)[:500] for k, v in params.items()}, "tags": tags}
    (job_dir / "result.json").write_text(json.dumps(result, indent=1, default=str))
    return result | {"_pipe": pipe, "_model_dir": model_dir, "_technology": module.Pipeline.technology}


def _cold_start(spec: JobSpec, model_dir: Path, row: Any, job_dir: Path) -> dict[str, float]:
    """Median over repeats of a fresh process importing the framework, loading the model, predicting once."""
    import numpy as np

    row_file = job_dir / "cold_row.parquet"
    row.to_parquet(row_file)
    walls, inside = [], []
    for _ in range(spec.cold_start_repeats):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bench.coldstart", spec.pipeline, str(model_dir),
                               str(row_file)], capture_output=True, text=True, timeout=300)
        walls.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start probe failed: {proc.stderr.strip().splitlines()[-1:]}")
        inside.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {"cold_start_s": float(np.median(walls)), "cold_start_n": float(len(walls)),
            "cold_import_s": float(np.median([d["import_s"] for d in inside])),
            "cold_load_s": float(np.median([d["load_s"] for d in inside])),
            "cold_first_predict_ms": float(np.median([d["first_predict_ms"] for d in inside]))}


def main(job_dir: Path) -> int:
    spec = JobSpec.read(job_dir)
    try:
        result = run_job(spec, job_dir)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the record, with its traceback
        (job_dir / "error.json").write_text(json.dumps({
            "cause": "exception", "type": type(exc).__name__, "message": str(exc)[:2000],
            "traceback": traceback.format_exc()}))
        return 1
    if spec.run_id:
        from bench import tracking

        tracking.log_job_result(spec.tracking_uri, spec.run_id, result)
        tracking.log_job_model(spec.tracking_uri, spec.run_id, result["_pipe"], result["_technology"],
                               result["_model_dir"])
        (job_dir / "logged").write_text("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
