"""Runs -> criteria per pipeline -> a profile's ranked decision matrix, with the reasons for it.

- Quality is normalised per task *and split* (seed), so tasks with different metrics can be averaged:
  0 is the constant predictor on that split (``primary_constant``), 1 the best score any pipeline reached
  on it. A pipeline's quality is the mean over its tasks and seeds; its spread is over seeds.
- Costs (times, sizes, memory): per task the median over seeds (robust to one noisy run on a busy
  machine), then the geometric mean over tasks, because they span orders of magnitude between tasks.
- Hard constraints must hold on *every* task (the worst task decides): a 10 ms limit means 10 ms on the
  user's data, not on average.
- Scoring maps each criterion to a utility in [0, 1] between bounds fixed by the profile (log scale for
  times and sizes), so one pipeline's score does not depend on the others compared with it: adding a
  pipeline cannot reorder the rest, unless it sets a new best score on some task (quality's 1 is "the best
  seen", as the design asks). The weighted sum ranks; TOPSIS on the same utilities cross-checks it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench import stats

if TYPE_CHECKING:
    from bench.profiles import Constraint, Profile

LOWER_IS_BETTER = {"rmse", "mae", "log_loss"}
AUTOML_TECHNOLOGIES = {"flaml"}
DONE = ("FINISHED", "FAILED", "KILLED")  # RUNNING runs are in progress (or orphaned): neither result nor failure
P, T, S = "tags.pipeline", "tags.task", "tags.seed"
TAIL_LATENCIES = {"latency_p99_ms", "model_latency_p99_ms"}
TAIL_MIN_CALLS = 500  # FACTS.md: a p99 needs several hundred samples at least


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


CRITERIA: dict[str, Criterion] = {
    "quality": Criterion("quality", "", True, False, (0.0, 1.0)),
    "fit_wall_s": Criterion("training wall time", "s", False, True, (3600.0, 0.01), "metrics.fit_wall_s"),
    "fit_cpu_s": Criterion("training CPU time", "s", False, True, (3600.0, 0.01), "metrics.fit_cpu_s"),
    "batch_rows_per_s": Criterion("batch throughput", "rows/s", True, True, (1e3, 1e8), "metrics.batch_rows_per_s"),
    "latency_p50_ms": Criterion("online p50 latency", "ms", False, True, (1000.0, 0.01), "metrics.latency_p50_ms"),
    "latency_p99_ms": Criterion("online p99 latency", "ms", False, True, (1000.0, 0.01), "metrics.latency_p99_ms"),
    "model_latency_p50_ms": Criterion("model-path p50 latency", "ms", False, True, (1000.0, 0.001),
                                      "metrics.model_latency_p50_ms"),
    "model_mb": Criterion("model size", "MB", False, True, (1000.0, 0.001), "metrics.model_bytes", scale=1e-6),
    # RSS sampled every 5 ms over the post-import baseline: below ~1 MB it is noise (and can be negative).
    "peak_rss_mb": Criterion("peak training memory", "MB", False, True, (16000.0, 1.0), "metrics.peak_rss_mb",
                             floor=1.0),
    "cold_start_s": Criterion("cold start", "s", False, True, (60.0, 0.1), "metrics.cold_start_s"),
    "lloc": Criterion("LLOC", "lines", False, True, (2000.0, 10.0), "metrics.lloc"),
    "complexity": Criterion("cyclomatic complexity", "", False, True, (500.0, 1.0), "metrics.complexity_total",
                            floor=1.0),
    "online_learning": Criterion("online learning", "", True, False, (0.0, 1.0), "metrics.online_learning"),
    "failure_rate": Criterion("failure rate", "", False, False, (1.0, 0.0)),
    "update_ms": Criterion("update cost per row", "ms", False, True, (1000.0, 0.001), "metrics.update_ms",
                           stream=True),
    "drift_quality": Criterion("quality after drift", "", True, False, (0.0, 1.0), "metrics.drift_quality",
                               stream=True),
}
MEASURED = [name for name, c in CRITERIA.items() if c.metric]


@dataclass
class Aggregate:
    """Criteria per pipeline (``table``), per pipeline and task (``per_task``), and the runs behind them."""

    table: pd.DataFrame
    per_task: pd.DataFrame
    runs: pd.DataFrame
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Decision:
    """A profile applied to the criteria: ranked rows, the winner and why, and how robust that is."""

    profile: Profile
    table: pd.DataFrame
    weights: dict[str, float]
    winner: str | None
    winner_reason: str
    sensitivity: list[str]
    topsis_note: str
    notes: list[str]


# ---------------------------------------------------------------- reading runs

def read_runs(uri: str, tasks: list[str] | None = None, pipelines: list[str] | None = None) -> pd.DataFrame:
    """Job runs with the columns of ``mlflow.search_runs`` (as ``tracking.load_runs`` returns them).

    A local SQLite store is read with one query per table, read-only: over 1,000 runs that is ~0.1 s against
    several seconds for ``mlflow.search_runs`` (which builds an ORM object per metric, param and tag) plus
    ~1.5 s to import mlflow, and ``bench matrix`` has 3 s in all. Any other store, or a schema this does not
    recognise, goes through ``tracking.load_runs``; a test checks both give the same frame.

    Job runs are those with a ``job_key`` tag, in any experiment: a task may be named ``Default`` or
    ``matrix``. A store that cannot be read (corrupt, locked, not an MLflow store) is a one-line BenchError,
    and a SQLite file without MLflow's tables is never handed to MLflow (which would add its tables to it).
    """
    import sqlite3

    from bench.errors import BenchError

    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        try:
            return _read_sqlite(path, tasks, pipelines)
        except (sqlite3.Error, pd.errors.DatabaseError) as exc:
            cause = exc.__cause__ or exc  # pandas wraps sqlite3's error with the whole SQL text
            reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            if "no such table" in reason:
                raise BenchError(f"not an MLflow store ({reason}); give the store of `bench run` as --tracking-uri",
                                 file=path, field="--tracking-uri") from None
            if "no such column" not in reason:  # a schema this reader does not know: MLflow reads it below
                raise BenchError(f"cannot read the store ({reason}); if it is corrupt, move it aside and rerun "
                                 "`bench run`; if another process locks it, retry when it is done",
                                 file=path, field="--tracking-uri") from None
    from bench import tracking

    try:
        return tracking.load_runs(uri, tasks=tasks, pipelines=pipelines)
    except BenchError:
        raise
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(f"cannot read the runs of {uri}: {reason}", field="--tracking-uri") from None


def _read_sqlite(path: Path, tasks: list[str] | None, pipelines: list[str] | None) -> pd.DataFrame:
    import sqlite3

    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        exps = pd.read_sql_query("SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'",
                                 con)
        if tasks:
            exps = exps[exps["name"].isin(tasks)]
        if exps.empty:
            return pd.DataFrame()
        ids = ", ".join(str(int(i)) for i in exps["experiment_id"])
        selected = (f"SELECT r.run_uuid FROM runs r JOIN tags j ON j.run_uuid = r.run_uuid AND j.key = 'job_key' "
                    f"AND j.value != '' WHERE r.lifecycle_stage = 'active' AND r.experiment_id IN ({ids})")
        runs = pd.read_sql_query(
            "SELECT run_uuid AS run_id, experiment_id, status, artifact_uri, start_time, end_time FROM runs "
            f"WHERE run_uuid IN ({selected})", con)
        long = {kind: pd.read_sql_query(f"SELECT run_uuid, key, {value} AS value FROM {table} WHERE run_uuid IN "
                                        f"({selected})", con)
                for kind, table, value in [("metrics", "latest_metrics", "CASE WHEN is_nan THEN NULL ELSE value END"),
                                           ("params", "params", "value"), ("tags", "tags", "value")]}
    finally:
        con.close()
    runs["experiment_id"] = runs["experiment_id"].astype(str)
    for col in ("start_time", "end_time"):
        runs[col] = pd.to_datetime(runs[col], unit="ms", utc=True)
    runs = runs.set_index("run_id")
    wide = [frame.pivot(index="run_uuid", columns="key", values="value").add_prefix(f"{kind}.")
            for kind, frame in long.items() if len(frame)]
    runs = runs.join(wide).reset_index() if wide else runs.reset_index()
    metric_cols = [c for c in runs.columns if c.startswith("metrics.")]
    runs[metric_cols] = runs[metric_cols].astype(float)
    runs = runs.sort_values(["start_time", "run_id"], ascending=[False, True]).reset_index(drop=True)
    if pipelines and len(runs):
        runs = runs[runs["tags.pipeline"].isin(pipelines)]
    return runs


# ---------------------------------------------------------------- runs -> criteria

def prepare(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Completed runs, one per job key: its newest finished run, else its newest failure (a retried job
    that finally finished is not a failure). Returns the runs and how many duplicates were dropped."""
    if runs.empty:
        return runs, 0
    runs = runs[runs["status"].isin(DONE)].copy()
    runs[S] = runs[S].astype(str) if S in runs else "0"
    if "tags.job_key" not in runs:
        return runs, 0
    by, ascending = ["_failed"], [True]
    if "start_time" in runs:
        by, ascending = ["_failed", "start_time"], [True, False]
    ranked = runs.assign(_failed=runs["status"] != "FINISHED").sort_values(by, ascending=ascending, kind="stable")
    ranked = _current_measurements(ranked)
    keyed = ranked["tags.job_key"].fillna("").astype(str) != ""
    unique = ranked[keyed].drop_duplicates("tags.job_key")
    out = pd.concat([unique, ranked[~keyed]]).drop(columns="_failed")
    return out, len(runs) - len(out)


def _current_measurements(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task, pipeline and seed, only the job key of the newest run: after a pipeline file, a budget or a
    library changes, its older runs measure something else and must not be averaged with the new ones."""
    if "start_time" not in runs or not {"tags.task", "tags.pipeline"} <= set(runs.columns):
        return runs
    slot = ["tags.task", "tags.pipeline", S]
    newest = runs.sort_values("start_time", ascending=False, kind="stable").drop_duplicates(slot)
    current = set(newest["tags.job_key"].fillna("").astype(str))
    return runs[runs["tags.job_key"].fillna("").astype(str).isin(current) | runs["tags.job_key"].isna()]


def normalised_quality(fin: pd.DataFrame) -> pd.Series:
    """Per finished run: (score - constant) / (best on the same task and split - constant), direction-aware.

    If no pipeline beat the constant predictor on a split, every run there gets 0: nothing was learned.
    """
    score, const = fin["metrics.primary_score"].astype(float), fin["metrics.primary_constant"].astype(float)
    heuristic = (score < const).groupby(fin[T]).transform("mean") > 0.5
    metric = fin.get("params.primary_metric")
    lower = heuristic if metric is None else np.where(metric.notna(), metric.isin(LOWER_IS_BETTER), heuristic)
    sign = np.where(lower, -1.0, 1.0)
    s, c = score * sign, const * sign
    best = s.groupby([fin[T], fin[S]]).transform("max")
    span = best - c
    return pd.Series(np.where(span > 0, (s - c) / span.where(span > 0), 0.0), index=fin.index)


def split_stream(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Suite job runs and stream-benchmark runs (``tags.kind = stream``), which only feed stream criteria."""
    if runs.empty or "tags.kind" not in runs:
        return runs, runs.iloc[0:0]
    streamed = runs["tags.kind"].fillna("").eq("stream")
    return runs[~streamed], runs[streamed]


def stream_criteria(streamed: pd.DataFrame) -> pd.DataFrame:
    """Stream criteria per pipeline from the finished runs of the online strategy (``bench.stream.FEED_STRATEGY``):
    per task the median over seeds of each seed's newest run, then across tasks like the other criteria."""
    from bench.stream import FEED_STRATEGY

    names = [n for n, c in CRITERIA.items() if c.stream]
    if streamed.empty or "tags.strategy" not in streamed:
        return pd.DataFrame(columns=names)
    fin = streamed[(streamed["status"] == "FINISHED") & (streamed["tags.strategy"] == FEED_STRATEGY)].copy()
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


def aggregate(runs: pd.DataFrame) -> Aggregate:
    """One row per pipeline: every criterion, its spread over seeds, quality's bootstrap interval, mean rank."""
    runs, streamed = split_stream(runs)
    agg = _aggregate_jobs(runs)
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


def _aggregate_jobs(runs: pd.DataFrame) -> Aggregate:
    runs, duplicates = prepare(runs)
    if runs.empty or P not in runs:
        return Aggregate(pd.DataFrame(), pd.DataFrame(), runs, duplicates, ["no completed runs in the selection"])
    fin = runs[runs["status"] == "FINISHED"].copy()
    for name in MEASURED:
        column = CRITERIA[name].metric
        fin[name] = fin[column].astype(float) * CRITERIA[name].scale if column in fin else np.nan
    fin["quality"] = normalised_quality(fin) if len(fin) else pd.Series(dtype=float)
    cols = ["quality", *MEASURED]
    by_task = fin.groupby([P, T])
    per_task = by_task[MEASURED].median()
    per_task["quality"] = by_task["quality"].mean()
    per_task["primary_score"] = by_task["metrics.primary_score"].mean()
    per_task["seeds"] = by_task.size()
    if "metrics.latency_n" in fin:
        per_task["latency_n"] = by_task["metrics.latency_n"].min()
    table = _across(per_task, cols, level=P)
    per_seed = _across(fin, cols, keys=[fin[P], fin[S]])
    spread = per_seed.groupby(level=0).std().add_suffix("_sd")
    table = table.join(spread)
    table["quality_ci_low"], table["quality_ci_high"] = np.nan, np.nan
    for pipeline, values in per_seed["quality"].groupby(level=0):
        table.loc[pipeline, ["quality_ci_low", "quality_ci_high"]] = stats.bootstrap_ci(values.to_numpy())
    if len(per_task):
        table["mean_rank"] = per_task["quality"].unstack(T).rank(ascending=False).mean(axis=1)
    table = _counts(runs, fin).join(table, how="left")
    table.index.name = "pipeline"
    return Aggregate(table, per_task, pd.concat([fin, runs[runs["status"] != "FINISHED"]]), duplicates,
                     _data_notes(runs, fin, per_task))


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


def _counts(runs: pd.DataFrame, fin: pd.DataFrame) -> pd.DataFrame:
    """Run counts, failure rate and a one-line failure summary per pipeline."""
    by = runs.groupby(P)
    out = pd.DataFrame({"technology": by["tags.technology"].first() if "tags.technology" in runs else "",
                        "runs": by.size(), "finished": fin.groupby(P).size()}).fillna({"finished": 0})
    out["finished"] = out["finished"].astype(int)
    out["failure_rate"] = 1 - out["finished"] / out["runs"]
    out["tasks"] = fin.groupby(P)[T].nunique().reindex(out.index).fillna(0).astype(int)
    out["seeds"] = fin.groupby(P)[S].nunique().reindex(out.index).fillna(0).astype(int)
    failed = runs[runs["status"] != "FINISHED"]
    cause = failed.get("tags.failure_cause", pd.Series("failed", index=failed.index)).fillna("failed")
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
            errors = group["tags.error"].dropna() if "tags.error" in group else pd.Series(dtype=str)
            first = str(errors.iloc[0]).strip().splitlines()[0][:120] if len(errors) else ""
            notes.append(f"task {task}: all {len(group)} runs failed" + (f" ({first})" if first else ""))
    n_tasks = fin[T].nunique()
    for pipeline, count in fin.groupby(P)[T].nunique().items():
        if count < n_tasks:
            notes.append(f"{pipeline} finished on {count} of {n_tasks} tasks: its averages cover fewer tasks")
    if "metrics.latency_n" in fin and fin["metrics.latency_n"].notna().any():
        n_min = int(fin["metrics.latency_n"].min())
        if n_min < TAIL_MIN_CALLS:
            notes.append(f"p99 latencies rest on as few as {n_min} timed calls: p99 limits gate only from "
                         f"{TAIL_MIN_CALLS} calls on")
    if "params.budget_s" in fin and fin["params.budget_s"].nunique() > 1:
        notes.append("runs with different budgets are mixed: " + ", ".join(
            f"{b} s" for b in sorted(fin["params.budget_s"].dropna().unique(), key=float)))
    if len(per_task) and fin[S].nunique() < 3:
        notes.append(f"{fin[S].nunique()} seed(s): intervals over seeds are indicative only")
    return notes


# ---------------------------------------------------------------- scoring primitives

def utility(values: pd.Series, criterion: Criterion, bounds: tuple[float, float]) -> pd.Series:
    """Map values to [0, 1] between fixed (worst, best) bounds, on a log scale for times and sizes.

    Values beyond a bound are clipped; a missing value counts as the worst (0).
    """
    worst, best = bounds
    x = values.astype(float).clip(min(bounds), max(bounds))
    if criterion.log:
        x, worst, best = np.log10(x), math.log10(worst), math.log10(best)
    return ((x - worst) / (best - worst)).fillna(0.0)


def weighted_sum(util: pd.DataFrame, weights: dict[str, float]) -> pd.Series:
    """Sum of weight x utility over the criteria, divided by the total weight (so scores stay in [0, 1])."""
    w = pd.Series(weights, dtype=float)
    return util[list(w.index)].mul(w, axis=1).sum(axis=1) / w.sum()


def topsis(matrix: np.ndarray, weights: np.ndarray, benefit: np.ndarray | None = None,
           normalise: bool = True) -> np.ndarray:
    """TOPSIS closeness to the ideal (1 = ideal), Hwang & Yoon 1981.

    ``normalise`` applies the classic vector normalisation; pass False for values already normalised
    (the matrix uses its fixed-bound utilities, so TOPSIS and the weighted sum see the same numbers).
    """
    m = np.asarray(matrix, dtype=float)
    w = np.asarray(weights, dtype=float) / np.sum(weights)
    benefit = np.ones(m.shape[1], bool) if benefit is None else np.asarray(benefit, bool)
    if normalise:
        norm = np.sqrt((m**2).sum(axis=0))
        m = m / np.where(norm == 0, 1, norm)
    v = m * w
    ideal = np.where(benefit, v.max(axis=0), v.min(axis=0))
    anti = np.where(benefit, v.min(axis=0), v.max(axis=0))
    d_plus, d_minus = np.sqrt(((v - ideal) ** 2).sum(axis=1)), np.sqrt(((v - anti) ** 2).sum(axis=1))
    total = d_plus + d_minus
    return np.divide(d_minus, total, out=np.full(len(m), 0.5), where=total > 0)


def pareto_front(values: np.ndarray) -> np.ndarray:
    """True for rows no other row dominates (all columns higher-is-better; NaN counts as the worst)."""
    v = np.nan_to_num(np.asarray(values, dtype=float), nan=-np.inf)
    ge = (v[:, None, :] >= v[None, :, :]).all(axis=2)
    gt = (v[:, None, :] > v[None, :, :]).any(axis=2)
    dominated = (ge & gt).any(axis=0)  # [j, i]: row j dominates row i
    return ~dominated


def oriented(table: pd.DataFrame, names: list[str]) -> np.ndarray:
    """Criteria as higher-is-better columns (costs negated), for Pareto comparisons."""
    return np.column_stack([table[n].astype(float) * (1 if CRITERIA[n].higher_is_better else -1) for n in names])


def fmt_value(name: str, value: float) -> str:
    """A criterion value with its unit, short enough for a sentence: '41 ms', '2.1M rows/s', '25 %'."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if name == "online_learning":
        return "yes" if value >= 0.5 else "no"
    if name == "failure_rate":
        return f"{100 * value:.0f} %"
    unit = CRITERIA[name].unit if name in CRITERIA else ""
    if abs(value) >= 1e4:
        exp = min(int(math.log10(abs(value)) // 3), 3)
        text = f"{value / 10 ** (3 * exp):.3g}{'kMG'[exp - 1]}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


# ---------------------------------------------------------------- profile -> decision

def decide(agg: Aggregate, profile: Profile) -> Decision:
    """Apply constraints, score, rank, cross-check with TOPSIS and Pareto, and explain every row."""
    notes: list[str] = []
    table, per_task = agg.table.copy(), agg.per_task.copy()
    if table.empty:
        return Decision(profile, table, {}, None, "no runs to decide on", [], "", agg.notes)
    if profile.network_rtt_ms:
        from bench.profiles import RTT_CRITERIA

        for frame in (table, per_task):
            frame[list(RTT_CRITERIA)] = frame[list(RTT_CRITERIA)] + profile.network_rtt_ms
        notes.append(f"online latencies include a {profile.network_rtt_ms:g} ms network round trip")
    weights = _usable_weights(table, profile, notes)
    broken, warnings = _constraint_breaks(table, per_task, profile, notes)
    util = pd.DataFrame({c: utility(table[c], CRITERIA[c], profile.bound(c)) for c in weights}, index=table.index)
    for c in weights:
        missing = table.index[table[c].isna() & (table["finished"] > 0)]
        if len(missing):
            notes.append(f"no {CRITERIA[c].label} for {', '.join(missing)}: scored as the worst")
    table["score"] = weighted_sum(util, weights) if weights else np.nan
    table["feasible"] = [not broken[p] for p in table.index]
    feasible = _order(table[table["feasible"]])
    table["rank"] = pd.Series({p: i + 1 for i, p in enumerate(feasible)}, dtype="Int64")
    table["topsis"], table["pareto"] = np.nan, pd.Series(pd.NA, index=table.index, dtype="boolean")
    topsis_note = _cross_checks(table, util, weights, feasible)
    winner = feasible[0] if feasible else None
    flips = _sensitivity(util.loc[feasible], weights, table.loc[feasible, "quality"], winner) if winner else []
    table["reason"] = _row_reasons(table, util, weights, broken, feasible)
    for p, items in warnings.items():
        if items:
            table.loc[p, "reason"] += "; warning: " + "; ".join(items)
    for c in weights:
        table[f"u_{c}"] = util[c]
    if not feasible:
        summary = "no pipeline meets every constraint: relax a constraint or add pipelines (see the exclusions)"
    else:
        summary = _winner_reason(table, util, weights, feasible)
    return Decision(profile, _sorted(table, feasible), weights, winner, summary, flips, topsis_note,
                    agg.notes + notes)


def _usable_weights(table: pd.DataFrame, profile: Profile, notes: list[str]) -> dict[str, float]:
    """Drop weighted criteria no pipeline has (say so); a stream criterion says 'no stream data yet'."""
    weights = {}
    for name, weight in profile.weights.items():
        if weight <= 0:
            continue
        if name not in table or table[name].isna().all():
            crit = CRITERIA[name]
            why = "no stream data yet" if crit.stream else "no run has it"
            notes.append(f"{crit.label} ({name}) not scored: {why}; its weight {weight:g} is left out")
            continue
        weights[name] = weight
    if not weights:
        notes.append("no weighted criterion has data: every feasible pipeline scores 0")
    return weights


def _constraint_breaks(table: pd.DataFrame, per_task: pd.DataFrame, profile: Profile,
                       notes: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per pipeline, each broken constraint as '<label> <value> > <limit> [on <task>]', and the warnings.

    A p99 from a few hundred calls is mostly noise (DESIGN: "p99 only gates where n allows it"): with fewer
    than ``TAIL_MIN_CALLS`` timed calls a broken p99 limit is a warning on the row, not an exclusion.
    """
    broken: dict[str, list[str]] = {p: [] for p in table.index}
    warnings: dict[str, list[str]] = {p: [] for p in table.index}
    for p in table.index[table["finished"] == 0]:
        broken[p].append(f"no finished run ({table.loc[p, 'failures'] or 'all failed'})")
    multi_task = per_task.index.get_level_values(T).nunique() > 1 if len(per_task) else False
    for con in profile.constraints:
        crit = CRITERIA[con.criterion]
        if con.criterion not in table or table[con.criterion].isna().all():
            why = "no stream data yet" if crit.stream else "no run has it"
            notes.append(f"constraint {crit.label} {con.symbol} {fmt_value(con.criterion, con.limit)} not applied: "
                         f"{why}")
            continue
        for p in table.index[table["finished"] > 0]:
            value, task = _worst(table, per_task, p, con)
            calls = _tail_calls(per_task, p, con.criterion)
            if not np.isfinite(value):
                broken[p].append(f"{crit.label} not measured")
            elif not con.holds(value) and calls < TAIL_MIN_CALLS:
                warnings[p].append(f"{_break_text(con, value, task if multi_task else '')} but from only {calls:.0f} "
                                   f"timed calls (< {TAIL_MIN_CALLS}): not gated, rerun with --latency-n 1000")
            elif not con.holds(value):
                broken[p].append(_break_text(con, value, task if multi_task else ""))
    return broken, warnings


def _tail_calls(per_task: pd.DataFrame, pipeline: str, criterion: str) -> float:
    """Fewest timed calls behind a pipeline's tail latency (inf for criteria that are not tail latencies)."""
    if criterion not in TAIL_LATENCIES or "latency_n" not in per_task:
        return math.inf
    calls = per_task.loc[pipeline, "latency_n"].min() if pipeline in per_task.index.get_level_values(P) else math.nan
    return float(calls) if np.isfinite(calls) else math.inf


def _break_text(con: Constraint, value: float, task: str) -> str:
    """'online p99 latency 41 ms > 10 ms on flights'; 'no online learning' for the yes/no criterion."""
    if con.criterion == "online_learning":
        return "no online learning (new data needs a full refit)" if con.op == "min" else "learns online"
    sign = ">" if con.op == "max" else "<"
    where = f" on {task}" if task else ""
    return (f"{CRITERIA[con.criterion].label} {fmt_value(con.criterion, value)} {sign} "
            f"{fmt_value(con.criterion, con.limit)}{where}")


def _worst(table: pd.DataFrame, per_task: pd.DataFrame, pipeline: str, con: Constraint) -> tuple[float, str]:
    """The pipeline's worst per-task value for this constraint (the constraint must hold on every task)."""
    if con.criterion in per_task and pipeline in per_task.index.get_level_values(P):
        values = per_task.loc[pipeline, con.criterion].dropna()
        if len(values):
            task = values.idxmax() if con.op == "max" else values.idxmin()
            return float(values[task]), str(task) if values.nunique() > 1 else ""
        return math.nan, ""
    return float(table.loc[pipeline, con.criterion]), ""


def _order(table: pd.DataFrame) -> list[str]:
    """Pipelines by score, then quality, then name: a deterministic order even on ties."""
    frame = pd.DataFrame({"s": table["score"].fillna(-1), "q": table["quality"].fillna(-1),
                          "n": table.index}, index=table.index)
    return list(frame.sort_values(["s", "q", "n"], ascending=[False, False, True]).index)


def _cross_checks(table: pd.DataFrame, util: pd.DataFrame, weights: dict[str, float], feasible: list[str]) -> str:
    """TOPSIS closeness and Pareto membership among the feasible pipelines; a sentence on agreement."""
    if not feasible or not weights:
        return ""
    names = list(weights)
    table.loc[feasible, "pareto"] = pareto_front(oriented(table.loc[feasible], names))
    if len(feasible) < 2:
        return "one feasible pipeline: nothing to cross-check"
    closeness = topsis(util.loc[feasible, names].to_numpy(), np.array([weights[n] for n in names]),
                       normalise=False)
    table.loc[feasible, "topsis"] = closeness
    best = feasible[int(np.argmax(closeness))]
    order = pd.Series(closeness, index=feasible).rank(ascending=False)
    tau = stats.kendall_tau(range(len(feasible)), order.to_numpy()) if len(feasible) > 2 else 1.0
    agree = ("agrees on the winner" if best == feasible[0] else
             f"DISAGREES: it prefers {best} (closeness {closeness.max():.3f}) over {feasible[0]}")
    return (f"TOPSIS on the same fixed-bound utilities {agree}; Kendall tau between the two rankings "
            f"{tau:.2f}")


def _sensitivity(util: pd.DataFrame, weights: dict[str, float], quality: pd.Series, winner: str,
                 delta: float = 0.2) -> list[str]:
    """Each weight alone -20 % and +20 %: the changes under which another pipeline would win."""
    flips = []
    for name in weights:
        for factor in (1 - delta, 1 + delta):
            trial = dict(weights) | {name: weights[name] * factor}
            scores = weighted_sum(util, trial)
            new = _order(pd.DataFrame({"score": scores, "quality": quality}))[0]
            if new != winner:
                flips.append(f"{CRITERIA[name].label} weight {factor - 1:+.0%} -> {new} wins")
    return flips


def _contributions(util: pd.DataFrame, weights: dict[str, float], a: str, b: str) -> pd.Series:
    """Per criterion, how much of the score gap between a and b it explains."""
    total = sum(weights.values())
    return pd.Series({c: w * (util.loc[a, c] - util.loc[b, c]) / total for c, w in weights.items()})


def _versus(table: pd.DataFrame, name: str, a: str, b: str) -> str:
    return f"{CRITERIA[name].label} {fmt_value(name, table.loc[a, name])} vs {fmt_value(name, table.loc[b, name])}"


def _winner_reason(table: pd.DataFrame, util: pd.DataFrame, weights: dict[str, float], feasible: list[str]) -> str:
    winner = feasible[0]
    excluded = int((~table["feasible"]).sum())
    tail = f"; {excluded} excluded by constraints" if excluded else ""
    if len(feasible) == 1:
        return f"{winner} is the only pipeline meeting every constraint (score {table.loc[winner, 'score']:.3f}){tail}"
    runner = feasible[1]
    gap = _contributions(util, weights, winner, runner).sort_values(ascending=False)
    pros = [f"{_versus(table, c, winner, runner)} ({v:+.3f})" for c, v in gap.items() if v > 1e-4][:2]
    cons = [f"{_versus(table, c, winner, runner)} ({v:+.3f})" for c, v in gap[::-1].items() if v < -1e-4][:1]
    text = (f"{winner} wins with score {table.loc[winner, 'score']:.3f} vs {table.loc[runner, 'score']:.3f} for "
            f"{runner}")
    text += ": decided by " + " and ".join(pros) if pros else " on the tie-break (quality, then name)"
    if cons:
        text += f", although {runner} is better on {cons[0]}"
    return text + tail


def _row_reasons(table: pd.DataFrame, util: pd.DataFrame, weights: dict[str, float], broken: dict[str, list[str]],
                 feasible: list[str]) -> pd.Series:
    reasons = {}
    for p in table.index:
        if broken[p]:
            reasons[p] = "excluded: " + "; ".join(broken[p])
    if feasible:
        winner = feasible[0]
        reasons[winner] = "winner"
        names = list(weights)
        for p in feasible[1:]:
            gap = _contributions(util, weights, winner, p)
            worst = gap.idxmax() if len(gap) else None
            text = f"{table.loc[winner, 'score'] - table.loc[p, 'score']:.3f} behind {winner}"
            if worst is not None and gap[worst] > 1e-4:
                text += f", mostly {_versus(table, worst, p, winner)}"
            pareto = table.loc[p, "pareto"]
            if pd.notna(pareto) and not pareto:
                dominators = [q for q in feasible if q != p and _dominates(table, names, q, p)]
                if dominators:
                    text += f"; dominated by {dominators[0]}"
            reasons[p] = text
    return pd.Series(reasons).reindex(table.index)


def _dominates(table: pd.DataFrame, names: list[str], a: str, b: str) -> bool:
    va, vb = oriented(table.loc[[a]], names)[0], oriented(table.loc[[b]], names)[0]
    va, vb = np.nan_to_num(va, nan=-np.inf), np.nan_to_num(vb, nan=-np.inf)
    return bool((va >= vb).all() and (va > vb).any())


def _sorted(table: pd.DataFrame, feasible: list[str]) -> pd.DataFrame:
    rest = table[~table["feasible"]].sort_values("quality", ascending=False, na_position="last")
    return pd.concat([table.loc[feasible], rest])


# ---------------------------------------------------------------- AutoML versus hand-coded

def automl_vs_manual(agg: Aggregate) -> dict[str, Any]:
    """Per task: the best AutoML pipeline against the best hand-coded one on that task.

    Quality difference is paired by seed (same split) in normalised-quality units, with a bootstrap
    interval over seeds; effort, training time and latency as ratios (AutoML / hand-coded). Picking the best
    hand-coded pipeline per task after the fact favours the hand-coded side slightly.
    """
    table = agg.table
    if table.empty:
        return {"available": False, "note": "no runs", "tasks": [], "overall": {}}
    is_auto = table["technology"].isin(AUTOML_TECHNOLOGIES)
    auto, manual = list(table.index[is_auto]), list(table.index[~is_auto])
    if not auto or not manual:
        side = "AutoML" if not auto else "hand-coded"
        return {"available": False, "note": f"no {side} pipeline in the selection", "tasks": [], "overall": {}}
    done = agg.runs[agg.runs["status"] == "FINISHED"]
    fin = done[[c for c in (P, T, S, "quality", "params.primary_metric") if c in done]]
    rows = []
    for task, pt in agg.per_task.groupby(level=T):
        pt = pt.droplevel(T)
        a_q, m_q = pt["quality"].reindex(auto).dropna(), pt["quality"].reindex(manual).dropna()
        if a_q.empty or m_q.empty:
            continue
        rows.append(_task_verdict(fin, pt, str(task), a_q.idxmax(), m_q.idxmax()))
    return {"available": bool(rows), "note": "" if rows else "no task has both an AutoML and a hand-coded result",
            "tasks": rows, "overall": _overall_verdict(rows)}


def _task_verdict(fin: pd.DataFrame, pt: pd.DataFrame, task: str, a: str, m: str) -> dict[str, Any]:
    on_task = fin[fin[T] == task]
    qa = on_task[on_task[P] == a].set_index(S)["quality"]
    qm = on_task[on_task[P] == m].set_index(S)["quality"]
    paired = (qa - qm).dropna()
    diff = float(paired.mean())
    low, high = stats.bootstrap_ci(paired.to_numpy())
    if len(paired) < 2:
        verdict = "one seed: no interval"
    elif low > 0:
        verdict = "AutoML better"
    elif high < 0:
        verdict = "hand-coded better"
    else:
        verdict = "no clear difference"
    metric = on_task["params.primary_metric"].iloc[0] if "params.primary_metric" in on_task else "score"

    def ratio(c: str) -> float:
        return float(pt.loc[a, c] / pt.loc[m, c]) if pt.loc[m, c] else math.nan

    return {"task": task, "automl": a, "manual": m, "metric": metric,
            "automl_score": float(pt.loc[a, "primary_score"]), "manual_score": float(pt.loc[m, "primary_score"]),
            "quality_diff": diff, "ci_low": low, "ci_high": high, "seeds": len(paired), "verdict": verdict,
            "lloc_ratio": ratio("lloc"), "fit_time_ratio": ratio("fit_wall_s"),
            "latency_p50_ratio": ratio("latency_p50_ms")}


def _overall_verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {}
    frame = pd.DataFrame(rows)

    def geo(c: str) -> float:
        x = frame[c].astype(float)
        x = x[np.isfinite(x) & (x > 0)]
        return float(np.exp(np.log(x).mean())) if len(x) else math.nan

    low, high = stats.bootstrap_ci(frame["quality_diff"].to_numpy())
    counts = frame["verdict"].value_counts().to_dict()
    out = {"tasks": len(frame), "quality_diff": float(frame["quality_diff"].mean()), "ci_low": low, "ci_high": high,
           "verdicts": counts, "lloc_ratio": geo("lloc_ratio"), "fit_time_ratio": geo("fit_time_ratio"),
           "latency_p50_ratio": geo("latency_p50_ratio")}
    ci = f" [{low:+.3f}, {high:+.3f}] over tasks" if np.isfinite(low) else ""
    out["summary"] = (f"over {len(frame)} task(s): " + ", ".join(f"{v} {k}" for k, v in counts.items())
                      + f"; mean normalised-quality difference (AutoML - best hand-coded) {out['quality_diff']:+.3f}"
                      + ci + f"; AutoML needs {out['lloc_ratio']:.2g}x the LLOC, {out['fit_time_ratio']:.2g}x the "
                      f"training time and {out['latency_p50_ratio']:.2g}x the online p50 latency")
    return out


# ---------------------------------------------------------------- everything together

@dataclass
class Matrix:
    """What the exports show: the aggregate, the profile's decision, the AutoML verdict and the rank test."""

    aggregate: Aggregate
    decision: Decision
    verdict: dict[str, Any]
    ranks: stats.RankTest


def build(runs: pd.DataFrame, profile: Profile) -> Matrix:
    """The whole matrix from a runs DataFrame (as ``tracking.load_runs`` / ``mlflow.search_runs`` give)."""
    agg = aggregate(runs)
    quality = (agg.per_task["quality"].unstack(P) if len(agg.per_task)
               else pd.DataFrame())
    return Matrix(agg, decide(agg, profile), automl_vs_manual(agg), stats.rank_test(quality))
