"""Money: what training and serving a pipeline would cost at a cloud provider's on-demand prices.

Technology selection weighs cost; CPU seconds alone have no unit a budget is written in. The model is the
simplest one a cloud bill follows (a container billed per vCPU-hour and per GB-hour of memory it holds):

- ``train_usd`` per fit: ``fit_wall_s`` x the job's cores x the vCPU price, plus the training process's memory
  (``baseline_rss_mb`` + ``peak_rss_mb``) x ``fit_wall_s`` x the GB price. The cores are held for the wall time
  whether the fit keeps them busy or not, as a container's are.
- ``usd_per_million_batch``: the seconds one million rows take at ``batch_rows_per_s`` on the job's cores,
  priced like training with the serving memory (``serving_rss_mb``) held.
- ``usd_per_million_online``: one million single-row calls at the online p50 latency, one core each, with the
  serving memory held (a server answering one request at a time per core).

Default prices: AWS Fargate, Linux/x86, US East (N. Virginia), on-demand: $0.04048 per vCPU-hour and $0.004445
per GB-hour (aws.amazon.com/fargate/pricing, the rates quoted there in June 2026). ``bench matrix
--price-cpu-hour X --price-gb-hour Y`` sets others (another region, a spot price, your own hardware's cost).
Serving memory missing (runs logged before it) prices memory at 0 for that run: the CPU share dominates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.errors import BenchError

DEFAULT_CPU_HOUR = 0.04048
DEFAULT_GB_HOUR = 0.004445
DEFAULT_SOURCE = "AWS Fargate Linux/x86 on-demand, US East (N. Virginia), June 2026"


@dataclass(frozen=True)
class Prices:
    """Dollars per vCPU-hour and per GB-hour of memory, and where they come from."""

    cpu_hour: float = DEFAULT_CPU_HOUR
    gb_hour: float = DEFAULT_GB_HOUR
    source: str = DEFAULT_SOURCE

    def describe(self) -> str:
        return f"${self.cpu_hour:g} per vCPU-hour, ${self.gb_hour:g} per GB-hour ({self.source})"


def prices(cpu_hour: float | None = None, gb_hour: float | None = None) -> Prices:
    """The default prices with the user's overrides, validated (a zero or negative price would make every
    pipeline free and the money criteria meaningless)."""
    for value, option in ((cpu_hour, "--price-cpu-hour"), (gb_hour, "--price-gb-hour")):
        if value is not None and (not math.isfinite(value) or value <= 0 or value > 1e6):
            raise BenchError(f"must be a finite number of dollars > 0 and <= 1e+06, got {value}", field=option)
    if cpu_hour is None and gb_hour is None:
        return Prices()
    return Prices(DEFAULT_CPU_HOUR if cpu_hour is None else float(cpu_hour),
                  DEFAULT_GB_HOUR if gb_hour is None else float(gb_hour), "set by the user")


def per_run(fin: pd.DataFrame, price: Prices) -> dict[str, pd.Series]:
    """The three money criteria for each finished run (NaN where a run lacks the figure they rest on)."""
    def col(name: str, default: float = math.nan) -> pd.Series:
        if name not in fin:
            return pd.Series(default, index=fin.index, dtype=float)
        return pd.to_numeric(fin[name], errors="coerce").astype(float)

    cores = col("threads", 1.0).fillna(1.0).clip(lower=1.0)
    per_s_cpu, per_s_gb = price.cpu_hour / 3600.0, price.gb_hour / 3600.0
    wall = col("fit_wall_s")
    train_gb = (col("baseline_rss_mb", 0.0).fillna(0.0) + col("peak_rss_mb", 0.0).fillna(0.0).clip(lower=0)) / 1024
    serving_gb = col("serving_rss_mb", 0.0).fillna(0.0).clip(lower=0) / 1024
    batch_s = 1e6 / col("batch_rows_per_s").where(lambda s: s > 0)
    online_s = 1e6 * col("latency_p50_ms") / 1e3
    return {"train_usd": wall * (cores * per_s_cpu + train_gb * per_s_gb),
            "usd_per_million_batch": batch_s * (cores * per_s_cpu + serving_gb * per_s_gb),
            "usd_per_million_online": online_s * (per_s_cpu + serving_gb * per_s_gb)}

