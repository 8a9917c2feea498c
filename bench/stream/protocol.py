"""The stream and the prequential protocol, in process: cut a task into periods, score then learn."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bench.errors import BenchError, TaskError
from bench.store import FEED_STRATEGY  # noqa: F401 (re-exported: the strategy that feeds the decision matrix)

STRATEGIES = ("static", "periodic", "incremental")
PROTOCOL_VERSION = "stream-1"
RECOVERY_TOLERANCE = 0.05
POINT_METRICS = ("quality", "constant_quality", "update_wall_s", "update_cpu_s", "update_rows", "model_bytes")


# ------------------------------------------------------------------ the stream and the protocol (in process)


@dataclass(frozen=True)
class Stream:
    """A stream task's rows in time order, with each row's period position (0 .. n_periods-1)."""

    data: Any  # TaskData without the period column
    position: np.ndarray
    labels: list[Any]  # the period of each position, as the task names it (month 3, period 8)
    initial: int
    drifts: list[int]  # positions
    drift_window: int

    @property
    def n_periods(self) -> int:
        return len(self.labels)


def _ordered(X, y, cfg: dict[str, Any]):
    if "order" not in cfg:
        return X, y
    keys = X[cfg["order"]]
    order = np.argsort(keys.cat.codes.to_numpy() if hasattr(keys, "cat") else keys.to_numpy(), kind="stable")
    return X.iloc[order], y.iloc[order]


def _periods(X, y, cfg: dict[str, Any], data):
    """Each row's period position and the period labels; a period column leaves the features."""
    import pandas as pd

    if "period" in cfg:
        values = X[cfg["period"]]
        keep = values.notna().to_numpy()
        X, y, values = X[keep], y[keep], values[keep]
        labels = sorted(pd.unique(values).tolist())
        position = pd.Index(labels).get_indexer(values)
        X = X.drop(columns=cfg["period"])
        data = replace(data, numeric=tuple(c for c in data.numeric if c != cfg["period"]),
                       categorical=tuple(c for c in data.categorical if c != cfg["period"]))
    else:
        position = np.arange(len(X)) // cfg["rows"]
        labels = list(range(int(position.max()) + 1))
    labels = [int(v) if isinstance(v, float) and v.is_integer() else v for v in labels]
    return X, y, position, labels, data


def _sampled(X, y, position, n_periods: int, cfg: dict[str, Any]):
    if "sample_per_period" not in cfg:
        return X, y, position
    rng = np.random.default_rng(cfg.get("seed", 0))
    take = [np.sort(rng.permutation(np.flatnonzero(position == p))[:cfg["sample_per_period"]])
            for p in range(n_periods)]
    rows = np.sort(np.concatenate(take))
    return X.iloc[rows], y.iloc[rows], position[rows]


def load_stream(task, data=None) -> Stream:
    """Cut a stream task's data into periods (validated against the data: errors name file and field)."""

    from bench.tasks import cached_data

    cfg = task.stream
    if not cfg:
        raise TaskError("not a stream task: add a 'stream:' section (period or rows, initial_periods)",
                        file=task.path, field="stream")
    data = data or cached_data(task)
    X, y = data.X, data.y
    for key in ("order", "period"):
        if key in cfg and cfg[key] not in X.columns:
            raise TaskError(f"column {cfg[key]!r} is not among the prepared features ({', '.join(X.columns)})",
                            file=task.path, field=f"stream.{key}")
    X, y = _ordered(X, y, cfg)
    X, y, position, labels, data = _periods(X, y, cfg, data)
    X, y, position = _sampled(X, y, position, len(labels), cfg)
    if len(labels) <= cfg["initial_periods"]:
        raise TaskError(f"the stream has {len(labels)} periods: initial_periods must leave at least one to score",
                        file=task.path, field="stream.initial_periods")
    unknown = [d for d in cfg.get("drifts", []) if d not in labels]
    if unknown:
        raise TaskError(f"drift periods {unknown} are not periods of the stream ({labels[0]} .. {labels[-1]})",
                        file=task.path, field="stream.drifts")
    data = replace(data, X=X.reset_index(drop=True), y=y.reset_index(drop=True))
    return Stream(data, np.asarray(position), labels, cfg["initial_periods"],
                  [labels.index(d) for d in cfg.get("drifts", [])], cfg.get("drift_window", 3))


@dataclass
class PeriodResult:
    position: int
    period: Any
    rows: int
    quality: float
    constant_quality: float
    update: str = ""  # "" (none), "refit" or "update"
    update_wall_s: float = 0.0
    update_cpu_s: float = 0.0
    update_rows: int = 0  # rows given to fit/update
    new_rows: int = 0  # rows not learned before, absorbed by this update
    model_bytes: float = math.nan


def _score(pipe, X, y, y_seen, data) -> tuple[float, float]:
    """The primary metric of the model and of the constant predictor (prior of the labels seen so far)."""
    from bench.metrics import constant_predictions, score_all

    task = data.task
    proba = np.asarray(pipe.predict_proba(X)) if task.kind != "regression" else None
    pred = np.asarray(pipe.predict(X))
    const_pred, const_proba = constant_predictions(task.kind, y_seen, len(y), data.classes)
    out = []
    for p, q in ((pred, proba), (const_pred, const_proba)):
        try:
            with np.errstate(all="ignore"):
                out.append(score_all(task.kind, y, p, q, data.classes, task.positive_label)[task.metric])
        except ValueError:  # e.g. AUC of a period holding one class only
            out.append(math.nan)
    return out[0], out[1]


def prequential(make_pipe: Callable[[], Any], stream: Stream, strategy: str, info: Callable[[str], Any], *,
                retrain_every: int = 1, window: int | None = None,
                model_bytes: Callable[[Any], float] = lambda _: math.nan,
                on_period: Callable[[PeriodResult], None] = lambda _: None) -> tuple[dict[str, float], list]:
    """Test, then train, period by period. ``info("fit")`` / ``info("update")`` give a TaskInfo with a fresh
    deadline. Returns the initial fit's figures and one ``PeriodResult`` per scored period.

    Example:
        >>> initial, periods = prequential(Pipeline, load_stream(task), "incremental",
        ...                                lambda kind: data.info(0, 1, 5.0))  # doctest: +SKIP
    """
    from bench.measure import timed

    if strategy not in STRATEGIES:
        raise BenchError(f"unknown strategy {strategy!r}; expected {', '.join(STRATEGIES)}", field="--strategies")
    X, y, pos = stream.data.X, stream.data.y, stream.position
    first = pos < stream.initial
    pipe = make_pipe()
    with timed() as fit:
        pipe.fit(X[first], y[first], info("fit"))
    initial = {"initial_fit_wall_s": fit.wall_s, "initial_fit_cpu_s": fit.cpu_s,
               "initial_rows": float(first.sum()), "initial_model_bytes": model_bytes(pipe)}
    learned_until = stream.initial  # every period below this one has been learned from
    last_refit = stream.initial - 1
    results = []
    for t in range(stream.initial, stream.n_periods):
        rows = pos == t
        assert learned_until <= t  # prequential: the scoring model has never seen period t
        quality, constant = _score(pipe, X[rows], y[rows], y[pos < t], stream.data)
        result = PeriodResult(t, stream.labels[t], int(rows.sum()), quality, constant)
        if t < stream.n_periods - 1:  # nothing learned after the last period: nothing is left to score
            if strategy == "periodic" and t - last_refit >= retrain_every:
                lo = max(0, t + 1 - window) if window else 0
                train = (pos >= lo) & (pos <= t)
                result.update, result.update_rows = "refit", int(train.sum())
                result.new_rows = int(((pos > last_refit) & (pos <= t)).sum())
                pipe = make_pipe()
                with timed() as cost:
                    pipe.fit(X[train], y[train], info("fit"))
                last_refit, learned_until = t, t + 1
            elif strategy == "incremental":
                result.update, result.update_rows, result.new_rows = "update", int(rows.sum()), int(rows.sum())
                with timed() as cost:
                    pipe.update(X[rows], y[rows], info("update"))
                learned_until = t + 1
            if result.update:
                result.update_wall_s, result.update_cpu_s = cost.wall_s, cost.cpu_s
                result.model_bytes = model_bytes(pipe)
        results.append(result)
        on_period(result)
    return initial, results


def _update_costs(periods: list[PeriodResult]) -> dict[str, float]:
    """Total update seconds and the wall milliseconds per new row absorbed."""
    updates = [p for p in periods if p.update]
    total = float(sum(p.update_wall_s for p in updates))
    new_rows = sum(p.new_rows for p in updates)
    return {"total_update_s": total, "total_update_cpu_s": float(sum(p.update_cpu_s for p in updates)),
            "updates": float(len(updates)), "update_ms": 1000 * total / new_rows if new_rows else math.nan}


def _drift_effect(before: list[PeriodResult], after: list[PeriodResult], later: list[PeriodResult | None],
                  sign: float) -> tuple[float, float, int | None]:
    """Post-drift quality, the share of the pre-drift edge over the constant predictor kept, and the periods
    until the quality is back within the tolerance of its pre-drift level (None: not before ``later`` ends)."""
    pre = float(np.mean([p.quality for p in before]))
    edge = sign * (pre - float(np.mean([p.constant_quality for p in before])))
    post_q = float(np.nanmean([p.quality for p in after]))
    post_const = float(np.nanmean([p.constant_quality for p in after]))
    kept = min(1.0, max(0.0, sign * (post_q - post_const) / edge)) if edge > 0 else math.nan
    target = pre * (1 - sign * RECOVERY_TOLERANCE)
    back = [i for i, p in enumerate(later) if p is not None and sign * (p.quality - target) >= 0]
    return post_q, kept, back[0] if back else None


def summarise(periods: list[PeriodResult], stream: Stream, higher_is_better: bool = True) -> dict[str, Any]:
    """Mean quality, post-drift quality, recovery periods, drift_quality and update costs."""
    by_pos = {p.position: p for p in periods}
    quality = np.array([p.quality for p in periods], dtype=float)
    out: dict[str, Any] = {"mean_quality": float(np.nanmean(quality)) if np.isfinite(quality).any() else math.nan}
    out |= _update_costs(periods)
    sign = 1.0 if higher_is_better else -1.0
    # The reference is the quality on the first concept, before any drift: the level a strategy that keeps
    # up with the concept returns to (a strategy that never recovered from drift 1 must not "recover" at 2).
    before = [by_pos[t] for t in range(stream.initial, stream.drifts[0] if stream.drifts else 0)
              if t in by_pos and np.isfinite(by_pos[t].quality)]
    ends = [*stream.drifts[1:], stream.n_periods]  # a drift's recovery must come before the next drift
    effects = []
    for d, end in zip(stream.drifts, ends[:len(stream.drifts)], strict=True):
        after = [by_pos[t] for t in range(d, min(d + stream.drift_window, stream.n_periods)) if t in by_pos]
        if before and after:
            effects.append(_drift_effect(before, after, [by_pos.get(t) for t in range(d, end)], sign))
    if before:
        out["pre_drift_quality"] = float(np.mean([p.quality for p in before]))
    if effects:
        post, kept, recovery = (list(column) for column in zip(*effects, strict=True))
        out["post_drift_quality"] = float(np.mean(post))
        out["drift_quality"] = float(np.nanmean(kept)) if np.isfinite(kept).any() else math.nan
        out["recovery"] = recovery
    return out
