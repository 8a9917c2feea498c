"""Benchmark: the harness's single-row latency beside a standalone measurement of the same saved model.

    .venv/bin/python benchmarks/latency.py                     # breast_cancer, torch_mlp + keras_mlp + sklearn_hgb
    .venv/bin/python benchmarks/latency.py --task penguins --pipelines torch_mlp,keras_mlp

It runs the real ``bench run`` (one seed, 1 thread, into a temp SQLite store unless ``--tracking-uri`` is
given), then, for every finished run, downloads the model the run logged (its ``native/`` folder) and times it
again in a fresh process that knows nothing of the harness's timing code: threads pinned to the same count,
the same test rows, each call timed by the standard library's ``timeit`` (GC off while timing, as in the
harness), the median of 1,000 calls. (Means of blocks of consecutive calls were tried first: they came out
1.8x the median for torch and Keras because a few slow calls weigh on every block's mean.)
Both are printed side by side, end to end (a one-row DataFrame in, a label out) and on the model path
(``predict_encoded`` on a pre-encoded row); they should agree within 1.5x. One JSON line per pipeline is
appended to ``--out`` (default: the committed ``benchmarks/latency.jsonl``) with the machine, versions and
load average. Run it on a quiet machine: its figures are times.

Targets on a 2-core machine: keras_mlp model-path p50 under 1 ms, torch_mlp under 0.1 ms.
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
AGREEMENT = 1.5
TARGET_MS = {"torch_mlp": 0.1, "keras_mlp": 1.0}


def standalone(pipeline: str, model_dir: Path, rows_file: Path, threads: int, calls: int) -> dict:
    """Time the saved model in a fresh process with the job's thread environment (see ``probe``)."""
    from bench.measure import thread_env

    env = os.environ | thread_env(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", pipeline, str(model_dir), str(rows_file),
           str(calls)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"standalone probe for {pipeline} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def probe(pipeline: str, model_dir: str, rows_file: str, calls: int) -> None:
    """In the fresh process: load, warm up, then the median of ``calls`` single calls timed by ``timeit``."""
    import statistics
    import timeit
    from functools import partial

    import pandas as pd

    from bench.api import BasePipeline
    from bench.discovery import load_module
    from bench.measure import pin_framework_threads

    module = load_module(pipeline)
    pin_framework_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model = module.Pipeline.load(Path(model_dir))
    frame = pd.read_parquet(rows_file)
    rows = [frame.iloc[[i]] for i in range(len(frame))]

    def per_call_ms(predict, inputs) -> float:
        for item in inputs[:50]:
            predict(item)
        # timeit switches GC off while it times, as the harness does; one call per sample, cycling the rows.
        samples = [timeit.Timer(partial(predict, inputs[i % len(inputs)])).timeit(number=1) for i in range(calls)]
        return statistics.median(samples) * 1e3

    out = {"e2e_p50_ms": per_call_ms(model.predict, rows)}
    if type(model).encode is not BasePipeline.encode:
        out["model_p50_ms"] = per_call_ms(model.predict_encoded, [model.encode(r) for r in rows])
    else:
        out["model_p50_ms"] = out["e2e_p50_ms"]
    print(json.dumps(out))


def timed_rows(task_name: str, seed: int, n: int) -> object:
    """The first ``n`` test rows of the seed's split: the rows the harness timed."""
    from bench.splits import make_split
    from bench.tasks import cached_data, resolve_task

    data = cached_data(resolve_task(task_name))
    split = make_split(data, seed)
    return data.X.iloc[split.test[:n]]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:
        probe(argv[1], argv[2], argv[3], int(argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="breast_cancer")
    parser.add_argument("--pipelines", default="torch_mlp,keras_mlp,sklearn_hgb")
    parser.add_argument("--seed", type=int, default=0, help="the seed timed (bench run runs seeds 0..seed)")
    parser.add_argument("--budget", type=float, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tracking-uri", help="reuse this store's runs of --task (default: a fresh temp store)")
    parser.add_argument("--calls", type=int, default=1000, help="standalone: single calls timed")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON lines appended here (default %(default)s)")
    opts = parser.parse_args(argv)
    pipelines = opts.pipelines.split(",")

    from bench import environment, tracking

    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        uri = opts.tracking_uri or f"sqlite:///{tmp}/mlflow.db"
        cmd = [sys.executable, "-m", "bench.cli", "run", "--tasks", opts.task, "--pipelines", opts.pipelines,
               "--seeds", str(opts.seed + 1), "--budget", str(opts.budget), "--cores", str(opts.threads),
               "--cold-start-repeats", "1", "--tracking-uri", uri]
        print("harness:", " ".join(cmd[2:]), flush=True)
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"bench run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        runs = tracking.load_runs(uri, tasks=[opts.task], pipelines=pipelines, include_failed=False)
        runs = runs[runs["tags.seed"].astype(int) == opts.seed].drop_duplicates("tags.pipeline")
        rows_file = Path(tmp) / "rows.parquet"
        timed_rows(opts.task, opts.seed, 1000).to_parquet(rows_file)
        load = os.getloadavg()[0]
        header = (f"{'pipeline':<18}{'harness e2e':>12}{'standalone':>11}{'ratio':>7}   "
                  f"{'harness model':>14}{'standalone':>11}{'ratio':>7}  target")
        print(f"\n{opts.task}, seed {opts.seed}, {opts.threads} thread(s), p50 in ms (load average {load:.1f})")
        print(header)
        failed = False
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        for _, run in runs.sort_values("tags.pipeline").iterrows():
            name = run["tags.pipeline"]
            model_dir = tracking.download_artifacts(uri, run["run_id"], "native", Path(tmp) / name)
            alone = standalone(name, model_dir, rows_file, opts.threads, opts.calls)
            harness = {"e2e_p50_ms": run["metrics.latency_p50_ms"], "model_p50_ms": run["metrics.model_latency_p50_ms"]}
            ratios = {k: max(harness[k], alone[k]) / min(harness[k], alone[k]) for k in harness}
            target = TARGET_MS.get(name)
            verdict = "" if target is None else (f"< {target} ms " + ("met" if harness["model_p50_ms"] < target
                                                                       else "MISSED"))
            agree = all(r <= AGREEMENT for r in ratios.values())
            failed |= not agree
            print(f"{name:<18}{harness['e2e_p50_ms']:>12.4f}{alone['e2e_p50_ms']:>11.4f}{ratios['e2e_p50_ms']:>7.2f}   "
                  f"{harness['model_p50_ms']:>14.4f}{alone['model_p50_ms']:>11.4f}{ratios['model_p50_ms']:>7.2f}  "
                  f"{verdict}{'' if agree else '  (disagree > 1.5x)'}")
            record = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "task": opts.task, "pipeline": name,
                      "seed": opts.seed, "threads": opts.threads, "load_average": load, "harness": harness,
                      "standalone": alone, "ratios": ratios, "machine": environment.machine(),
                      "versions": environment.versions()}
            with opts.out.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
        missing = sorted(set(pipelines) - set(runs["tags.pipeline"]))
        if missing:
            print(f"no finished run for {', '.join(missing)}: see the bench run output:\n{proc.stdout[-2000:]}")
            failed = True
    print(f"\nappended to {opts.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # run as a script from anywhere: bench is importable from the checkout
    sys.exit(main())
