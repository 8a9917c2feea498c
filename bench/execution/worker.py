"""The suite job's entry function: fit, score, measure, save, in a child of the execution protocol.

Runs as ``bench.execution.worker:job_main`` in a child forked by the pipeline's warm parent (or a fresh interpreter as
a fallback), so the framework is already imported and every thread pool already pinned. It never talks to
MLflow: it writes ``result.json`` (metrics, params, tags, phase timings) and the model folders, and the
supervisor, which has MLflow loaded anyway, logs them in batch.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: MLPerf's early-stopping rule needs about this many calls before it will state a p99 (99 % confidence).
P99_MIN_CALLS = 662


@dataclass
class JobSpec:
    """Everything a job child needs; written as the child's ``spec.json``."""

    task_path: str
    pipeline: str
    seed: int
    budget_s: float
    threads: int
    latency_n: int = 1000
    latency_warmup: int = 50
    latency_cap_s: float = 5.0
    batch_rows: int = 10_000
    batch_repeats: int = 5
    cores: list[int] | None = None
    requested_at: float = 0.0  # time.time() when the supervisor asked for the child (start-up phase)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Phases:
    """Wall seconds per phase, as metrics ``phase_<name>_s``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._t
        self._t = now
        return self.seconds[name]

    def as_metrics(self) -> dict[str, float]:
        return {f"phase_{k}_s": v for k, v in self.seconds.items()}


def job_main(folder: Path) -> None:
    from bench.execution.child import read_spec, write_result

    spec = JobSpec(**read_spec(folder))
    write_result(folder, run_job(spec, folder))


def run_job(spec: JobSpec, folder: Path) -> dict[str, Any]:
    """Fit and measure; returns ``{"metrics", "params", "tags"}`` (the supervisor logs it)."""
    import gc

    import numpy as np

    from bench import measure
    from bench.api import BasePipeline
    from bench.discovery import load_module, source_file
    from bench.metrics import constant_predictions, score_all
    from bench.splits import make_split
    from bench.tasks import cached_data, load_task

    phases = Phases()
    phases.seconds["start"] = max(0.0, time.time() - spec.requested_at) if spec.requested_at else 0.0
    module = load_module(spec.pipeline)  # already imported by the warm parent: free there
    measure.pin_framework_threads(spec.threads)
    phases.lap("imports")
    task = load_task(Path(spec.task_path))
    data = cached_data(task)
    split = make_split(data, spec.seed)
    X_train, X_test = data.X.iloc[split.train], data.X.iloc[split.test]
    y_train, y_test = data.y.iloc[split.train], data.y.iloc[split.test]
    pipe = module.Pipeline()
    gc.collect()
    phases.lap("data")

    with measure.RssSampler() as memory:
        deadline = time.monotonic() + spec.budget_s
        info = data.info(seed=spec.seed, threads=spec.threads, budget_s=spec.budget_s, deadline=deadline)
        with measure.timed() as fit:
            pipe.fit(X_train, y_train, info)
    phases.lap("fit")

    pred = np.asarray(pipe.predict(X_test))
    proba = np.asarray(pipe.predict_proba(X_test)) if task.kind != "regression" else None
    if proba is not None and proba.shape != (len(X_test), len(data.classes)):
        raise ValueError(f"predict_proba returned shape {proba.shape}, expected ({len(X_test)}, "
                         f"{len(data.classes)}) with columns in the order of TaskInfo.classes")
    scores = score_all(task.kind, y_test, pred, proba, data.classes, task.positive_label)
    const_pred, const_proba = constant_predictions(task.kind, y_train, len(y_test), data.classes)
    baseline = score_all(task.kind, y_test, const_pred, const_proba, data.classes, task.positive_label)
    from bench.predictions import PREDICTIONS_FILE, write_predictions  # kept for `bench rescore`

    write_predictions(folder / PREDICTIONS_FILE, kind=task.kind, rows=split.test, y_true=y_test, pred=pred,
                      proba=proba, classes=data.classes, positive_label=task.positive_label, split_hash=split.hash,
                      task=task.name, metric=task.metric)
    phases.lap("scoring")

    rng = np.random.default_rng(spec.seed)
    batch = X_test.iloc[rng.integers(0, len(X_test), size=max(spec.batch_rows, len(X_test)))]
    throughput = measure.batch_throughput(pipe.predict, batch, len(batch), repeats=spec.batch_repeats)
    phases.lap("batch")

    rows = [X_test.iloc[[i]] for i in range(min(len(X_test), spec.latency_n))]
    loop = {"n": spec.latency_n, "warmup": spec.latency_warmup, "cap_s": spec.latency_cap_s,
            "min_n": P99_MIN_CALLS}
    online = measure.single_row_latency(pipe.predict, rows, **loop)
    has_model_path = type(pipe).encode is not BasePipeline.encode
    model_path = measure.single_row_latency(pipe.predict_encoded, [pipe.encode(r) for r in rows],
                                            **loop) if has_model_path else online
    phases.lap("latency")

    model_dir = folder / "model"
    model_dir.mkdir(exist_ok=True)
    pipe.save(model_dir)
    X_test.iloc[[0]].to_parquet(folder / "row.parquet")
    flavour_error = save_flavour_model(pipe, module.Pipeline.technology, folder / "mlflow_model", X_test.iloc[:5])
    phases.lap("save")

    metrics: dict[str, float] = {f"test_{k}": v for k, v in scores.items()}
    metrics |= {"primary_score": scores[task.metric], "primary_constant": baseline[task.metric],
                "fit_wall_s": fit.wall_s, "fit_cpu_s": fit.cpu_s, "budget_used_frac": fit.wall_s / spec.budget_s,
                "peak_rss_mb": memory.peak_over_baseline_mb, "baseline_rss_mb": memory.baseline / 2**20,
                "batch_rows_per_s": throughput.rows_per_s, "batch_rows": throughput.rows,
                "batch_repeats": throughput.repeats, "model_bytes": measure.directory_bytes(model_dir),
                "online_learning": float(getattr(pipe, "supports_online_learning", False))}
    metrics |= online.as_metrics("latency") | model_path.as_metrics("model_latency") | phases.as_metrics()
    metrics |= measure.code_effort(source_file(spec.pipeline))
    if (n_params := pipe.n_parameters()) is not None:
        metrics["n_parameters"] = float(n_params)
    params = {f"hp.{k}": v for k, v in pipe.get_params().items()}
    params |= {f"chosen.{k}": v for k, v in (getattr(pipe, "best_config_", None) or {}).items()}
    params |= {"n_train": len(X_train), "n_test": len(X_test), "n_features": X_train.shape[1],
               "latency_protocol": f"single row, {online.warmup} warm-up + {online.n} timed calls (stop at "
                                   f"{spec.latency_n} calls or after {spec.latency_cap_s:g} s, never below "
                                   f"{min(P99_MIN_CALLS, spec.latency_n)}), perf_counter_ns, GC off",
               "batch_protocol": f"{throughput.rows} rows resampled from test, median of {throughput.repeats}",
               "memory_protocol": "RSS sampled every 5 ms during fit, minus the RSS before fit",
               "serving_memory_protocol": "serving_rss_mb = RSS of a fresh interpreter after importing the serving "
                                          "code minus a bare one's (median of the import probes) + RSS growth of a "
                                          "warm child loading the model and predicting one row (median)",
               "latency_model_path": "encode() outside timing, predict_encoded()" if has_model_path
               else "same as end to end (no separate encode step)"}
    tags = {"split_hash": split.hash}
    if fit.wall_s > spec.budget_s:
        tags["over_budget"] = "true"
    if flavour_error:
        tags["model_logging_error"] = flavour_error
    return {"metrics": metrics, "params": {k: str(v)[:500] for k, v in params.items()}, "tags": tags,
            "technology": module.Pipeline.technology, "dataset_schema": dataset_schema(X_train)}


def dataset_schema(X: Any) -> str | None:
    """The task's feature columns as MLflow's ``mlflow_colspec`` JSON, for the supervisor's dataset inputs
    (inferred here, where the rows are, from a few of them)."""
    import json

    try:
        from mlflow.models import infer_signature

        return json.dumps({"mlflow_colspec": infer_signature(X.head(100)).inputs.to_dict()})
    except Exception:  # noqa: BLE001 - a column type MLflow cannot describe: the inputs go without a schema
        return None


def flavour_example(pipe: Any, technology: str, native: Any, rows: Any) -> tuple[Any, Any]:
    """(input example, signature) in what the native model itself takes: the raw columns for scikit-learn
    and FLAML (their preprocessing is inside the model), the encoded float matrix for the networks."""
    from mlflow.models import infer_signature

    if technology == "pytorch":
        import torch

        example = pipe.encode(rows).numpy()
        with torch.inference_mode():
            output = native(torch.from_numpy(example)).numpy()
    elif technology == "keras":
        example = pipe.encode(rows).numpy()
        output = native.predict_on_batch(example)
    else:
        example, output = rows, native.predict(rows)
    return example, infer_signature(example, output)


def save_flavour_model(pipe: Any, technology: str, path: Path, rows: Any) -> str:
    """The model in its framework's MLflow flavour (the supervisor logs the folder); returns an error or "".

    MLflow is already imported by the warm parent. Pip requirements are given explicitly: inferring them
    costs seconds a model. Every flavour carries a signature and an input example made from test ``rows``
    (keras' save_model writes the example into its folder before creating it: the folder is made first).
    torch is saved as a pickle: MLflow 3's default 'pt2' export would trace the network again at save time.
    """
    native = pipe.native_model()
    if native is None:
        return ""
    try:
        example, signature = flavour_example(pipe, technology, native, rows)
        from bench.environment import versions

        pins = versions()
        packages = {"sklearn": ["scikit-learn", "pandas", "numpy"],
                    "flaml": ["flaml", "lightgbm", "xgboost", "scikit-learn", "pandas"],
                    "pytorch": ["torch", "numpy", "pandas"],
                    "keras": ["keras", "tensorflow-cpu", "numpy", "pandas"]}.get(technology, [])
        reqs = [f"{p}=={pins[p]}" for p in packages if pins.get(p, "absent") != "absent"]
        if technology in ("sklearn", "flaml"):
            import mlflow.sklearn

            mlflow.sklearn.save_model(native, str(path), serialization_format="cloudpickle", pip_requirements=reqs,
                                      signature=signature, input_example=example)
        elif technology == "pytorch":
            import mlflow.pytorch

            mlflow.pytorch.save_model(native, str(path), pip_requirements=reqs, serialization_format="pickle",
                                      signature=signature, input_example=example)
        elif technology == "keras":
            import mlflow.keras

            path.mkdir(parents=True, exist_ok=True)  # keras writes the input example before making the folder
            mlflow.keras.save_model(native, str(path), pip_requirements=reqs, signature=signature,
                                    input_example=example)
        else:
            return ""
    except Exception as exc:  # noqa: BLE001 - the measurements stand; say why the flavour model is missing
        return f"{type(exc).__name__}: {exc}"[:5000]
    return ""
