"""Deployed forms in the matrix: the edge runtime's figures and the measured service latency (bench deploy).

The ``edge_*`` criteria take the figures of the exported model in its runtime (one thread, fresh process);
``edge_exported`` is the share of a pipeline's runs whose model could be exported faithfully, so a profile can
require an export. ``service_p99_ms`` is the p99 MLflow's model server gave under open-loop load at the
profile's request rate (the lowest measured rate at or above it), plus the profile's network round trip for
the network beyond the host. Where ``bench deploy`` has not measured a run, each falls back to the in-process
figure it stands for (the same in-process metric; for the service, the in-process p99 plus the round trip),
and the pipeline's reason says which form was measured, so a fallback is never silent.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench.analysis.criteria import CRITERIA, P, T

if TYPE_CHECKING:
    from bench.analysis.profiles import Profile

#: Edge criterion -> (its run metric, scale to the criterion's unit, the in-process criterion it falls back to).
EDGE = {"edge_latency_p99_ms": ("edge_latency_p99_es_ms", 1.0, "latency_p99_ms"),
        "edge_model_mb": ("edge_model_bytes", 1e-6, "model_mb"),
        "edge_serving_rss_mb": ("edge_serving_rss_mb", 1.0, "serving_rss_mb"),
        "edge_cold_start_s": ("edge_cold_start_s", 1.0, "cold_start_s")}
SERVICE = "service_p99_ms"
EXPORTED = "edge_exported"
DEPLOYED = (*EDGE, EXPORTED, SERVICE)


def _rates(fin: pd.DataFrame) -> list[float]:
    return sorted({float(c.removeprefix("service_p99_ms_r").replace("_", ".")) for c in fin
                   if c.startswith("service_p99_ms_r")})


def _service_at(fin: pd.DataFrame, rate: float) -> tuple[pd.Series, float | None]:
    """Per run, the p99 at the lowest measured rate >= ``rate`` (the early-stopping estimate where the level
    had the answers for it), and that rate; NaN where the service was not measured or failed."""
    rates = _rates(fin)
    if not rates:
        return pd.Series(np.nan, index=fin.index), None
    chosen = min([r for r in rates if r >= rate], default=max(rates))
    name = f"r{chosen:g}".replace(".", "_")
    values = fin.get(f"service_p99_es_ms_{name}", pd.Series(np.nan, index=fin.index)).astype(float)
    values = values.fillna(fin[f"service_p99_ms_{name}"].astype(float))
    return values.where(fin.get("service_ok", pd.Series(np.nan, index=fin.index)) == 1.0), chosen


def resolve(runs: pd.DataFrame, profile: Profile, notes: list[str]) -> Profile:
    """The profile as the store can answer it: when no run in the selection has a deployed form measured,
    its deployed criteria become the in-process criteria they stand for (same limits, targets and weights;
    an export cannot be required where none was tried), and a note says so."""
    fin = runs[runs["status"] == "FINISHED"] if len(runs) else runs
    swap: dict[str, str | None] = {}
    if EXPORTED not in fin or fin[EXPORTED].isna().all():
        swap |= {name: fallback for name, (_, _, fallback) in EDGE.items()} | {EXPORTED: None}
    if "service_ok" not in fin or fin["service_ok"].isna().all():
        swap[SERVICE] = "latency_p99_ms"
    used = set(profile.weights) | {c.criterion for c in profile.constraints} | set(profile.targets)
    if not used & set(swap):
        return profile
    weights: dict[str, float] = {}
    for name, weight in profile.weights.items():
        if swap.get(name, name) is not None:
            weights[swap.get(name, name)] = weights.get(swap.get(name, name), 0.0) + weight
    constraints = tuple(replace(c, criterion=swap.get(c.criterion, c.criterion)) for c in profile.constraints
                        if swap.get(c.criterion, c.criterion) is not None)
    targets = {swap.get(k, k): v for k, v in profile.targets.items() if swap.get(k, k) is not None}
    bounds = {swap.get(k, k): v for k, v in profile.bounds.items() if swap.get(k, k) is not None}
    form = " and ".join(f for f, names in [("edge runtime", set(EDGE) | {EXPORTED}), ("service", {SERVICE})]
                        if used & names & set(swap))
    notes.append(f"bench deploy has not measured the {form} form of any run in the selection: the profile's "
                 f"{form} criteria use the in-process figures (run bench deploy to measure them)")
    return replace(profile, weights=weights, constraints=constraints, targets=targets, bounds=bounds)


def per_run(fin: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """The deployed criteria per finished run (in-process fallbacks where bench deploy has not run) and, per
    run, whether the edge (``_edge``) and the service (``_service``) were measured: 1, 0 (failed), NaN."""
    exported = fin.get(EXPORTED, pd.Series(np.nan, index=fin.index)).astype(float)
    out = pd.DataFrame(index=fin.index)
    for name, (metric, scale, fallback) in EDGE.items():
        measured = fin.get(metric, pd.Series(np.nan, index=fin.index)).astype(float) * scale
        if metric == "edge_latency_p99_es_ms" and "edge_latency_p99_ms" in fin:
            measured = measured.fillna(fin["edge_latency_p99_ms"].astype(float))  # too few calls for the estimate
        out[name] = measured.where(exported == 1.0, fin[fallback].where(exported.isna()))
    out[EXPORTED] = exported.fillna(1.0)  # not measured: not held against it, and the reason says so
    service, _ = _service_at(fin, profile.request_rate_rps)
    served = fin.get("service_ok", pd.Series(np.nan, index=fin.index)).astype(float)
    out[SERVICE] = service.where(served.notna(), fin["latency_p99_ms"]) + profile.network_rtt_ms
    out["_edge"], out["_service"] = exported, served
    return out


def apply(runs: pd.DataFrame, table: pd.DataFrame, per_task: pd.DataFrame, profile: Profile) -> dict[str, str]:
    """Add the deployed criteria the profile uses to ``table`` and ``per_task`` (in place); returns, per
    pipeline, which form was measured, for its reason."""
    used = set(profile.weights) | {c.criterion for c in profile.constraints}
    if not used & set(DEPLOYED) or runs.empty:
        return {}
    fin = runs[runs["status"] == "FINISHED"]
    values = per_run(fin, profile).join(fin[[P, T]])
    medians = values.groupby([P, T]).median()
    for name in DEPLOYED:
        per_task[name] = medians[name].reindex(per_task.index)
        crit = CRITERIA[name]
        column = np.log(medians[name].clip(lower=crit.floor)) if crit.log else medians[name]
        grouped = column.groupby(level=P).mean()
        table[name] = (np.exp(grouped) if crit.log else grouped).reindex(table.index)
    edge_used = bool(used & {*EDGE, EXPORTED})
    forms = {}
    for pipeline, group in values.join(fin.get("edge_error", pd.Series(dtype=object)).rename("_why")).groupby(P):
        parts = [_edge_form(group, fin.loc[group.index])] if edge_used else []
        if SERVICE in used:
            parts.append(_service_form(group, fin.loc[group.index], profile))
        forms[pipeline] = "; ".join(parts)
    return forms


def _edge_form(group: pd.DataFrame, runs: pd.DataFrame) -> str:
    n, measured = len(group), int(group["_edge"].notna().sum())
    if measured == 0:
        return "edge: bench deploy has not run, in-process figures"
    exported = int((group["_edge"] == 1.0).sum())
    fmt = runs.get("edge_format", pd.Series(dtype=object))
    fmt = fmt[group["_edge"] == 1.0].dropna().mode()
    why = group.loc[group["_edge"] == 0.0, "_why"].dropna()
    why = f" ({why.iat[0][:160]})" if len(why) else ""
    if exported == 0:
        text = f"edge: no edge export on {measured} of {n} runs{why}"
    else:
        text = f"edge: {fmt.iat[0] if len(fmt) else 'edge'} runtime measured on {exported} of {n} runs"
        text += f", no edge export on {measured - exported}{why}" if exported < measured else ""
    if measured < n:
        text += f", in-process figures for the other {n - measured}"
    return text


def _service_form(group: pd.DataFrame, runs: pd.DataFrame, profile: Profile) -> str:
    rtt = f" + {profile.network_rtt_ms:g} ms round trip" if profile.network_rtt_ms else ""
    n, measured = len(group), int(group["_service"].notna().sum())
    if measured == 0:
        return f"service: bench deploy has not run, in-process p99{rtt}"
    _, rate = _service_at(runs, profile.request_rate_rps)
    failed = int((group["_service"] == 0.0).sum())
    text = (f"service: MLflow model server p99 at {rate:g} rps (profile rate {profile.request_rate_rps:g}){rtt}, "
            f"measured on {measured} of {n} runs")
    if failed:
        why = runs.get("service_error", pd.Series(dtype=object)).dropna()
        text += f", failed on {failed}" + (f" ({why.iat[0][:160]})" if len(why) else "")
    return text
