"""How long ``bench matrix`` takes over many runs: builds synthetic runs in a temp SQLite store, then times
the whole command (a fresh process: interpreter start, imports, reading the runs, the matrix, the exports,
the MLflow ``matrix`` run) and, in-process, each phase.

    python benchmarks/matrix_speed.py                 # 1,000 runs: 10 tasks x 10 pipelines x 10 seeds
    python benchmarks/matrix_speed.py --runs 200 --format csv,md,json,html

The target is under 3 s for 1,000 runs with the default formats. By default ``bench matrix`` hands the MLflow
``matrix`` run to a detached logger (importing mlflow costs more than the rest of the command); the benchmark
also prints when that run was logged, and the time of ``--wait``, which blocks until it is. Building the store
is not timed (it takes a minute or two: SQLite writes every run separately). Appends one JSON line to
benchmarks/matrix_speed.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

TECHNOLOGIES = ["sklearn", "sklearn", "sklearn", "pytorch", "keras", "flaml", "sklearn", "pytorch", "keras", "flaml"]
KINDS = [("binary", "roc_auc", 0.5), ("multiclass", "balanced_accuracy", 0.33), ("regression", "rmse", 70.0)]


OUT = Path(__file__).with_suffix(".jsonl")


def synthetic_metrics(rng: np.random.Generator, p: int, t: int) -> tuple[dict[str, float], dict[str, str]]:
    """Plausible metrics for pipeline p on task t: each pipeline has its own speed and size."""
    kind, metric, const = KINDS[t % 3]
    skill = 0.5 + 0.04 * p + rng.normal(0, 0.02)
    score = const * (1 - 0.5 * skill) if metric == "rmse" else const + (1 - const) * min(skill, 1)
    lat = 0.05 * 2 ** p * rng.lognormal(0, 0.1)
    metrics = {"primary_score": score, "primary_constant": const, f"test_{metric}": score,
               "fit_wall_s": 0.1 * 1.8 ** p * rng.lognormal(0, 0.2), "fit_cpu_s": 0.1 * 1.8 ** p,
               "batch_rows_per_s": 1e7 / 2 ** p, "latency_p50_ms": lat, "latency_p90_ms": lat * 1.3,
               "latency_p99_ms": lat * 2, "latency_n": 1000, "model_latency_p50_ms": lat / 2,
               "model_latency_p99_ms": lat, "cold_start_s": 1 + 0.3 * p, "model_bytes": 3e3 * 3 ** p,
               "peak_rss_mb": 5 * 2 ** p, "lloc": 30 + 12 * p, "complexity_total": 8 + 3 * p,
               "online_learning": float(p % 4 == 0), "budget_used_frac": 0.1, "n_parameters": 100 * 3 ** p}
    for extra in ("import_s", "baseline_rss_mb", "batch_rows", "batch_repeats", "cold_import_s", "cold_load_s",
                  "cold_first_predict_ms", "cold_start_n", "sloc", "complexity_mean", "complexity_max",
                  "latency_mean_ms", "model_latency_mean_ms", "model_latency_n", "model_latency_p90_ms"):
        metrics[extra] = float(rng.random())
    params = {"primary_metric": metric, "task_kind": kind, "budget_s": "10.0", "threads": "1", "cpu_count": "2",
              "memory_gb": "23.6", "platform": "Linux-x86_64", "n_train": "1000", "n_test": "250"}
    params |= {f"version.{k}": "1.0" for k in ("scikit-learn", "flaml", "torch", "keras", "mlflow", "pandas",
                                               "numpy", "scipy", "lightgbm", "xgboost", "python")}
    params |= {f"hp.param{i}": str(i) for i in range(12)}
    return metrics, params


def build_store(uri: str, n_runs: int, seed: int = 0) -> None:
    """n_runs runs over 10 tasks x 10 pipelines x seeds, about 3 % of them failed."""
    from mlflow.entities import Metric, Param

    from bench import tracking

    tracking.check_store(uri)
    client = tracking._client(uri)
    rng = np.random.default_rng(seed)
    seeds = max(1, n_runs // 100)
    now = int(time.time() * 1000)
    done = 0
    for t in range(10):
        exp = tracking.experiment_id(uri, f"task{t}")
        for p in range(10):
            for s in range(seeds):
                if done >= n_runs:
                    return
                tags = {"task": f"task{t}", "pipeline": f"pipe{p}", "technology": TECHNOLOGIES[p], "seed": str(s),
                        "suite": "synthetic", "job_key": f"k{t}-{p}-{s}", "cpu_model": "synthetic CPU",
                        "git_revision": "synthetic", "split_hash": f"h{t}{s}", "status_detail": "ok"}
                run_id = client.create_run(exp, run_name=f"pipe{p}-s{s}", tags=tags).info.run_id
                metrics, params = synthetic_metrics(rng, p, t)
                failed = rng.random() < 0.03
                client.log_batch(run_id, metrics=[] if failed else [Metric(k, float(v), now, 0)
                                                                     for k, v in metrics.items()],
                                 params=[Param(k, v) for k, v in params.items()])
                if failed:
                    client.set_tag(run_id, "failure_cause", "exception")
                client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
                done += 1


def time_command(uri: str, out: Path, profile: str, formats: str, repeats: int,
                 extra: tuple[str, ...] = ()) -> tuple[list[float], list[float], list[float]]:
    """Wall and CPU seconds (its own and its children's) of the whole ``bench matrix`` in a fresh process,
    and the seconds until its MLflow run was logged (the detached logger's outcome file), NaN with --no-log.
    Each repeat waits for the previous one's logger, so that none runs beside the next command."""
    import resource

    cmd = [sys.executable, "-m", "bench.cli", "matrix", "--tracking-uri", uri, "--out", str(out),
           "--profile", profile, "--format", formats, *extra]
    outcome = out / "matrix_run.json"
    walls, cpus, logged = [], [], []
    for _ in range(repeats):
        outcome.unlink(missing_ok=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"PYTHONWARNINGS": "ignore"})
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"bench matrix failed:\n{proc.stderr[-3000:]}")
        while "--no-log" not in extra and not outcome.is_file() and time.perf_counter() - t0 < 300:
            time.sleep(0.05)
        logged.append(time.perf_counter() - t0 if outcome.is_file() else float("nan"))
    return walls, cpus, logged


def time_phases(uri: str, out: Path, profile_name: str, formats: str) -> dict[str, float]:
    """The same work in this process, phase by phase."""
    phases = {}
    t0 = time.perf_counter()
    from bench import store
    from bench.analysis import build
    from bench.analysis.profiles import load_profile
    from bench.report import logger, writers
    from bench.report import meta as report_meta

    phases["imports"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    runs = store.read_runs(uri)
    phases["read_runs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = build(runs, load_profile(profile_name))
    meta = report_meta.describe(runs, result, uri=uri, ui_url="http://127.0.0.1:5000")
    phases["matrix"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    paths = writers.export(result, meta, formats.split(","), out)
    phases["export"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    logger.log_run(uri, result, meta, paths)
    phases["mlflow_import_and_log"] = time.perf_counter() - t0
    phases["runs"] = float(len(runs))
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--profile", default="balanced")
    parser.add_argument("--format", default="csv,md,html")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--store", type=Path, help="reuse (or create) the store in this folder")
    args = parser.parse_args(argv)
    from bench.environment import machine, versions

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.store or Path(tmp)
        db = folder / "mlflow" / "mlflow.db"
        uri = f"sqlite:///{db.resolve()}"
        if not db.exists():
            t0 = time.perf_counter()
            build_store(uri, args.runs)
            print(f"built {args.runs} synthetic runs in {time.perf_counter() - t0:.0f} s ({uri})")
        walls, cpus, logged = time_command(uri, folder / "results", args.profile, args.format, args.repeats)
        no_log, no_log_cpu, _ = time_command(uri, folder / "results", args.profile, args.format, 1, ("--no-log",))
        waited, waited_cpu, _ = time_command(uri, folder / "results", args.profile, args.format, 1, ("--wait",))
        phases = time_phases(uri, folder / "results", args.profile, args.format)
    print(f"bench matrix --profile {args.profile} --format {args.format} over {phases['runs']:.0f} runs: "
          f"median {statistics.median(walls):.2f} s wall, min {min(walls):.2f} s "
          f"({', '.join(f'{w:.2f}' for w in walls)}); CPU {statistics.median(cpus):.2f} s; target < 3 s wall")
    print(f"  its MLflow 'matrix' run (detached logger) was logged {statistics.median(logged):.2f} s after the start")
    print(f"  with --no-log (no MLflow matrix run): {no_log[0]:.2f} s wall, {no_log_cpu[0]:.2f} s CPU")
    print(f"  with --wait (the command waits for the run): {waited[0]:.2f} s wall, {waited_cpu[0]:.2f} s CPU "
          "(the logger's CPU counts only here: a detached process is no child that the others wait for)")
    print("  in-process phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items() if k != "runs"))
    print(f"  machine load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "benchmark": "matrix_speed",
              "runs": int(phases["runs"]), "profile": args.profile, "format": args.format,
              "wall_s": [round(w, 3) for w in walls], "cpu_s": [round(c, 3) for c in cpus],
              "logged_after_s": round(statistics.median(logged), 3), "no_log_wall_s": round(no_log[0], 3),
              "wait_wall_s": round(waited[0], 3), "phases": {k: round(v, 3) for k, v in phases.items()},
              "load_avg": [round(x, 2) for x in os.getloadavg()], "machine": machine(), "versions": versions()}
    with OUT.open("a") as out:
        out.write(json.dumps(record) + "\n")
    print(f"appended to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
