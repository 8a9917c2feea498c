"""The measurement protocol's pieces measure what they claim."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench import measure
from tests.conftest import REPO


def test_single_row_latency_counts_calls_and_orders_percentiles():
    calls = []
    stats = measure.single_row_latency(lambda row: (calls.append(row), time.sleep(0.0005)), list(range(7)),
                                       n=200, warmup=10)
    assert len(calls) == 210 and stats.n == 200 and stats.warmup == 10
    assert 0.5 <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms
    assert stats.p50_ms == pytest.approx(float(np.percentile(stats.samples_ns, 50)) / 1e6)


def test_batch_throughput_is_rows_over_median_time():
    result = measure.batch_throughput(lambda batch: time.sleep(0.01), None, rows=1000, repeats=3)
    assert result.repeats == 3 and len(result.seconds) == 3
    assert min(result.seconds) >= 0.01
    assert result.rows_per_s == pytest.approx(1000 / float(np.median(result.seconds)))


def test_rss_sampler_sees_an_allocation_above_baseline():
    with measure.RssSampler(interval_s=0.002) as sampler:
        block = np.ones(200 * 2**20 // 8)
        time.sleep(0.05)
    del block
    assert 150 < sampler.peak_over_baseline_mb < 400


def test_code_effort_counts_logical_lines_not_formatting(tmp_path):
    compact = tmp_path / "a.py"
    compact.write_text("def f(x):\n    if x:\n        return 1\n    return 2\n")
    spread = tmp_path / "b.py"
    spread.write_text("def f(x):\n\n    # comment\n    if x:\n\n        return 1\n\n    return 2\n")
    a, b = measure.code_effort(compact), measure.code_effort(spread)
    assert a["lloc"] == b["lloc"] == 4
    assert a["complexity_total"] == 2
    assert measure.code_effort(REPO / "bench" / "pipelines" / "sklearn_hgb.py")["lloc"] > 20


def test_thread_env_pins_every_pool():
    env = measure.thread_env(3)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "3"
