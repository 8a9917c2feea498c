"""Runs -> criteria per pipeline: one row per pipeline (``Aggregate.table``) and per pipeline and task.

- Quality is normalised per task *and split* (seed), so tasks with different metrics can be averaged:
  0 is the constant predictor on that split (``primary_constant``), 1 the best score any pipeline reached
  on it. A pipeline's quality is the mean over its tasks and seeds; its spread is over seeds.
- Failures count (as automlbenchmark and TabArena do): every job of the planned grid (each task's seeds x
  every pipeline in the selection) that did not finish (FAILED, KILLED, or no run at all) scores the constant
  predictor, normalised quality 0, in quality and in ranks; ``imputed`` says how many per pipeline, and
  ``failure_rate`` is that share of its planned jobs. Averaging finished runs only would make a pipeline
  that fails on the hardest tasks look better than one that tried them.
- Money (:mod:`bench.analysis.cost`) is derived per finished run at the given prices, then aggregated like
  the other costs.
- Costs (times, sizes, memory): per task the median over seeds (robust to one noisy run on a busy
  machine), then the geometric mean over tasks, because they span orders of magnitude between tasks.
- Stream criteria come from the stream benchmark's runs of the online strategy.

Runs are the store's plain-named frame (:func:`bench.store.read_runs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis import cost, stats
from bench.analysis.criteria import CRITERIA, DONE, MEASURED, MONEY, TAIL_MIN_CALLS, P, S, T, lower_is_better
from bench.metrics import METRICS
from bench.store import FEED_STRATEGY


def _lower(metric: str) -> bool:
    return metric in METRICS and lower_is_better(metric)


@dataclass
class Aggregate:
    """Criteria per pipeline (``table``), per pipeline and task (``per_task``), and the runs behind them."""

    table: pd.DataFrame
    per_task: pd.DataFrame
    runs: pd.DataFrame
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)



def prepare(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Completed runs, one per job key: its newest finished run, else its newest failure (a retried job
    that finally finished is not a failure). Returns the runs and how many duplicates were dropped."""
    if runs.empty:
        return runs, 0
    runs = runs[runs["status"].isin(DONE)].copy()
    runs[S] = runs[S].astype(str) if S in runs else "0"
    if "job_key" not in runs:
        return runs, 0
    by, ascending = ["_failed"], [True]
    if "start_time" in runs:
        by, ascending = ["_failed", "start_time"], [True, False]
    ranked = runs.assign(_failed=runs["status"] != "FINISHED").sort_values(by, ascending=ascending, kind="stable")
    ranked = _current_measurements(ranked)
    keyed = ranked["job_key"].fillna("").astype(str) != ""
    unique = ranked[keyed].drop_duplicates("job_key")
    out = pd.concat([unique, ranked[~keyed]]).drop(columns="_failed")
    return out, len(runs) - len(out)


def _current_measurements(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task, pipeline and seed, only the job key of the newest run: after a pipeline file, a budget or a
    library changes, its older runs measure something else and must not be averaged with the new ones."""
    if "start_time" not in runs or not {"task", "pipeline"} <= set(runs.columns):
        return runs
    slot = ["task", "pipeline", S]
    newest = runs.sort_values("start_time", ascending=False, kind="stable").drop_duplicates(slot)
    current = set(newest["job_key"].fillna("").astype(str))
    return runs[runs["job_key"].fillna("").astype(str).isin(current) | runs["job_key"].isna()]


def normalised_quality(fin: pd.DataFrame) -> pd.Series:
    """Per finished run: (score - constant) / (best on the same task and split - constant), direction-aware.

    If no pipeline beat the constant predictor on a split, every run there gets 0: nothing was learned.
    """
    score, const = fin["primary_score"].astype(float), fin["primary_constant"].astype(float)
    heuristic = (score < const).groupby(fin[T]).transform("mean") > 0.5
    metric = fin.get("primary_metric")
    lower = heuristic if metric is None else np.where(metric.notna(), metric.map(_lower, na_action="ignore"), heuristic)
    sign = np.where(lower, -1.0, 1.0)
    s, c = score * sign, const * sign
    best = s.groupby([fin[T], fin[S]]).transform("max")
    span = best - c
    return pd.Series(np.where(span > 0, (s - c) / span.where(span > 0), 0.0), index=fin.index)


def split_stream(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Suite job runs and stream-benchmark runs (``kind`` stream), which only feed stream criteria."""
    if runs.empty or "kind" not in runs:
        return runs, runs.iloc[0:0]
    streamed = runs["kind"].eq("stream")
    return runs[~streamed], runs[streamed]


def stream_criteria(streamed: pd.DataFrame) -> pd.DataFrame:
    """Stream criteria per pipeline from the finished runs of the online strategy (``store.FEED_STRATEGY``):
    per task the median over seeds of each seed's newest run, then across tasks like the other criteria."""
    names = [n for n, c in CRITERIA.items() if c.stream]
    if streamed.empty or "strategy" not in streamed:
        return pd.DataFrame(columns=names)
    fin = streamed[(streamed["status"] == "FINISHED") & (streamed["strategy"] == FEED_STRATEGY)].copy()
    if "start_time" in fin:
        fin = fin.sort_values("start_time", ascending=False, kind="stable")
    fin[S] = fin[S].astype(str) if S in fin else "0"
    fin = fin.drop_duplicates([T, P, S])
    for name in names:
        column = CRITERIA[name].metric
        fin[name] = fin[column].astype(float) * CRITERIA[name].scale if column in fin else np.nan
    if fin.empty:
        return pd.DataFrame(columns=names)
    return _across(fin.groupby([P, T])[names].median(), names, level=P)


def aggregate(runs: pd.DataFrame, price: cost.Prices | None = None) -> Aggregate:
    """One row per pipeline: every criterion, its spread over seeds, quality's bootstrap interval, mean rank."""
    runs, streamed = split_stream(runs)
    agg = _aggregate_jobs(runs, price or cost.Prices())
    stream_table = stream_criteria(streamed)
    if agg.table.empty or stream_table.dropna(how="all").empty:
        return agg
    for name in stream_table.columns:
        agg.table[name] = stream_table[name].reindex(agg.table.index)
    # Stream criteria come from other tasks than the suite's: constraints on them use the pipeline's value.
    agg.per_task = agg.per_task.drop(columns=list(stream_table.columns), errors="ignore")
    # A finished incremental stream run shows the current pipeline learns online, even if its suite runs
    # predate its update() (their flag says what that older file could do).
    learners = agg.table.index.intersection(stream_table.index)
    agg.table.loc[learners, "online_learning"] = 1.0
    if "online_learning" in agg.per_task:
        rows = agg.per_task.index.get_level_values(P).isin(learners)
        agg.per_task.loc[rows, "online_learning"] = 1.0
    unmatched = sorted(set(stream_table.index) - set(agg.table.index))
    agg.notes.append("update_ms and drift_quality come from the stream benchmark's incremental runs (bench stream)"
                     + (f"; {', '.join(unmatched)} has stream runs but no suite runs" if unmatched else ""))
    return agg


def _aggregate_jobs(runs: pd.DataFrame, price: cost.Prices) -> Aggregate:
    runs, duplicates = prepare(runs)
    if runs.empty or P not in runs:
        return Aggregate(pd.DataFrame(), pd.DataFrame(), runs, duplicates, ["no completed runs in the selection"])
    fin = runs[runs["status"] == "FINISHED"].copy()
    # All read before any is written: a criterion may share its name with another one's run metric (lloc).
    fin = fin.assign(**{name: _measured(fin, CRITERIA[name]) for name in MEASURED})
    fin = fin.assign(**cost.per_run(fin, price))
    fin["quality"] = normalised_quality(fin) if len(fin) else pd.Series(dtype=float)
    costs = [*MEASURED, *MONEY]
    quality, planned = _imputed_quality(runs, fin)
    by_task = fin.groupby([P, T])
    per_task = by_task[costs].median().reindex(quality.groupby([P, T]).size().index)
    per_task["quality"] = quality.groupby([P, T])["quality"].mean()
    per_task["primary_score"] = by_task["primary_score"].mean()
    per_task["seeds"] = by_task.size().reindex(per_task.index).fillna(0).astype(int)
    if "latency_n" in fin:
        per_task["latency_n"] = by_task["latency_n"].min()
    table = _across(per_task, ["quality", *costs], level=P)
    per_seed = _across(fin, costs, keys=[fin[P], fin[S]]).join(
        quality.groupby([P, S])["quality"].mean(), how="outer")
    spread = per_seed.groupby(level=0).std().add_suffix("_sd")
    table = table.join(spread)
    table["quality_ci_low"], table["quality_ci_high"] = np.nan, np.nan
    for pipeline, values in per_seed["quality"].groupby(level=0):
        table.loc[pipeline, ["quality_ci_low", "quality_ci_high"]] = stats.bootstrap_ci(values.to_numpy())
    if len(per_task):
        table["mean_rank"] = per_task["quality"].unstack(T).rank(ascending=False).mean(axis=1)
    table = _counts(runs, fin, planned).join(table, how="left")
    table.index.name = "pipeline"
    notes = _data_notes(runs, fin, per_task)
    if missing := int(planned["imputed"].sum() - (runs["status"] != "FINISHED").sum()):
        notes.append(f"{missing} job(s) of the planned grid (each task's seeds x every pipeline) have no run "
                     "(never run, or still running): they count as failures, quality 0")
    notes.append(f"money at {price.describe()}")
    return Aggregate(table, per_task, pd.concat([fin, runs[runs["status"] != "FINISHED"]]), duplicates, notes)


def _imputed_quality(runs: pd.DataFrame, fin: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Quality per job of the planned grid, 0 (the constant predictor) where the job did not finish, and per
    pipeline the planned and imputed job counts."""
    seeds = runs.groupby(T)[S].unique()
    grid = pd.DataFrame([(p, t, s) for t, ss in seeds.items() for s in ss for p in runs[P].unique()],
                        columns=[P, T, S])
    done = fin[[P, T, S, "quality"]].drop_duplicates([P, T, S])
    quality = grid.merge(done, on=[P, T, S], how="left")
    imputed = quality["quality"].isna()
    quality["quality"] = quality["quality"].fillna(0.0)
    planned = pd.DataFrame({"planned": quality.groupby(P).size(), "imputed": imputed.groupby(quality[P]).sum()})
    return quality.set_index([P, T, S]), planned


def _measured(fin: pd.DataFrame, criterion) -> pd.Series | float:
    """A criterion's values from its run metric, or from its fallback metric where a run predates it."""
    values = fin[criterion.metric].astype(float) if criterion.metric in fin else pd.Series(np.nan, index=fin.index)
    if criterion.fallback and criterion.fallback in fin:
        values = values.fillna(fin[criterion.fallback].astype(float))
    return values * criterion.scale


def _across(frame: pd.DataFrame, cols: list[str], level: str | None = None, keys: Any = None) -> pd.DataFrame:
    """Aggregate over tasks: geometric mean for log-scale criteria, arithmetic mean otherwise."""
    grouper = {"level": level} if level else {"by": keys}
    out = {}
    for name in cols:
        crit, values = CRITERIA[name], frame[name].astype(float)
        if crit.log:
            out[name] = np.exp(np.log(values.clip(lower=crit.floor)).groupby(**grouper).mean())
        else:
            out[name] = values.groupby(**grouper).mean()
    return pd.DataFrame(out)


def _counts(runs: pd.DataFrame, fin: pd.DataFrame, planned: pd.DataFrame) -> pd.DataFrame:
    """Run counts, imputed jobs, failure rate (of the planned jobs) and a one-line failure summary per pipeline."""
    by = runs.groupby(P)
    out = pd.DataFrame({"technology": by["technology"].first() if "technology" in runs else "",
                        "runs": by.size(), "finished": fin.groupby(P).size()}).fillna({"finished": 0})
    out["finished"] = out["finished"].astype(int)
    out["planned"] = planned["planned"].reindex(out.index).fillna(0).astype(int)
    out["imputed"] = planned["imputed"].reindex(out.index).fillna(0).astype(int)
    out["failure_rate"] = out["imputed"] / out["planned"].where(out["planned"] > 0)
    out["tasks"] = fin.groupby(P)[T].nunique().reindex(out.index).fillna(0).astype(int)
    out["seeds"] = fin.groupby(P)[S].nunique().reindex(out.index).fillna(0).astype(int)
    failed = runs[runs["status"] != "FINISHED"]
    cause = failed.get("failure_cause", pd.Series("failed", index=failed.index)).fillna("failed")
    out["failures"] = ""
    for pipeline, group in failed.assign(_c=cause).groupby(P):
        parts = []
        for why, runs_of in group.groupby("_c"):
            tasks = [f"{t} x{n}" for t, n in runs_of[T].value_counts().sort_index().items()]
            parts.append(f"{why} on {', '.join(tasks[:3])}" + (f" and {len(tasks) - 3} more tasks" if len(tasks) > 3
                                                                else ""))
        out.loc[pipeline, "failures"] = "; ".join(parts)
    return out


def _data_notes(runs: pd.DataFrame, fin: pd.DataFrame, per_task: pd.DataFrame) -> list[str]:
    """What the reader must know about the data before trusting the numbers."""
    notes = []
    for task, group in runs.groupby(T):
        if not (group["status"] == "FINISHED").any():
            errors = group["error"].dropna() if "error" in group else pd.Series(dtype=str)
            first = str(errors.iloc[0]).strip().splitlines()[0][:120] if len(errors) else ""
            notes.append(f"task {task}: all {len(group)} runs failed" + (f" ({first})" if first else ""))
    n_tasks = fin[T].nunique()
    for pipeline, count in fin.groupby(P)[T].nunique().items():
        if count < n_tasks:
            notes.append(f"{pipeline} finished on {count} of {n_tasks} tasks: its quality counts the others as 0, "
                         "its costs cover fewer tasks")
    if "latency_n" in fin and fin["latency_n"].notna().any():
        n_min = int(fin["latency_n"].min())
        if n_min < TAIL_MIN_CALLS:
            notes.append(f"p99 latencies rest on as few as {n_min} timed calls: MLPerf's early-stopping rule "
                         f"states a p99 only from {TAIL_MIN_CALLS} calls on, so p99 limits exclude such runs")
    if "latency_n" in fin:
        estimate = fin["latency_p99_es_ms"] if "latency_p99_es_ms" in fin else pd.Series(np.nan, index=fin.index)
        if (estimate.isna() & (fin["latency_n"] >= TAIL_MIN_CALLS)).any():
            notes.append("some runs predate the early-stopping p99 estimate: their p99 is the empirical percentile")
    if "budget_s" in fin and fin["budget_s"].nunique() > 1:
        notes.append("runs with different budgets are mixed: " + ", ".join(
            f"{b} s" for b in sorted(fin["budget_s"].dropna().unique(), key=float)))
    if len(per_task) and fin[S].nunique() < 3:
        notes.append(f"{fin[S].nunique()} seed(s): intervals over seeds are indicative only")
    return notes

