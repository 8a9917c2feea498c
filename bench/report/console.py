"""The terminal summary of ``bench matrix``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.analysis.matrix import Matrix
from bench.report.tables import _cell, decision_lines, verdict_lines


def console_summary(m: Matrix, meta: dict[str, Any]) -> str:
    """A short text for the terminal: the ranking with reasons, caveats and the compare-runs links."""
    d = m.decision
    t = d.table
    width = max([len(str(p)) for p in t.index] + [8])
    lines = [f"profile {d.profile.name}: {meta['runs']['used']} runs, {len(meta['tasks'])} task(s), "
             f"{len(t)} pipeline(s)", ""]
    lines.append(f"  {'#':>2}  {'pipeline':<{width}}  {'score':>6}  {'quality':>14}  reason")
    for name, row in t.iterrows():
        rank = f"{row['rank']}" if pd.notna(row["rank"]) else "-"
        score = f"{row['score']:.3f}" if pd.notna(row["score"]) else ""
        quality = _cell("quality", row)
        lines.append(f"  {rank:>2}  {name:<{width}}  {score:>6}  {quality:>14}  {row['reason']}")
    lines += ["", *decision_lines(m), *verdict_lines(m)[:1], f"statistics: {m.ranks.note}"]
    if meta.get("compare_urls"):
        lines += ["", "compare runs in the MLflow UI (start it with `bench ui`):"]
        lines += [f"  {task}: {url}" for task, url in meta["compare_urls"].items()]
    return "\n".join(lines)
