"""Is the split cold start honest? Import probe + model probe against one full fresh process.

    .venv/bin/python benchmarks/cold_start_split.py [--task breast_cancer] [--pipelines a,b] [--repeats 5]

``bench run`` measures the cold start in two parts: a fresh interpreter importing the serving code (once per
pipeline per run) and, per job, loading the model and predicting one row in a child forked from the warm
parent. This runs one job per pipeline through ``bench run`` into a temp store and downloads each run's saved
model. Then, per pipeline, it alternates ``--repeats`` rounds of (a) the import probe exactly as ``bench
run`` starts it and (b) a fully fresh process that imports, loads and predicts (``python -m bench.execution.coldstart``,
timed from outside: interpreter start included), so both see the same machine: fresh-process imports on a
VM swing by +-20 % from one minute to the next (page cache). Split = median (a) + the run's model part;
goal: within 20 % of the median of (b). The figure stored by the run is shown beside it. Appends one JSON
line to benchmarks/cold_start_split.jsonl. Run it on a quiet machine: its figures are times.
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

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_suffix(".jsonl")
ALL = "sklearn_linear,sklearn_hgb,sklearn_sgd,sklearn_hgb_tuned,torch_mlp,keras_mlp,flaml_automl"
GOAL = 0.20


def alternate(pipeline: str, model_dir: Path, row_file: Path, repeats: int, env: dict[str, str],
              tmp: Path) -> tuple[float, float]:
    """Medians of the import probe (as bench run starts it) and of a full fresh process, in alternation."""
    from bench.execution import child

    probes, fulls = [], []
    limits = child.Limits(300, float("inf"))
    for i in range(repeats):
        folder = tmp / f"{pipeline}-probe-{i}"
        child.write_spec(folder, {"pipeline": pipeline, "cores": None})
        handle = child.start_fresh("bench.execution.coldstart:import_probe", folder, env)
        end = child.classify(handle, child.supervise(handle, limits), limits)
        assert end.ok, end.message
        probes.append(end.wall_s)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.execution.coldstart", pipeline, str(model_dir), str(row_file)],
                       cwd=REPO, env=env, check=True, capture_output=True)
        fulls.append(time.perf_counter() - t0)
    return statistics.median(probes), statistics.median(fulls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="breast_cancer")
    parser.add_argument("--pipelines", default=ALL)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from bench import tracking
    from bench.environment import machine, versions
    from bench.measure import thread_env
    from bench.splits import make_split
    from bench.tasks import cached_data, resolve_task

    load_before = os.getloadavg()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        subprocess.run([sys.executable, "-m", "bench.cli", "run", "--tasks", args.task, "--pipelines",
                        args.pipelines, "--budget", "5", "--jobs", "1", "--cold-start-repeats", str(args.repeats),
                        "--tracking-uri", uri], cwd=REPO, check=True)
        data = cached_data(resolve_task(args.task))
        row_file = Path(tmp) / "row.parquet"
        data.X.iloc[make_split(data, 0).test[:1]].to_parquet(row_file)
        env = os.environ | thread_env(1)
        runs = tracking.load_runs(uri, include_failed=False)
        for _, run in runs.iterrows():
            pipeline = run["tags.pipeline"]
            model_dir = tracking.download_artifacts(uri, run["run_id"], "native", Path(tmp) / pipeline)
            probe, full = alternate(pipeline, model_dir, row_file, args.repeats, env, Path(tmp))
            model_part = float(run["metrics.cold_load_s"]) + float(run["metrics.cold_first_predict_ms"]) / 1e3
            rows[pipeline] = {"run_import_s": float(run["metrics.cold_import_s"]),
                              "load_s": float(run["metrics.cold_load_s"]),
                              "first_predict_ms": float(run["metrics.cold_first_predict_ms"]),
                              "run_split_s": float(run["metrics.cold_start_s"]), "import_s": probe,
                              "split_s": probe + model_part, "full_s": full, "ratio": (probe + model_part) / full}
    load_after = os.getloadavg()
    print(f"\n{'pipeline':<18}{'run split':>10}{'import':>8}{'load':>8}{'1st pred ms':>12}{'split':>8}{'full':>8}"
          f"{'ratio':>7}")
    for pipeline, r in sorted(rows.items()):
        print(f"{pipeline:<18}{r['run_split_s']:>10.2f}{r['import_s']:>8.2f}{r['load_s']:>8.3f}"
              f"{r['first_predict_ms']:>12.2f}{r['split_s']:>8.2f}{r['full_s']:>8.2f}{r['ratio']:>7.2f}")
    worst = max((abs(r["ratio"] - 1) for r in rows.values()), default=float("nan"))
    print(f"largest gap {100 * worst:.0f} % (goal <= {100 * GOAL:.0f} %); load average before "
          f"{load_before[0]:.2f}, after {load_after[0]:.2f}")
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "benchmark": "cold_start_split",
              "command": " ".join(sys.argv), "task": args.task, "repeats": args.repeats,
              "per_pipeline": {p: {k: round(v, 4) for k, v in r.items()} for p, r in rows.items()},
              "largest_gap": round(worst, 3), "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in load_after], "machine": machine(), "versions": versions()}
    with OUT.open("a") as out:
        out.write(json.dumps(record) + "\n")
    print(f"appended to {OUT.relative_to(REPO)}")
    return 0 if worst <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
