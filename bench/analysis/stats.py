"""Statistics over seeds and tasks: spread, bootstrap intervals, ranks, Friedman and Nemenyi.

Seeds are the unit of repetition within a task (each seed is its own split), tasks the unit across tasks.
Everything on ``bench matrix``'s common path is plain numpy: importing
scipy.stats costs ~1 s and autorank (matplotlib, statsmodels) several, against a 3 s budget for the whole
command. autorank draws the critical-difference diagram in the HTML export and, with scipy.stats, is the
test oracle for the numbers computed here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MIN_TASKS_FOR_RANK_TEST = 5  # below this the Friedman test has almost no power and Nemenyi's CD is huge


def mean_sd(values: Sequence[float] | np.ndarray | pd.Series) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (sd is NaN with fewer than two)."""
    x = _finite(values)
    if not len(x):
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan


def bootstrap_ci(values: Sequence[float] | np.ndarray | pd.Series, level: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; NaN with fewer than two finite values.

    Percentile rather than BCa: with the 2-5 seeds a benchmark can afford, BCa's acceleration estimate is
    degenerate. With so few values the interval is indicative only, so callers show the number of seeds.
    Plain numpy (scipy.stats.bootstrap, the tests' oracle, costs ~1 s to import).
    """
    x = _finite(values)
    if len(x) < 2:
        return math.nan, math.nan
    means = x[np.random.default_rng(seed).integers(0, len(x), size=(n_resamples, len(x)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def kendall_tau(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b between two rankings (scipy.stats.kendalltau is the tests' oracle)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    i, j = np.triu_indices(len(a), 1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    denom = math.sqrt(float((da != 0).sum()) * float((db != 0).sum()))
    return float((da * db).sum() / denom) if denom else math.nan


def friedman(table: np.ndarray) -> tuple[float, float]:
    """Friedman chi-square statistic and p-value over blocks (rows) x treatments (columns), higher = better.

    With the tie correction, as scipy.stats.friedmanchisquare (the tests' oracle).
    """
    n, k = table.shape
    ranks = pd.DataFrame(table).rank(axis=1, method="average").to_numpy()
    ties = sum(float((c**3 - c).sum()) for c in (np.unique(r, return_counts=True)[1] for r in ranks))
    correction = 1 - ties / (k * (k * k - 1) * n)
    stat = (12.0 / (n * k * (k + 1)) * float((ranks.sum(axis=0) ** 2).sum()) - 3 * n * (k + 1)) / correction
    return float(stat), chi2_sf(stat, k - 1)


def chi2_sf(x: float, df: int) -> float:
    """Chi-square survival function for integer degrees of freedom, in closed form (no scipy import)."""
    if x <= 0:
        return 1.0
    h = x / 2
    if df % 2 == 0:  # exp(-h) * sum_{i < df/2} h^i / i!
        term = total = math.exp(-h)
        for i in range(1, df // 2):
            term *= h / i
            total += term
        return total
    total = math.erfc(math.sqrt(h))  # plus exp(-h) * sum_{i=1}^{(df-1)/2} h^(i-1/2) / Gamma(i+1/2)
    term = math.exp(-h) * math.sqrt(h) / math.gamma(1.5)
    for i in range(1, (df - 1) // 2 + 1):
        total += term
        term *= h / (i + 0.5)
    return total


# Two-tailed Nemenyi q_alpha for k = 2..10 (Demšar 2006, table 5); studentized range / sqrt(2) beyond.
NEMENYI_Q = {0.05: [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164],
             0.10: [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]}


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Critical difference of mean ranks for k treatments over n blocks."""
    if alpha in NEMENYI_Q and 2 <= k <= 10:
        q = NEMENYI_Q[alpha][k - 2]
    else:
        from scipy.stats import studentized_range

        q = studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


@dataclass
class RankTest:
    """Ranks of pipelines across tasks (1 = best) and, with enough tasks, the tests on them."""

    mean_ranks: pd.Series
    n_tasks: int
    test: str | None = None
    p_value: float | None = None
    cd: float | None = None
    alpha: float = 0.05
    dropped_tasks: list[str] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"mean_ranks": {k: round(float(v), 4) for k, v in self.mean_ranks.items()},
                "n_tasks": self.n_tasks, "test": self.test, "p_value": self.p_value, "critical_difference": self.cd,
                "alpha": self.alpha, "dropped_tasks": self.dropped_tasks, "note": self.note}


def rank_test(table: pd.DataFrame, alpha: float = 0.05) -> RankTest:
    """Friedman test plus Nemenyi critical difference over a tasks x pipelines table (higher is better).

    Only tasks where every pipeline has a value take part (the tests need complete blocks); the others are
    named in ``dropped_tasks``. With two pipelines the Wilcoxon signed-rank test replaces Friedman.
    """
    complete = table.dropna(axis=0, how="any")
    dropped = sorted(set(table.index) - set(complete.index))
    n, k = complete.shape
    ranks = complete.rank(axis=1, ascending=False, method="average").mean() if n else pd.Series(dtype=float)
    result = RankTest(ranks.sort_values(), n, alpha=alpha, dropped_tasks=[str(t) for t in dropped])
    if k < 2:
        result.note = "one pipeline: nothing to rank"
    elif n < MIN_TASKS_FOR_RANK_TEST:
        result.note = (f"{n} complete task(s): the Friedman test and the Nemenyi critical difference need >= "
                       f"{MIN_TASKS_FOR_RANK_TEST} tasks, so only mean ranks are shown")
    elif k == 2:
        from scipy.stats import wilcoxon

        diff = complete.iloc[:, 0] - complete.iloc[:, 1]
        result.test, result.p_value = "wilcoxon", float(wilcoxon(diff, zero_method="zsplit").pvalue)
    else:
        result.test = "friedman"
        result.p_value = friedman(complete.to_numpy(dtype=float))[1]
        result.cd = nemenyi_cd(k, n, alpha)
    if result.p_value is not None:
        verdict = "differ" if result.p_value < alpha else "do not differ significantly"
        result.note = (f"{result.test} test over {n} tasks: p = {result.p_value:.3g}, ranks {verdict} at "
                       f"alpha = {alpha}" + (f"; Nemenyi CD = {result.cd:.2f} ranks" if result.cd else ""))
    return result


def _finite(values: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]
