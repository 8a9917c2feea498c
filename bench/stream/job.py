"""One stream job in its child process: the entry function ``bench.stream.job:job_main``."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.stream.protocol import PeriodResult, load_stream, prequential, summarise


@dataclass
class StreamSpec:
    task_path: str
    pipeline: str
    strategy: str
    seed: int = 0
    budget_s: float = 10.0
    update_budget_s: float = 5.0
    retrain_every: int = 1
    window: int | None = None
    threads: int = 1


def run_job(spec: StreamSpec, job_dir: Path) -> dict[str, Any]:
    """The prequential loop for one pipeline x strategy x seed; periods are appended to ``periods.jsonl`` as
    they are measured, so a job killed half-way keeps them."""
    from bench import measure
    from bench.discovery import load_module
    from bench.metrics import METRICS
    from bench.tasks import load_task

    task = load_task(Path(spec.task_path))
    stream = load_stream(task)
    module = load_module(spec.pipeline)
    measure.pin_framework_threads(spec.threads)
    budgets = {"fit": spec.budget_s, "update": spec.update_budget_s}

    def info(kind: str):
        return stream.data.info(seed=spec.seed, threads=spec.threads, budget_s=budgets[kind],
                                deadline=time.monotonic() + budgets[kind])

    def model_bytes(pipe) -> float:
        folder = Path(tempfile.mkdtemp(dir=job_dir))
        try:
            pipe.save(folder)
            return float(measure.directory_bytes(folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    log = (job_dir / "periods.jsonl").open("a")

    def on_period(result: PeriodResult) -> None:
        log.write(json.dumps(asdict(result), default=str) + "\n")
        log.flush()

    with log:
        initial, periods = prequential(lambda: module.Pipeline(), stream, spec.strategy, info,
                                       retrain_every=spec.retrain_every, window=spec.window,
                                       model_bytes=model_bytes, on_period=on_period)
    summary = summarise(periods, stream, METRICS[task.metric].greater_is_better) | initial
    result = {"summary": summary, "drifts": [stream.labels[d] for d in stream.drifts],
              "n_periods": stream.n_periods, "initial_periods": stream.initial}
    from bench.execution.child import write_result

    write_result(job_dir, result)
    return result


def job_main(folder: Path) -> None:
    """The stream job's entry function on the child protocol (``bench.stream.job:job_main``)."""
    from bench.execution.child import read_spec

    spec = read_spec(folder)
    spec.pop("cores", None)
    run_job(StreamSpec(**spec), folder)
