"""One suite job on the child protocol: warm parent, job child, cold-start probes, record in MLflow.

The supervisor (a ``bench run`` slot thread, or a Dask worker) owns the job's MLflow run: the child only
writes files. After the child ends the supervisor logs its metrics, params, tags and model folders in a few
batched calls, adds the cold start (the pipeline's import probe, measured once per run in fresh
interpreters, plus this model's load and first prediction in a warm child), the phase timings that only it
can see (start-up, cold start, logging) and ``overhead_s`` = job wall - fit - measuring.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import tracking
from bench.execution import child
from bench.execution.pool import POOL

JOB_ENTRY = "bench.execution.worker:job_main"
IMPORT_PROBE = "bench.execution.coldstart:import_probe"
MODEL_PROBE = "bench.execution.coldstart:model_probe"
BARE_PROBE = "bench.execution.coldstart:bare_probe"
PROBE_LIMIT_S = 300.0
#: Phases that measure (the rest of a job's wall time is overhead): fit is counted apart.
MEASURING_PHASES = ("scoring", "batch", "latency", "save", "cold_start")

_IMPORT_PROBES: dict[tuple[str, int], dict[str, float]] = {}
_BARE_RSS: list[float] = []  # RSS of a bare interpreter on the child protocol, measured once per process
_PROBE_SECONDS: dict[tuple[str, int], float] = {}
_PROBE_LOCK = threading.Lock()


def import_probe_seconds() -> float:
    """Wall seconds this process spent in import probes: measuring that belongs to no single job."""
    with _PROBE_LOCK:
        return sum(_PROBE_SECONDS.values())


@dataclass
class JobRequest:
    """What the supervisor needs to run one suite job."""

    pipeline: str
    spec: dict[str, Any]
    env: dict[str, str]
    limits: child.Limits
    root: Path
    cold_start_repeats: int = 3
    cores: list[int] | None = None
    name: str = "job"


@dataclass
class JobEnd:
    end: child.End
    metrics: dict[str, float] = field(default_factory=dict)


def import_cold_start(pipeline: str, threads: int, env: dict[str, str], root: Path, repeats: int,
                      cores: list[int] | None) -> dict[str, float]:
    """The technology's share of the cold start: fresh interpreters importing the serving code, median of N.

    Once per pipeline and thread count per process (a ``bench run`` or a Dask worker), before its warm
    parent starts, on the cores of the slot that asks, so nothing else of this run competes with it.
    """
    key = (pipeline, threads)
    with _PROBE_LOCK:
        if key in _IMPORT_PROBES:
            return _IMPORT_PROBES[key]
    walls: list[float] = []
    rss: list[float] = []
    for _ in range(max(1, repeats)):
        end = _fresh_probe(IMPORT_PROBE, pipeline, env, root, cores)
        if not end.ok:
            return {}  # the pipeline cannot even be imported: its job records why
        walls.append(end.wall_s)
        rss.append(float(end.result.get("rss_mb", float("nan"))))
    probe = {"cold_import_s": statistics.median(walls), "cold_import_n": float(len(walls))}
    bare = bare_rss_mb(env, root, cores)
    if bare is not None:
        probe |= {"serving_import_rss_mb": max(0.0, statistics.median(rss) - bare), "bare_rss_mb": bare}
    with _PROBE_LOCK:
        _IMPORT_PROBES[key] = probe
        _PROBE_SECONDS[key] = sum(walls)
    return probe


def _fresh_probe(entry: str, pipeline: str, env: dict[str, str], root: Path, cores: list[int] | None) -> child.End:
    folder = Path(tempfile.mkdtemp(prefix=f"probe-{pipeline}-", dir=root))
    child.write_spec(folder, {"pipeline": pipeline, "cores": cores})
    handle = child.start_fresh(entry, folder, env)
    limits = child.Limits(PROBE_LIMIT_S, float("inf"))
    end = child.classify(handle, child.supervise(handle, limits), limits)
    shutil.rmtree(folder, ignore_errors=True)
    return end


def bare_rss_mb(env: dict[str, str], root: Path, cores: list[int] | None) -> float | None:
    """RSS of a fresh interpreter that runs the child protocol and imports nothing else (once per process):
    what serving memory is counted above, so the interpreter itself is not charged to any framework."""
    with _PROBE_LOCK:
        if _BARE_RSS:
            return _BARE_RSS[0]
    end = _fresh_probe(BARE_PROBE, "bare", env, root, cores)
    if not end.ok:
        return None
    with _PROBE_LOCK:
        _BARE_RSS[:] = [float(end.result["rss_mb"])]
        return _BARE_RSS[0]


def warm_up(request: JobRequest) -> None:
    """Import probe, then the warm parent: both idempotent, so any slot or Dask worker may call it."""
    threads = int(request.spec["threads"])
    import_cold_start(request.pipeline, threads, request.env, request.root, request.cold_start_repeats,
                      request.cores)
    POOL.get(request.pipeline, threads, request.env, request.root / f"zygote-{request.pipeline}.log",
             request.cores)


def spawn(request: JobRequest, entry: str, folder: Path) -> child.ChildHandle:
    """A child forked by the pipeline's warm parent; a fresh interpreter if that parent cannot warm up."""
    zygote = POOL.get(request.pipeline, int(request.spec["threads"]), request.env,
                      request.root / f"zygote-{request.pipeline}.log", request.cores)
    handle = zygote.fork(entry, folder) if zygote is not None else None
    return handle if handle is not None else child.start_fresh(entry, folder, request.env)


def run(request: JobRequest, stop: threading.Event | None = None, heartbeat=None) -> JobEnd:
    """Run the job child under its limits, then the per-model cold-start probes; nothing is logged here."""
    warm_up(request)
    folder = Path(tempfile.mkdtemp(prefix=f"{request.name}-", dir=request.root))
    child.write_spec(folder, request.spec | {"cores": request.cores, "requested_at": time.time()})
    handle = spawn(request, JOB_ENTRY, folder)
    cause = child.supervise(handle, request.limits, stop, heartbeat, tracking_heartbeat_s())
    end = child.classify(handle, cause, request.limits)
    if not end.ok:
        return JobEnd(end)
    t0 = time.perf_counter()
    probes = model_cold_start(request, folder, stop)
    if isinstance(probes, child.End):
        probes.result, probes.folder = end.result, folder
        return JobEnd(probes)
    metrics = probes | _IMPORT_PROBES.get((request.pipeline, int(request.spec["threads"])), {})
    metrics["phase_cold_start_s"] = time.perf_counter() - t0
    if "cold_import_s" in metrics:
        metrics["cold_start_s"] = metrics["cold_import_s"] + metrics["cold_load_s"] + \
            metrics["cold_first_predict_ms"] / 1e3
    if "serving_import_rss_mb" in metrics:
        metrics["serving_rss_mb"] = metrics["serving_import_rss_mb"] + metrics["serving_model_rss_mb"]
    return JobEnd(end, metrics)


def model_cold_start(request: JobRequest, job_folder: Path,
                     stop: threading.Event | None) -> dict[str, float] | child.End:
    """The model's share: load and first prediction in children forked from the warm parent, median of N."""
    loads, firsts, growths = [], [], []
    limits = child.Limits(PROBE_LIMIT_S, request.limits.memory_mb)
    for i in range(max(1, request.cold_start_repeats)):
        folder = job_folder / f"probe-{i}"
        child.write_spec(folder, {"pipeline": request.pipeline, "model_dir": str(job_folder / "model"),
                                  "row_file": str(job_folder / "row.parquet"), "cores": request.cores})
        handle = spawn(request, MODEL_PROBE, folder)
        end = child.classify(handle, child.supervise(handle, limits, stop), limits)
        if not end.ok:
            end.message = f"cold-start probe (load the saved model, predict one row): {end.message}"
            return end
        loads.append(end.result["load_s"])
        firsts.append(end.result["first_predict_ms"])
        growths.append(float(end.result.get("rss_growth_mb", 0.0)))
    return {"cold_load_s": statistics.median(loads), "cold_first_predict_ms": statistics.median(firsts),
            "cold_start_n": float(len(loads)), "serving_model_rss_mb": statistics.median(growths)}


def overhead(metrics: dict[str, float], wall_s: float) -> dict[str, float]:
    """Job wall minus fit minus measuring: what the harness itself cost this job."""
    measuring = sum(metrics.get(f"phase_{p}_s", 0.0) for p in MEASURING_PHASES)
    return {"job_wall_s": wall_s, "measuring_s": measuring,
            "overhead_s": max(0.0, wall_s - metrics.get("phase_fit_s", 0.0) - measuring)}


def tracking_heartbeat_s() -> float:
    return float(getattr(tracking, "HEARTBEAT_S", 5.0))


def cleanup(folder: Path | None) -> None:
    """A job's folder goes once its record is written (the record holds the traceback and the models)."""
    if folder is not None and os.environ.get("BENCH_KEEP_JOB_DIRS") != "1":
        shutil.rmtree(folder, ignore_errors=True)
