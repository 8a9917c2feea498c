"""Benchmark: `bench run` serial versus `--executor dask --workers N` on the same suite, into temp stores.

    .venv/bin/python benchmarks/dask_speedup.py              # quick suite, sklearn pipelines, 2 workers
    .venv/bin/python benchmarks/dask_speedup.py --seeds 2 --workers 2 --rounds 2

Runs the real command line twice (fresh temp SQLite stores, same flags), prints both wall times and the
speed-up, checks that both produced the same runs with the same quality metrics (they must: same splits, seeds
and thread counts), and appends one JSON line with the machine, versions and figures to ``--out`` (default:
the committed ``benchmarks/dask_speedup.jsonl``; append-only, like pytest-benchmark). The goal on 2 cores is >= 1.7x.

On a machine shared with other work the figure measures the spare capacity as much as the executor: a serial
run takes whatever core the others leave idle, two parallel jobs compete for it, and a load that changes between
the two runs swings the ratio both ways (x0.8 to x1.5 seen here at load averages of 2 to 8). ``--rounds 2``
runs serial, dask, dask, serial so that a drifting load weighs on both; the load averages are recorded. The Dask
run also prints its concurrency (summed job time over wall time): how busy it kept its workers, whatever the load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_suffix(".jsonl")
QUALITY = "metrics.primary_score"


def run_bench(args: list[str], uri: str, cwd: Path) -> float:
    cmd = [sys.executable, "-m", "bench.cli", "run", *args, "--tracking-uri", uri]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    for line in proc.stdout.splitlines():
        if "speed-up" in line or line.startswith("finished"):
            print(f"  {line.strip()}")
    return wall


def quality(uri: str):
    from bench import tracking

    runs = tracking.load_runs(uri)
    finished = runs[runs["status"] == "FINISHED"]
    return {(r["tags.task"], r["tags.mlflow.runName"]): r[QUALITY] for _, r in finished.iterrows()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--pipelines", default="sklearn_linear,sklearn_hgb")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--budget", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--extra", default="", help="more `bench run` flags, e.g. '--latency-n 300'")
    parser.add_argument("--dask-extra", default="", help="flags for the Dask run only, e.g. '--no-pin'")
    parser.add_argument("--rounds", type=int, default=1,
                        help="serial/dask pairs, in ABBA order so a drifting load weighs on both (default 1)")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON lines appended here (default %(default)s)")
    opts = parser.parse_args(argv)

    from bench import environment

    repo = REPO
    common = ["--suite", opts.suite, "--pipelines", opts.pipelines, "--seeds", str(opts.seeds),
              "--budget", str(opts.budget), *opts.extra.split()]
    dask_args = [*common, "--executor", "dask", "--workers", str(opts.workers), *opts.dask_extra.split()]
    # ABBA order (serial, dask, dask, serial, ...): a load that drifts linearly weighs on both equally.
    order = [("serial", "dask") if i % 2 == 0 else ("dask", "serial") for i in range(opts.rounds)]
    walls: dict[str, list[float]] = {"serial": [], "dask": []}
    loads: list[float] = []
    qualities: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-speedup-") as tmp:
        for i, pair in enumerate(order):
            for mode in pair:
                uri = f"sqlite:///{Path(tmp) / f'{mode}{i}' / 'mlflow.db'}"
                args = common if mode == "serial" else dask_args
                print(f"{mode}: bench run {' '.join(args)}  (load average {os.getloadavg()[0]:.1f})")
                loads.append(os.getloadavg()[0])
                walls[mode].append(run_bench(args, uri, repo))
                qualities.setdefault(mode, quality(uri))
        loads.append(os.getloadavg()[0])
    serial_q, dask_q = qualities["serial"], qualities["dask"]
    same_runs = sorted(serial_q) == sorted(dask_q)
    mismatched = [k for k in serial_q if k in dask_q and serial_q[k] != dask_q[k]]
    serial_s, dask_s = sum(walls["serial"]), sum(walls["dask"])
    speedup = serial_s / dask_s
    print(f"serial {' + '.join(f'{w:.1f}' for w in walls['serial'])} s, dask ({opts.workers} workers) "
          f"{' + '.join(f'{w:.1f}' for w in walls['dask'])} s: speed-up x{speedup:.2f} (goal >= 1.7 on 2 cores); "
          f"{len(serial_q)} runs, same runs: {same_runs}, quality mismatches: {len(mismatched)}; load average "
          f"{min(loads):.1f}-{max(loads):.1f} (other work on the machine skews this: see the module docstring)")
    record = {"benchmark": "dask_speedup", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "suite": opts.suite,
              "pipelines": opts.pipelines, "seeds": opts.seeds, "budget_s": opts.budget, "workers": opts.workers,
              "extra": opts.extra, "dask_extra": opts.dask_extra, "rounds": opts.rounds,
              "serial_s": [round(w, 2) for w in walls["serial"]], "dask_s": [round(w, 2) for w in walls["dask"]],
              "speedup": round(speedup, 3), "runs": len(serial_q), "same_runs": same_runs,
              "quality_mismatches": mismatched, "loadavg": loads,
              "machine": environment.machine(), "versions": environment.versions()}
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    with opts.out.open("a") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
    print(f"appended to {opts.out}")
    return 0 if same_runs and not mismatched else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # run as a script from anywhere: bench is importable from the checkout
    sys.exit(main())
