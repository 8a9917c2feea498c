"""MLPerf LoadGen's early-stopping rule: how many calls a tail-latency claim needs, and its conservative estimate.

A plain empirical p99 from a few hundred calls is optimistic: with 500 calls it rests on the 5 slowest. MLPerf
Inference (LoadGen ``loadgen/early_stopping.cc`` and ``PerformanceSummary::EarlyStopping`` in
``loadgen/results.cc``; the rule is the "Early Stopping Criterion" appendix of the MLPerf Inference rules)
instead asks: having seen ``t`` calls over a latency bound, how many calls under it (``h``) make it 99 % sure
that the true share under the bound is at least the percentile ``p``? That is the smallest ``h`` with

    I(p - d; h, t + 1) < 1 - c        (regularised incomplete beta: the binomial CDF of <= t overlatency calls)

with tolerance ``d = 0`` and confidence ``c = 0.99``. For the SingleStream/MultiStream estimate LoadGen then
finds the largest ``t`` the run's ``n`` calls allow (the first ``i >= 2`` with ``n < h(i) + i``, minus one),
discards the ``t - 1`` slowest calls and reports the slowest of the rest. Below ``h(1) + 1`` calls (662 for
p99 at 99 %, the ``min_query_count`` LoadGen's mlperf.conf sets for its p99 scenario) there is no estimate.

The binomial CDF is summed term by term in log space (``t`` stays small: about 1 % of ``n`` for a p99) rather
than with LoadGen's hypergeometric series; both evaluate the same function, the tests check it against
scipy's beta distribution. Pure Python: the job child and ``bench matrix`` both import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

CONFIDENCE = 0.99
TOLERANCE = 0.0
P99 = 0.99


def odds(h: int, t: int, p: float, d: float = TOLERANCE) -> float:
    """Probability that a system meeting the bound a share ``p - d`` of the time shows <= ``t`` overlatency
    calls in ``h + t`` (LoadGen's ``odds``: BetaRegularized[p - d, h, 1 + t])."""
    q = p - d  # chance of a call under the bound
    n = h + t
    if h <= 0:
        return 1.0
    log_q, log_r = math.log(q), math.log1p(-q)
    total = 0.0
    for k in range(t + 1):  # k overlatency calls among n
        total += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_r
                          + (n - k) * log_q)
    return min(1.0, total)


@lru_cache(maxsize=4096)
def min_passing(t: int, p: float = P99, d: float = TOLERANCE, c: float = CONFIDENCE) -> int:
    """Smallest ``h`` (calls under the bound) with ``odds(h, t, p, d) < 1 - c`` (LoadGen's
    ``MinPassingQueriesFinder``): the odds fall as ``h`` grows, so a doubling search then a bisection find it."""
    if not 0 < p - d < 1 or not 0 < c < 1 or t < 0:
        raise ValueError(f"need 0 < p - d < 1, 0 < c < 1 and t >= 0; got p={p}, d={d}, c={c}, t={t}")
    low = max(1, math.ceil(math.log(1 - c) / math.log(p - d)))  # h needed with t = 0: a lower bound for any t
    high = low
    while odds(high, t, p, d) >= 1 - c:
        low, high = high + 1, high * 2
    while low < high:
        mid = (low + high) // 2
        if odds(mid, t, p, d) < 1 - c:
            high = mid
        else:
            low = mid + 1
    return low


def min_calls(p: float = P99, c: float = CONFIDENCE) -> int:
    """Fewest calls for which the rule states a ``p`` percentile at all: ``h(t=1) + 1`` (662 for p99 at 99 %)."""
    return min_passing(1, p, TOLERANCE, c) + 1


def overlatency_allowed(n: int, p: float = P99, c: float = CONFIDENCE) -> int | None:
    """LoadGen's ``t`` for ``n`` calls: the first ``i >= 2`` with ``n < h(i) + i``, minus one; None below the
    minimum. The estimate discards the ``t - 1`` slowest calls."""
    if n < min_calls(p, c):
        return None
    t = 1
    for i in range(2, n + 1):
        if n < min_passing(i, p, TOLERANCE, c) + i:
            t = i - 1
            break
    return t


def estimate(latencies: Sequence[float], p: float = P99, c: float = CONFIDENCE) -> float | None:
    """The early-stopping ``p`` percentile of the latencies (any unit), or None with too few calls."""
    n = len(latencies)
    t = overlatency_allowed(n, p, c)
    if t is None:
        return None
    return float(sorted(latencies)[n - t])
