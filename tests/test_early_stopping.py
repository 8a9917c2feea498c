"""MLPerf LoadGen's early-stopping rule (bench.early_stopping) against the figures MLPerf documents and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from bench import early_stopping as es
from bench import measure


def test_minimum_calls_for_a_p99_at_99_percent_confidence_is_mlperfs_662():
    # LoadGen's mlperf.conf sets min_query_count = 662 for its p99 scenario (MultiStream), the h(t=1) + 1 of
    # early_stopping.cc at confidence 0.99 and tolerance 0; for its p90 SingleStream the same rule gives 64.
    assert es.min_calls(0.99) == 662 == es.min_passing(1, 0.99) + 1
    assert es.min_calls(0.90) == 64
    assert es.min_passing(0, 0.99) == 459  # no overlatency call at all: 0.99^h < 0.01 from h = 459


@pytest.mark.parametrize(("h", "t", "p"), [(459, 0, 0.99), (661, 1, 0.99), (900, 3, 0.99), (5000, 40, 0.99),
                                           (63, 1, 0.9), (200, 12, 0.95)])
def test_odds_is_loadgens_regularised_incomplete_beta(h, t, p):
    assert es.odds(h, t, p) == pytest.approx(beta.cdf(p, h, t + 1), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("t", [0, 1, 2, 5, 17, 60])
def test_min_passing_is_the_smallest_h_with_odds_under_one_minus_confidence(t):
    h = es.min_passing(t)
    assert es.odds(h, t, 0.99) < 0.01 <= es.odds(h - 1, t, 0.99)


def test_the_estimate_discards_the_t_minus_one_slowest_calls():
    assert es.overlatency_allowed(661) is None and es.estimate(list(range(661))) is None
    assert es.overlatency_allowed(662) == 1 and es.estimate(list(range(1, 663))) == 662  # the slowest call
    assert es.overlatency_allowed(1000) == 2 and es.estimate(list(range(1, 1001))) == 999
    assert es.overlatency_allowed(10_000) == 77
    # LoadGen's t for n calls: the first i >= 2 with n < h(i) + i, minus one
    for n in (700, 1500, 4000):
        t = es.overlatency_allowed(n)
        assert n >= es.min_passing(t) + t and n < es.min_passing(t + 1) + t + 1
    shuffled = np.random.default_rng(0).permutation(np.arange(1.0, 1001.0))
    assert es.estimate(list(shuffled)) == 999.0


def test_the_latency_loop_logs_the_estimate_once_it_has_enough_calls():
    enough = measure.single_row_latency(lambda row: row, list(range(10)), n=700, warmup=1)
    metrics = enough.as_metrics("latency")
    assert metrics["latency_p99_es_ms"] >= metrics["latency_p99_ms"]
    assert metrics["latency_p99_es_ms"] == pytest.approx(float(np.sort(enough.samples_ns)[-1]) / 1e6)
    few = measure.single_row_latency(lambda row: row, list(range(10)), n=100, warmup=1)
    assert "latency_p99_es_ms" not in few.as_metrics("latency")


def test_a_suite_job_times_enough_calls_for_the_rule():
    from bench.execution.runner import RunConfig
    from bench.execution.worker import P99_MIN_CALLS, JobSpec

    # the latency loop never stops below P99_MIN_CALLS (unless --latency-n asks for fewer), and asks for more
    assert es.min_calls() == P99_MIN_CALLS
    assert JobSpec("t", "p", 0, 1.0, 1).latency_n >= P99_MIN_CALLS
    assert RunConfig.__dataclass_fields__["latency_n"].default >= P99_MIN_CALLS
