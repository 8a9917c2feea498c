"""What a job costs beyond its fit and its measurements (the execution issue's benchmark).

    .venv/bin/python benchmarks/overhead.py [--suite quick] [--seeds 2] [--budget 10] [--jobs N] [--pipelines ...]

Runs ``bench run`` as a user would (a fresh process) into a temp store, then reads every run back and prints,
per pipeline, the median job wall, fit, measuring (scoring, batch, latency, save, cold start) and
``overhead_s`` (job wall - fit - measuring), and for the suite: wall / sum(fit + measuring), plain and per
slot (wall x concurrent jobs / sum: 1.0 means every slot spent all its time fitting or measuring).
Goals: median overhead_s <= 0.6 s for every pipeline, per-slot ratio <= 1.15. Appends one JSON line (date,
git revision, load average before and after, machine, versions, the table) to benchmarks/overhead.jsonl.
Run it on a quiet machine: its figures are times.
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
GOAL_OVERHEAD_S, GOAL_RATIO = 0.6, 1.15


def run_suite(args: argparse.Namespace, uri: str) -> float:
    cmd = [sys.executable, "-m", "bench.cli", "run", "--suite", args.suite, "--seeds", str(args.seeds),
           "--budget", str(args.budget), "--tracking-uri", uri]
    if args.jobs:
        cmd += ["--jobs", str(args.jobs)]
    if args.pipelines:
        cmd += ["--pipelines", args.pipelines]
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.monotonic() - t0


def per_pipeline(uri: str) -> tuple[dict[str, dict[str, float]], int, int, int]:
    from bench import tracking

    runs = tracking.load_runs(uri)
    done = runs[runs["status"] == "FINISHED"]
    table = {}
    for pipeline, group in done.groupby("tags.pipeline"):
        table[pipeline] = {name: float(statistics.median(group[f"metrics.{column}"].dropna()))
                           for name, column in [("job_wall_s", "job_wall_s"), ("fit_s", "phase_fit_s"),
                                                ("measuring_s", "measuring_s"), ("overhead_s", "overhead_s"),
                                                ("cold_start_s", "cold_start_s")]}
        table[pipeline]["jobs"] = float(len(group))
        # The import probe set runs once per pipeline per bench run: measuring, but of no single job.
        table[pipeline]["import_probes_s"] = float(group["metrics.cold_import_s"].median()
                                                   * group["metrics.cold_import_n"].median())
        table[pipeline]["sum_fit_measuring_s"] = float((group["metrics.phase_fit_s"]
                                                        + group["metrics.measuring_s"]).sum())
    slots = int(done["tags.concurrent_jobs"].astype(int).max()) if len(done) else 1
    return table, len(done), len(runs) - len(done), slots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--budget", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, help="concurrent jobs (default: bench run's: one per core)")
    parser.add_argument("--pipelines", help="comma-separated (default: all)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from bench.environment import machine, versions

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        wall = run_suite(args, uri)
        table, finished, failed, slots = per_pipeline(uri)
    load_after = os.getloadavg()
    probes = sum(row["import_probes_s"] for row in table.values())
    total = sum(row["sum_fit_measuring_s"] for row in table.values()) + probes
    ratio, per_slot = wall / total, wall * slots / total
    print(f"\n{'pipeline':<18}{'jobs':>5}{'job wall':>10}{'fit':>8}{'measuring':>11}{'overhead':>10}{'cold start':>12}")
    for pipeline, row in sorted(table.items()):
        print(f"{pipeline:<18}{row['jobs']:>5.0f}{row['job_wall_s']:>10.2f}{row['fit_s']:>8.2f}"
              f"{row['measuring_s']:>11.2f}{row['overhead_s']:>10.2f}{row['cold_start_s']:>12.2f}")
    worst = max((row["overhead_s"] for row in table.values()), default=float("nan"))
    print(f"\nsuite wall {wall:.1f} s, {finished} finished, {failed} failed, {slots} concurrent job(s); "
          f"sum of fit + measuring {total:.1f} s (import probes {probes:.1f} s of it); wall / sum {ratio:.2f}; "
          f"per slot {per_slot:.2f} "
          f"(goal <= {GOAL_RATIO}); worst median overhead_s {worst:.2f} s (goal <= {GOAL_OVERHEAD_S})")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "benchmark": "overhead",
              "command": " ".join(sys.argv), "suite": args.suite, "seeds": args.seeds, "budget": args.budget,
              "wall_s": round(wall, 2), "finished": finished, "failed": failed, "concurrent_jobs": slots,
              "sum_fit_measuring_s": round(total, 2), "import_probes_s": round(probes, 2),
              "ratio": round(ratio, 3), "ratio_per_slot": round(per_slot, 3),
              "per_pipeline": {p: {k: round(v, 3) for k, v in row.items()} for p, row in table.items()},
              "load_avg_before": [round(x, 2) for x in load_before],
              "load_avg_after": [round(x, 2) for x in load_after], "machine": machine(), "versions": versions()}
    with OUT.open("a") as out:
        out.write(json.dumps(record) + "\n")
    print(f"appended to {OUT.relative_to(REPO)}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
