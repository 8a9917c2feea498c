"""The criteria of the decision matrix: what each column measures, which way is better, how it is normalised.

This is the root of the analysis: profiles, aggregation, decisions and reports import it, it imports none of
them. A criterion that is a task metric takes its direction from :data:`bench.metrics.METRICS` (declared
there once); the others (times, sizes, memory, effort) declare it here, once, in :data:`CRITERIA`.
Column names are the store's plain names (:mod:`bench.store`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.early_stopping import P99, min_calls
from bench.metrics import METRICS

DONE = ("FINISHED", "FAILED", "KILLED")  # RUNNING runs are in progress (or orphaned): neither result nor failure
P, T, S = "pipeline", "task", "seed"  # the columns that name a job slot
TAIL_LATENCIES = {"latency_p99_ms", "model_latency_p99_ms"}
#: Timed calls MLPerf's early-stopping rule needs before it states a p99 at 99 % confidence (662).
TAIL_MIN_CALLS = min_calls(P99)
RTT_CRITERIA = ("latency_p50_ms", "latency_p99_ms")  # end-to-end latencies a network round trip adds to


def lower_is_better(metric: str) -> bool:
    """Whether a task metric (``rmse``, ``roc_auc``, ...) is better when lower, from the metric registry."""
    return not METRICS[metric].greater_is_better


@dataclass(frozen=True)
class Criterion:
    """One column of the matrix: where it comes from, which way is better, how it is normalised."""

    label: str
    unit: str
    higher_is_better: bool
    log: bool
    bounds: tuple[float, float]  # (worst, best) defaults of the fixed normalisation; profiles may override
    metric: str | None = None  # the run metric; None for derived criteria (quality, failure rate)
    scale: float = 1.0
    floor: float = 1e-9  # lowest value used in a geometric mean (must be > 0)
    stream: bool = False  # logged by the stream benchmark, absent until it has run
    fallback: str | None = None  # the run metric to use where ``metric`` is missing (runs logged before it)


CRITERIA: dict[str, Criterion] = {
    "quality": Criterion("quality", "", True, False, (0.0, 1.0)),
    "fit_wall_s": Criterion("training wall time", "s", False, True, (3600.0, 0.01), "fit_wall_s"),
    "fit_cpu_s": Criterion("training CPU time", "s", False, True, (3600.0, 0.01), "fit_cpu_s"),
    "batch_rows_per_s": Criterion("batch throughput", "rows/s", True, True, (1e3, 1e8), "batch_rows_per_s"),
    "latency_p50_ms": Criterion("online p50 latency", "ms", False, True, (1000.0, 0.01), "latency_p50_ms"),
    # MLPerf's early-stopping estimate (conservative: the slowest call left after discarding the t - 1 slowest
    # the run's call count allows); the empirical p99 only for runs logged before the estimate was.
    "latency_p99_ms": Criterion("online p99 latency", "ms", False, True, (1000.0, 0.01), "latency_p99_es_ms",
                                fallback="latency_p99_ms"),
    "model_latency_p50_ms": Criterion("model-path p50 latency", "ms", False, True, (1000.0, 0.001),
                                      "model_latency_p50_ms"),
    "model_mb": Criterion("model size", "MB", False, True, (1000.0, 0.001), "model_bytes", scale=1e-6),
    # RSS sampled every 5 ms over the post-import baseline: below ~1 MB it is noise (and can be negative).
    "peak_rss_mb": Criterion("peak training memory", "MB", False, True, (16000.0, 1.0), "peak_rss_mb",
                             floor=1.0),
    # A process that only serves: imports above a bare interpreter, plus loading the model and one prediction.
    "serving_rss_mb": Criterion("serving memory", "MB", False, True, (4000.0, 10.0), "serving_rss_mb", floor=1.0),
    "cold_start_s": Criterion("cold start", "s", False, True, (60.0, 0.1), "cold_start_s"),
    # Effort counted fairly: the batch path (fit, predict, save, load and what they use) is what every profile
    # pays for; only the online-learning profile also pays for update() and what it alone uses.
    "lloc": Criterion("LLOC (batch path)", "lines", False, True, (2000.0, 10.0), "lloc_batch", fallback="lloc"),
    "lloc_total": Criterion("LLOC (batch + online path)", "lines", False, True, (2000.0, 10.0), "lloc"),
    "complexity": Criterion("cyclomatic complexity", "", False, True, (500.0, 1.0), "complexity_total",
                            floor=1.0),
    # Money at the prices of bench.analysis.cost (derived per run, no run metric of their own).
    "train_usd": Criterion("training cost per fit", "$", False, True, (10.0, 1e-6), floor=1e-9),
    "usd_per_million_batch": Criterion("batch cost per million rows", "$", False, True, (100.0, 1e-4), floor=1e-9),
    "usd_per_million_online": Criterion("online cost per million calls", "$", False, True, (1000.0, 1e-3),
                                        floor=1e-9),
    # Deployed forms, from bench deploy (derived in bench.analysis.deployed, with in-process fallbacks): the
    # exported model in its edge runtime (one thread, fresh process), the share of runs exported faithfully,
    # and the p99 of MLflow's model server under open-loop load at the profile's request rate.
    "edge_latency_p99_ms": Criterion("edge-runtime p99 latency", "ms", False, True, (1000.0, 0.001)),
    "edge_model_mb": Criterion("edge model size", "MB", False, True, (1000.0, 0.001)),
    "edge_serving_rss_mb": Criterion("edge serving memory", "MB", False, True, (4000.0, 10.0), floor=1.0),
    "edge_cold_start_s": Criterion("edge cold start", "s", False, True, (60.0, 0.01)),
    "edge_exported": Criterion("edge export", "", True, False, (0.0, 1.0)),
    "service_p99_ms": Criterion("service p99 latency", "ms", False, True, (1000.0, 0.1)),
    "online_learning": Criterion("online learning", "", True, False, (0.0, 1.0), "online_learning"),
    "failure_rate": Criterion("failure rate", "", False, False, (1.0, 0.0)),
    "update_ms": Criterion("update cost per row", "ms", False, True, (1000.0, 0.001), "update_ms",
                           stream=True),
    "drift_quality": Criterion("quality after drift", "", True, False, (0.0, 1.0), "drift_quality",
                               stream=True),
}
MEASURED = [name for name, c in CRITERIA.items() if c.metric]
MONEY = ("train_usd", "usd_per_million_batch", "usd_per_million_online")


def fmt_value(name: str, value: float) -> str:
    """A criterion value with its unit, short enough for a sentence: '41 ms', '2.1M rows/s', '25 %'."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if name == "online_learning":
        return "yes" if value >= 0.5 else "no"
    if name == "failure_rate":
        return f"{100 * value:.0f} %"
    if name == "edge_exported":
        return f"{100 * value:.0f} % of runs"
    unit = CRITERIA[name].unit if name in CRITERIA else ""
    if unit == "$":
        return f"${value:.3g}" if abs(value) < 1e4 else f"${value:,.0f}"
    if abs(value) >= 1e4:
        exp = min(int(math.log10(abs(value)) // 3), 3)
        text = f"{value / 10 ** (3 * exp):.3g}{'kMG'[exp - 1]}"
    else:
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{text} {unit}".strip()

