"""Everything together: runs -> aggregate -> the profile's decision, the AutoML verdict and the rank test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from bench.analysis import stats
from bench.analysis.aggregate import Aggregate, aggregate
from bench.analysis.cost import Prices
from bench.analysis.criteria import P
from bench.analysis.decide import Decision, decide
from bench.analysis.verdict import automl_vs_manual

if TYPE_CHECKING:
    from bench.analysis.profiles import Profile


@dataclass
class Matrix:
    """What the exports show: the aggregate, the profile's decision, the AutoML verdict and the rank test."""

    aggregate: Aggregate
    decision: Decision
    verdict: dict[str, Any]
    ranks: stats.RankTest


def build(runs: pd.DataFrame, profile: Profile, price: Prices | None = None) -> Matrix:
    """The whole matrix from a runs DataFrame (as :func:`bench.store.read_runs` gives), money at ``price``
    (default: :class:`bench.analysis.cost.Prices`)."""
    agg = aggregate(runs, price)
    quality = (agg.per_task["quality"].unstack(P) if len(agg.per_task)
               else pd.DataFrame())
    return Matrix(agg, decide(agg, profile), automl_vs_manual(agg), stats.rank_test(quality))
