"""Requirement profiles: per criterion a hard limit, a target and a weight, loaded from YAML and validated.

A profile is how a user states *their* requirements in their units ("on the device, p99 under 10 ms and a
model under 5 MB; below 1 ms and 1 MB nobody notices the difference; then quality matters most"):

- ``limit``: past it the pipeline is excluded, with the numbers ("online p99 latency 41 ms > 10 ms").
- ``target``: at or better than it the criterion's utility is 1 (good enough is good enough); between the
  target and the limit (or the criterion's default worst bound) it falls, on a log scale for times, sizes
  and money, linearly for quality-like criteria.
- ``weight``: how much the criterion counts in the weighted sum among the pipelines that meet every limit.

Targets and limits are fixed by the profile, never taken from the pipelines compared, so adding a pipeline
cannot reorder the others. Built-ins live in ``bench/analysis/profiles/*.yaml``; a user's own file is given
by path. Every mistake in a file is one ``BenchError`` naming the file, the field and the fix, because a
silently ignored typo in a weight would quietly change the decision.

Example (``my_profile.yaml``)::

    name: kiosk
    description: Touch-screen kiosk, predictions on the device.
    criteria:
      quality: {weight: 3}
      latency_p99_ms: {limit: 20, target: 5, weight: 1}
      model_mb: {limit: 50, target: 5}
      serving_rss_mb: {limit: 500, target: 100, weight: 1}
    network_rtt_ms: 0            # optional: added to online latencies (cloud serving)

The earlier form still loads: ``constraints`` (``{max: x}``/``{min: x}``, the same as ``limit``),
``weights`` and ``bounds`` (a criterion's fixed ``[worst, best]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.analysis.criteria import CRITERIA
from bench.errors import BenchError

BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "balanced"
TOP_KEYS = {"name": "the profile's name", "description": "free text",
            "criteria": "a mapping criterion -> {limit: number, target: number, weight: number} (each optional)",
            "constraints": "a mapping criterion -> {max: number} or {min: number}",
            "weights": "a mapping criterion -> non-negative number",
            "bounds": "a mapping criterion -> [worst, best]",
            "network_rtt_ms": "a non-negative number of milliseconds added to online latencies",
            "request_rate_rps": "a positive number of requests per second at which the service p99 is read"}


@dataclass(frozen=True)
class Constraint:
    """A hard limit: ``criterion <= limit`` (op "max") or ``criterion >= limit`` (op "min")."""

    criterion: str
    op: str
    limit: float

    def holds(self, value: float) -> bool:
        return value <= self.limit if self.op == "max" else value >= self.limit

    @property
    def symbol(self) -> str:
        return "<=" if self.op == "max" else ">="


@dataclass(frozen=True)
class Profile:
    """A validated profile; ``bounds`` holds only the profile's overrides of the criteria defaults."""

    name: str
    description: str
    weights: dict[str, float]
    constraints: tuple[Constraint, ...]
    bounds: dict[str, tuple[float, float]]
    network_rtt_ms: float
    source: str
    targets: dict[str, float] = field(default_factory=dict)
    request_rate_rps: float = 20.0  # the load at which service_p99_ms is read (bench deploy's levels)

    def bound(self, criterion: str) -> tuple[float, float]:
        """(worst, best) of the fixed normalisation: the same for every pipeline, whoever else is compared.

        Best is the target (utility 1 at or better than it); worst is the limit where one is strictly worse
        than best (utility 0 just inside the limit), else the criterion's default or the ``bounds`` override.
        """
        worst, best = self.bounds.get(criterion, CRITERIA[criterion].bounds)
        best = self.targets.get(criterion, best)
        limit = self.limit(criterion)
        if limit is not None and criterion not in self.bounds and _worse(criterion, limit, best):
            worst = limit
        return worst, best

    def limit(self, criterion: str) -> float | None:
        """The hard limit on the criterion's bad side ('max' for lower-is-better), if the profile has one."""
        op = "min" if CRITERIA[criterion].higher_is_better else "max"
        limits = [c.limit for c in self.constraints if c.criterion == criterion and c.op == op]
        return (max(limits) if op == "min" else min(limits)) if limits else None

    def as_dict(self) -> dict[str, Any]:
        used = sorted(set(self.weights) | {c.criterion for c in self.constraints} | set(self.targets))
        return {"name": self.name, "description": self.description, "source": self.source,
                "weights": dict(self.weights), "targets": dict(self.targets),
                "constraints": [{"criterion": c.criterion, "op": c.op, "limit": c.limit} for c in self.constraints],
                "bounds": {c: {"worst": self.bound(c)[0], "best": self.bound(c)[1],
                               "scale": "log" if CRITERIA[c].log else "linear"} for c in used},
                "network_rtt_ms": self.network_rtt_ms, "request_rate_rps": self.request_rate_rps}


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_profile(ref: str | Path) -> Profile:
    """A built-in profile by name, or a YAML file by path."""
    ref_str = str(ref)
    builtin = BUILTIN_DIR / f"{ref_str}.yaml"
    if "/" not in ref_str and not ref_str.endswith((".yaml", ".yml")) and builtin.is_file():
        return parse_profile(builtin, source=f"built-in {ref_str}")
    path = Path(ref_str).expanduser()
    if not path.is_file():
        raise BenchError(f"no built-in profile or file named {ref_str!r}; give one of {', '.join(builtin_names())} "
                         "or a path to a profile YAML file", field="--profile")
    return parse_profile(path, source=str(path.resolve()))


def parse_profile(path: Path, source: str | None = None) -> Profile:
    """Read and validate one profile file."""
    from bench.safe_yaml import load

    data = load(path, error=BenchError)  # no anchors, aliases or duplicate keys; a size cap
    if not isinstance(data, dict):
        raise BenchError("expected a YAML mapping with name, weights and optionally constraints", file=path)
    for key in data:
        if key not in TOP_KEYS:
            raise BenchError(f"unknown key; expected one of: {', '.join(TOP_KEYS)}", file=path, field=str(key))
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise BenchError("expected a non-empty string", file=path, field="name")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise BenchError("expected free text", file=path, field="description")
    new_weights, limits, targets = _criteria(path, data.get("criteria") or {})
    weights = _weights(path, data.get("weights"), required=not new_weights)
    for name in set(weights) & set(new_weights):
        raise BenchError(f"{name} has a weight under both weights and criteria; keep one", file=path,
                         field=f"criteria.{name}.weight")
    weights |= new_weights
    if not any(weights.values()):
        raise BenchError("all weights are 0; give at least one criterion a positive weight", file=path,
                         field="criteria" if new_weights else "weights")
    constraints = _constraints(path, data.get("constraints") or {}) + limits
    bounds = _bounds(path, data.get("bounds") or {})
    rtt = data.get("network_rtt_ms", 0)
    if not _number(rtt) or rtt < 0:
        raise BenchError(f"expected {TOP_KEYS['network_rtt_ms']}, got {rtt!r}", file=path, field="network_rtt_ms")
    rate = data.get("request_rate_rps", 20.0)
    if not _number(rate) or rate <= 0:
        raise BenchError(f"expected {TOP_KEYS['request_rate_rps']}, got {rate!r}", file=path,
                         field="request_rate_rps")
    profile = Profile(name.strip(), description.strip(), weights, constraints, bounds, float(rtt),
                      source or str(path), targets, float(rate))
    for crit, target in targets.items():
        worst = profile.bound(crit)[0]
        if not _worse(crit, worst, target):
            raise BenchError(f"the target {target:g} is not better than the worst end of the scale ({worst:g}); give "
                             "a limit worse than the target or a bounds entry", file=path, field=f"criteria.{crit}")
    return profile


def with_network_rtt(profile: Profile, rtt_ms: float | None) -> Profile:
    """The profile with its network round trip replaced (the ``--network-rtt-ms`` option)."""
    if rtt_ms is None:
        return profile
    if rtt_ms < 0:
        raise BenchError("expected a non-negative number of milliseconds", field="--network-rtt-ms")
    from dataclasses import replace

    return replace(profile, network_rtt_ms=float(rtt_ms))


def _criterion(path: Path, field: str, name: object) -> str:
    if not isinstance(name, str) or name not in CRITERIA:
        raise BenchError(f"unknown criterion {name!r}; expected one of: {', '.join(CRITERIA)}", file=path,
                         field=field)
    return name


def _weights(path: Path, raw: object, required: bool = True) -> dict[str, float]:
    if raw is None and not required:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise BenchError(f"missing or empty; expected {TOP_KEYS['weights']}, e.g. {{quality: 3, lloc: 1}}",
                         file=path, field="weights")
    weights = {}
    for key, value in raw.items():
        name = _criterion(path, f"weights.{key}", key)
        if not _number(value) or value < 0:
            raise BenchError(f"expected a non-negative number, got {value!r}", file=path, field=f"weights.{key}")
        weights[name] = float(value)
    return weights


def _criteria(path: Path, raw: object) -> tuple[dict[str, float], tuple[Constraint, ...], dict[str, float]]:
    """The ``criteria`` block: weights, limits (as constraints on the criterion's bad side) and targets."""
    if not isinstance(raw, dict):
        raise BenchError(f"expected {TOP_KEYS['criteria']}", file=path, field="criteria")
    weights, limits, targets = {}, [], {}
    for key, spec in raw.items():
        name = _criterion(path, f"criteria.{key}", key)
        _check_entry(path, name, spec)
        if "weight" in spec:
            weights[name] = float(spec["weight"])
        if "target" in spec:
            targets[name] = float(spec["target"])
        if "limit" in spec:
            limits.append(Constraint(name, "min" if CRITERIA[name].higher_is_better else "max", float(spec["limit"])))
    return weights, tuple(limits), targets


def _check_entry(path: Path, name: str, spec: object) -> None:
    """One ``criteria`` entry: known parts, numbers, log-scale values > 0, the target better than the limit."""
    where = f"criteria.{name}"
    if not isinstance(spec, dict) or not spec or set(spec) - {"weight", "target", "limit"}:
        raise BenchError(f"expected {{limit: number, target: number, weight: number}} (each optional), got "
                         f"{spec!r}", file=path, field=where)
    for part, value in spec.items():
        if not _number(value) or (part == "weight" and value < 0):
            kind = "a non-negative number" if part == "weight" else "a number"
            raise BenchError(f"expected {kind}, got {value!r}", file=path, field=f"{where}.{part}")
    crit = CRITERIA[name]
    if crit.log and any(spec.get(k, 1) <= 0 for k in ("target", "limit")):
        raise BenchError(f"{name} is on a log scale: target and limit must be > 0", file=path, field=where)
    if "target" in spec and "limit" in spec and not _worse(name, spec["limit"], spec["target"]):
        better = "higher" if crit.higher_is_better else "lower"
        raise BenchError(f"the target must be better ({better}) than the limit, got target {spec['target']} "
                         f"and limit {spec['limit']}", file=path, field=where)


def _worse(criterion: str, a: float, b: float) -> bool:
    """Whether ``a`` is strictly worse than ``b`` on this criterion."""
    return a < b if CRITERIA[criterion].higher_is_better else a > b


def _constraints(path: Path, raw: object) -> tuple[Constraint, ...]:
    if not isinstance(raw, dict):
        raise BenchError(f"expected {TOP_KEYS['constraints']}", file=path, field="constraints")
    out = []
    for key, spec in raw.items():
        name = _criterion(path, f"constraints.{key}", key)
        where = f"constraints.{key}"
        if not isinstance(spec, dict) or not spec or set(spec) - {"max", "min"}:
            raise BenchError(f"expected {{max: number}} and/or {{min: number}}, got {spec!r}", file=path, field=where)
        for op, limit in spec.items():
            if not _number(limit):
                raise BenchError(f"expected a number, got {limit!r}", file=path, field=f"{where}.{op}")
            out.append(Constraint(name, op, float(limit)))
    return tuple(out)


def _bounds(path: Path, raw: object) -> dict[str, tuple[float, float]]:
    if not isinstance(raw, dict):
        raise BenchError(f"expected {TOP_KEYS['bounds']}", file=path, field="bounds")
    out = {}
    for key, pair in raw.items():
        name = _criterion(path, f"bounds.{key}", key)
        where = f"bounds.{key}"
        if not (isinstance(pair, list) and len(pair) == 2 and all(_number(v) for v in pair) and pair[0] != pair[1]):
            raise BenchError(f"expected [worst, best], two different numbers, got {pair!r}", file=path, field=where)
        worst, best = float(pair[0]), float(pair[1])
        crit = CRITERIA[name]
        if crit.log and min(worst, best) <= 0:
            raise BenchError(f"{name} is normalised on a log scale: both bounds must be > 0", file=path, field=where)
        if (best > worst) != crit.higher_is_better:
            better = "higher" if crit.higher_is_better else "lower"
            raise BenchError(f"{better} is better for {name}: write [worst, best] with best {better} than worst",
                             file=path, field=where)
        out[name] = (worst, best)
    return out


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
