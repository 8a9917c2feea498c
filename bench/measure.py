"""The measurement protocol: timers, latency, memory sampling, model size and lines of code.

Every figure comes back with how it was measured (n, repeats, rows), because a number without its
protocol cannot be compared. Latency follows MLPerf SingleStream (one query at a time, warm-up first,
``perf_counter_ns``, GC off); throughput follows MLPerf Offline (all rows at once, median of repeats).
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import early_stopping
from bench.procfs import tree_rss

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """Environment that pins every native thread pool; must be set before numpy or a framework loads."""
    # PASSIVE: idle OpenMP threads sleep instead of spinning; on a busy 2-core machine spinning made
    # HistGradientBoosting with 2 threads up to 100x slower.
    return {name: str(threads) for name in THREAD_ENV_VARS} | {"TF_CPP_MIN_LOG_LEVEL": "2",
                                                               "KMP_AFFINITY": "disabled",
                                                               "OMP_WAIT_POLICY": "PASSIVE"}


def pin_framework_threads(threads: int) -> None:
    """Apply the thread count to frameworks already imported (the env covers the rest)."""
    import sys

    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # set once per process; the env var already did it
            torch.set_num_interop_threads(threads)
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # context already initialised; TF_NUM_*_THREADS applied instead
            pass


@dataclass
class Timing:
    wall_s: float = 0.0
    cpu_s: float = 0.0


@contextmanager
def timed() -> Iterator[Timing]:
    """Wall and CPU seconds of the block; CPU counts every thread of this process and reaped children."""
    result = Timing()
    wall0, cpu0, child0 = time.perf_counter(), time.process_time(), _children_cpu()
    try:
        yield result
    finally:
        result.wall_s = time.perf_counter() - wall0
        result.cpu_s = time.process_time() - cpu0 + _children_cpu() - child0


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


class RssSampler:
    """Peak resident memory of this process (and its children) above a baseline, sampled in a thread.

    ``tracemalloc`` misses torch and TensorFlow allocations and virtual size overstates them, so RSS is the
    honest figure. Sampling every ``interval_s`` can miss a spike shorter than that.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.pid = os.getpid()
        self.baseline = self._rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        return tree_rss(self.pid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def peak_over_baseline_mb(self) -> float:
        return max(0.0, (self.peak - self.baseline) / 2**20)


@dataclass
class LatencyStats:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    n: int
    warmup: int
    samples_ns: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    p99_es_ms: float = float("nan")  # MLPerf's early-stopping p99 (bench.early_stopping); NaN below its minimum

    def as_metrics(self, prefix: str) -> dict[str, float]:
        out = {f"{prefix}_p50_ms": self.p50_ms, f"{prefix}_p90_ms": self.p90_ms,
               f"{prefix}_p99_ms": self.p99_ms, f"{prefix}_mean_ms": self.mean_ms, f"{prefix}_n": self.n}
        if np.isfinite(self.p99_es_ms):
            out[f"{prefix}_p99_es_ms"] = self.p99_es_ms
        return out


def single_row_latency(predict: Callable[[Any], Any], rows: Sequence[Any], n: int = 1000,
                       warmup: int = 50, cap_s: float = float("inf"), min_n: int = 0) -> LatencyStats:
    """Time ``predict(row)`` one row at a time, cycling through pre-built ``rows``.

    Stops after ``n`` calls or once ``cap_s`` seconds of calls are spent, whichever comes first, but never
    before ``min(n, min_n)`` calls (the count a p99 needs), so a slow pipeline cannot hold a job for minutes
    nor report a tail from too few calls; ``n`` in the result is what was done. Rows are prepared before
    timing so slicing a DataFrame is not charged to the model. GC is off while timing so a collection pause
    lands in no particular call.
    """
    for i in range(warmup):
        predict(rows[i % len(rows)])
    samples = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    floor = min(n, min_n)
    cap_ns = cap_s * 1e9 if np.isfinite(cap_s) else float("inf")
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    done = n
    try:
        start = clock()
        for i in range(n):
            row = rows[i % len(rows)]
            t0 = clock()
            predict(row)
            t1 = clock()
            samples[i] = t1 - t0
            if i + 1 >= floor and t1 - start > cap_ns:
                done = i + 1
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    ms = samples[:done] / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    tail = early_stopping.estimate(ms.tolist())
    return LatencyStats(float(p50), float(p90), float(p99), float(ms.mean()), done, warmup, samples[:done],
                        float("nan") if tail is None else tail)


@dataclass
class Throughput:
    rows_per_s: float
    rows: int
    repeats: int
    seconds: list[float]


def batch_throughput(predict: Callable[[Any], Any], batch: Any, rows: int, repeats: int = 5,
                     max_seconds: float = 30.0) -> Throughput:
    """Rows per second of ``predict(batch)``: one warm-up call, then the median of ``repeats`` timed calls.

    Stops repeating once ``max_seconds`` is spent (slow pipelines on big batches), keeping at least one.
    """
    predict(batch)
    seconds: list[float] = []
    spent = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict(batch)
        seconds.append(time.perf_counter() - t0)
        spent += seconds[-1]
        if spent > max_seconds:
            break
    return Throughput(rows / float(np.median(seconds)), rows, len(seconds), seconds)


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def code_effort(source_file: Path) -> dict[str, float]:
    """Logical lines (radon LLOC: statements, so formatting cannot change it), the batch and online paths' LLOC
    apart (``bench.effort``) and cyclomatic complexity."""
    from radon.complexity import cc_visit
    from radon.raw import analyze

    from bench.effort import path_lloc

    code = Path(source_file).read_text(encoding="utf-8")
    raw = analyze(code)
    blocks = cc_visit(code)
    functions = [b for b in blocks if getattr(b, "letter", "") in ("F", "M")] or blocks
    total = sum(b.complexity for b in functions)
    return {"lloc": float(raw.lloc), "sloc": float(raw.sloc),
            "complexity_total": float(total),
            "complexity_max": float(max((b.complexity for b in functions), default=0)),
            "complexity_mean": float(total / len(functions)) if functions else 0.0} | path_lloc(code)
