"""A profile applied to the criteria: constraints, utilities, weighted sum, TOPSIS, Pareto, sensitivity, reasons.

- Limits (hard constraints) must hold on *every* task (the worst task decides): a 10 ms limit means 10 ms on
  the user's data, not on average. A p99 limit reads MLPerf's early-stopping estimate and needs the calls
  that rule needs (:mod:`bench.early_stopping`).
- Scoring maps each criterion to a utility in [0, 1] on a scale fixed by the profile: 1 at or better than
  its target, 0 at its limit (or the criterion's default worst bound), log scale for times, sizes and money
  in between. One pipeline's score does not depend on the others compared with it, so adding a pipeline
  cannot reorder the rest, unless it sets a new best score on some task (quality's 1 is "the best seen").
  The weighted sum ranks; TOPSIS on the same utilities cross-checks it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench.analysis import deployed, stats
from bench.analysis.criteria import CRITERIA, RTT_CRITERIA, TAIL_LATENCIES, TAIL_MIN_CALLS, Criterion, P, T, fmt_value

if TYPE_CHECKING:
    from bench.analysis.aggregate import Aggregate
    from bench.analysis.profiles import Constraint, Profile


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



def decide(agg: Aggregate, profile: Profile) -> Decision:
    """Apply constraints, score, rank, cross-check with TOPSIS and Pareto, and explain every row."""
    notes: list[str] = []
    table, per_task = agg.table.copy(), agg.per_task.copy()
    if table.empty:
        return Decision(profile, table, {}, None, "no runs to decide on", [], "", agg.notes)
    profile = deployed.resolve(agg.runs, profile, notes)  # deployed forms nobody measured: in-process, said so
    forms = deployed.apply(agg.runs, table, per_task, profile)
    if profile.network_rtt_ms:
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
    for p, form in forms.items():
        if p in table.index and form:
            table.loc[p, "reason"] += "; " + form
    for p in table.index[table.get("imputed", pd.Series(0, index=table.index)).fillna(0) > 0]:
        table.loc[p, "reason"] += (f"; {int(table.loc[p, 'imputed'])} of {int(table.loc[p, 'planned'])} jobs failed "
                                   "or missing, scored as the constant predictor")
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

    A tail limit needs a tail MLPerf's early-stopping rule will state: with fewer than ``TAIL_MIN_CALLS`` timed
    calls (662 for a p99 at 99 % confidence) there is none, and the pipeline is excluded for "not enough calls"
    rather than passed on an empirical percentile that rests on a handful of calls.
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
            elif calls < TAIL_MIN_CALLS:
                broken[p].append(f"{crit.label}: not enough calls ({calls:.0f} < {TAIL_MIN_CALLS}) for MLPerf's "
                                 "early-stopping estimate; rerun with --latency-n 1000")
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

