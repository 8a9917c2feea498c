"""One finished run measured in its edge form: export, fresh-process runtime probes, fidelity.

The figures, logged onto the run (suffix ``_<format>`` for a second format, e.g. Keras' LiteRT):

- ``edge_exported`` (1/0) and tags ``edge_format``, ``edge_graph`` (what the graph holds and what is left to
  the app: a graph starting "whole pipeline" takes raw columns), ``edge_compare_with`` (the in-process
  figure measuring the same thing: ``latency`` end to end, or ``model_latency`` for a network on encoded
  rows), ``edge_error`` (the converter's reason, or the fidelity shortfall: "no edge export");
- ``edge_model_bytes``; ``edge_latency_p50_ms``/``p90``/``p99``/``n`` (single row, one thread, fresh process)
  and ``edge_latency_p99_es_ms``, MLPerf's early-stopping p99 estimate (NaN below its 662 calls);
- ``edge_cold_start_s`` (process start to first answer: interpreter, runtime import, load, first row; median
  over fresh processes) with ``edge_import_s``, ``edge_load_s``, ``edge_first_predict_ms`` of the first one;
- ``edge_serving_rss_mb`` (what the probe process holds after its latency loop above a bare interpreter, as the
  suite's ``serving_rss_mb`` counts it; ``edge_process_rss_mb`` the whole process), ``edge_runtime_mb``
  (installed size of the runtime's distribution, numpy not counted: every form needs it);
- fidelity on every test row: ``edge_agreement`` (classification: share of labels identical to the native
  model's ``predict``; regression: share within ``REGRESSION_TOLERANCE`` of the native prediction's spread)
  and ``edge_max_abs_diff`` (probabilities, or values).

An export whose agreement is below ``MIN_AGREEMENT`` is recorded as "no edge export" with the numbers: a
model that answers differently at the edge is not the model that was measured.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: Share of test rows on which the edge model must give the native label (or value) to count as an export.
MIN_AGREEMENT = 0.995
#: Regression: a value agrees within this fraction of the native predictions' standard deviation (float32
#: graphs and float32 tree thresholds move values slightly; a different leaf moves them by far more).
REGRESSION_TOLERANCE = 1e-3
RUNTIME_DISTRIBUTIONS = {"onnx": "onnxruntime", "litert": "ai-edge-litert"}
#: The latency protocol of the suite's jobs: warm-up, then up to n calls or cap_s, never below min_n.
LATENCY = {"n": 1000, "warmup": 50, "cap_s": 5.0, "min_n": 662}


def runtime_mb(fmt: str) -> float:
    """Installed bytes of the runtime's distribution (its files as pip recorded them), in MiB."""
    from importlib import metadata

    try:
        files = metadata.distribution(RUNTIME_DISTRIBUTIONS[fmt]).files or []
    except (metadata.PackageNotFoundError, KeyError):
        return float("nan")
    return sum(f.size or 0 for f in files) / 2**20


def run_export(pipeline: str, model_dir: Path, task_path: Path, seed: int, work: Path) -> dict[str, Any]:
    """The export child (framework imported there); a failed child becomes the result's ``error``."""
    from bench.deploy.export import run_child

    return run_child("bench.deploy.export:export_main", work / "export", {
        "pipeline": pipeline, "model_dir": str(model_dir), "task_path": str(task_path), "seed": seed,
        "out": str(work / "edge")})


def run_probe(spec: dict[str, Any], folder: Path, time_limit_s: float = 300.0) -> dict[str, Any]:
    """One fresh runtime process; raises RuntimeError with its output tail if it fails."""
    from bench.measure import thread_env

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec))
    (folder / "result.json").unlink(missing_ok=True)
    wall0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "bench.deploy.probe", str(folder / "spec.json")],
                            env=os.environ | thread_env(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=time_limit_s)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    if proc.returncode != 0 or not (folder / "result.json").exists():
        tail = output.decode(errors="replace").strip().splitlines()[-1:] if output else []
        raise RuntimeError(f"the {spec['format']} runtime failed (exit {proc.returncode}): {' '.join(tail)}"[:600])
    result = json.loads((folder / "result.json").read_text())
    result["cold_start_s"] = result["first_answer_wall"] - wall0
    return result


def fidelity(kind: str, native: Path, outputs: Any) -> tuple[float, float]:
    """(agreement, max absolute difference) of the edge answers against the native model's."""
    import numpy as np

    with np.load(native) as saved:
        if kind == "regression":
            values = saved["values"]
            edge = np.asarray(outputs, np.float64).reshape(len(values), -1)[:, 0]
            diff = np.abs(edge - values)
            tolerance = REGRESSION_TOLERANCE * (float(np.std(values)) or 1.0)
            return float(np.mean(diff <= tolerance)), float(np.max(diff, initial=0.0))
        labels, proba = saved["labels"], saved["proba"]
    edge = np.asarray(outputs, np.float64).reshape(proba.shape)
    return float(np.mean(edge.argmax(axis=1) == labels)), float(np.max(np.abs(edge - proba), initial=0.0))


def _estimate(times: Any) -> float:
    """MLPerf's early-stopping p99 (the figure the matrix ranks on), NaN below the calls it needs."""
    from bench.early_stopping import estimate

    value = estimate(list(times))
    return float("nan") if value is None else value


def measure_export(kind: str, native: Path, export: dict[str, Any], work: Path, repeats: int,
                   latency: dict[str, Any]) -> dict[str, Any]:
    """Probe one exported model: metrics (without prefix) and, where it does not count, an error."""
    import numpy as np

    spec = {k: export[k] for k in ("format", "path", "output", "feeds")}
    full = run_probe(spec | latency | {"full": True}, work / "probe-0")
    colds = [full["cold_start_s"]] + [run_probe(spec, work / f"probe-{i}")["cold_start_s"]
                                      for i in range(1, repeats)]
    times = np.asarray(full["latency_ms"])
    agreement, max_diff = fidelity(kind, native, np.load(work / "probe-0" / "outputs.npy"))
    metrics = {"model_bytes": float(export["model_bytes"]), "latency_p50_ms": float(np.percentile(times, 50)),
               "latency_p90_ms": float(np.percentile(times, 90)), "latency_p99_ms": float(np.percentile(times, 99)),
               "latency_p99_es_ms": _estimate(times), "latency_n": float(len(times)),
               "cold_start_s": statistics.median(colds),
               "import_s": full["import_s"], "load_s": full["load_s"], "first_predict_ms": full["first_predict_ms"],
               "serving_rss_mb": full["rss_mb"], "process_rss_mb": full["process_rss_mb"],
               "runtime_mb": runtime_mb(export["format"]),
               "agreement": agreement, "max_abs_diff": max_diff}
    error = ""
    if not agreement >= MIN_AGREEMENT:
        error = (f"fidelity: the {export['format']} model agrees with the native one on {agreement:.1%} of the "
                 f"test rows (< {MIN_AGREEMENT:.1%}); max abs difference {max_diff:.3g}")
    return {"metrics": metrics, "error": error}


def measure_edge(pipeline: str, model_dir: Path, task_path: Path, seed: int, work: Path, repeats: int = 3,
                 latency: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything about one run's edge form: ``{"metrics": ..., "tags": ...}``, never raising for the model."""
    exported = run_export(pipeline, model_dir, task_path, seed, work)
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    if exported.get("error") or not exported["exports"]:
        reason = exported.get("error") or "export_edge returned no model"
        return {"metrics": {"edge_exported": 0.0}, "tags": {"edge_format": "none", "edge_error": reason}}
    for i, export in enumerate(exported["exports"]):
        prefix = "edge_" if i == 0 else f"edge_{export['format']}_"
        tags[f"{prefix}format"] = export["format"]
        error = export.get("error", "")
        if not error:
            tags[f"{prefix}graph"] = export.get("graph", "")
            whole = export.get("graph", "").startswith("whole pipeline")
            tags[f"{prefix}compare_with"] = "latency" if whole else exported.get("peer", "latency")
            try:
                measured = measure_export(exported["kind"], work / "edge" / "native.npz", export, work / f"x{i}",
                                          repeats, latency or LATENCY)
                metrics |= {prefix + k: v for k, v in measured["metrics"].items()}
                error = measured["error"]
            except RuntimeError as exc:
                error = str(exc)
        metrics[f"{prefix}exported"] = 0.0 if error else 1.0
        if error:
            tags[f"{prefix}error"] = error
    return {"metrics": metrics, "tags": tags, "files": [str(work / "edge" / e["file"])
                                                        for e in exported["exports"] if "file" in e]}
