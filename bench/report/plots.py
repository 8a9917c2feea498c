"""The matrix's plots as matplotlib Figures: quality against online latency and training time with the Pareto
fronts, the score by criterion, effort, and the critical-difference diagram. matplotlib (and autorank) are
imported only when a plot is asked for."""

from __future__ import annotations

import base64
import contextlib
import io
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.criteria import CRITERIA, P
from bench.analysis.decide import pareto_front
from bench.analysis.matrix import Matrix
from bench.report.figure_plan import CD, EFFORT, FIT, LATENCY, SCORE, finished_rows, plan


def figures(m: Matrix) -> dict[str, Any]:
    """The plots as matplotlib Figures, by caption (:func:`bench.report.figure_plan.plan` decides which)."""
    _headless()
    t = finished_rows(m)
    draw = {LATENCY: lambda: _tradeoff(m, t, "latency_p50_ms", "latency_p99_ms"),
            FIT: lambda: _tradeoff(m, t, "fit_wall_s", None), SCORE: lambda: _score_parts(m),
            EFFORT: lambda: _effort(t), CD: lambda: _cd_diagram(m)}
    figures_ = {caption: draw[key]() for caption, key in plan(m)}
    return {caption: fig for caption, fig in figures_.items() if fig is not None}


def _headless() -> None:
    """The Agg backend for a command line; a notebook's own backend (MPLBACKEND, pyplot loaded) is left alone."""
    import os
    import sys

    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        import matplotlib

        matplotlib.use("Agg")


def png(fig: Any) -> str:
    """A figure as base64 PNG (what the HTML page inlines)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _tradeoff(m: Matrix, t: pd.DataFrame, x: str, x_hi: str | None) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.6))
    ax = fig.add_subplot()
    for name, row in t.iterrows():
        ok = bool(row["feasible"])
        color = "#2a7" if name == m.decision.winner else ("#357" if ok else "#aaa")
        if x_hi and pd.notna(row.get(x_hi)):
            ax.plot([row[x], row[x_hi]], [row["quality"]] * 2, color=color, lw=1, alpha=0.6)
        ax.errorbar(row[x], row["quality"], yerr=row.get("quality_sd") if pd.notna(row.get("quality_sd")) else None,
                    fmt="o" if ok else "x", color=color, ms=8 if name == m.decision.winner else 6, capsize=3)
        ax.annotate(str(name) + ("" if ok else " (excluded)"), (row[x], row["quality"]), fontsize=8,
                    xytext=(5, 5), textcoords="offset points", color=color)
    pts = t[[x, "quality"]].dropna()
    if len(pts):
        front = pts[pareto_front(np.column_stack([-pts[x], pts["quality"]]))].sort_values(x)
        ax.step(front[x], front["quality"], where="post", color="#c63", ls="--", lw=1, label="Pareto front")
        ax.legend(loc="lower right", fontsize=8)
    for con in m.decision.profile.constraints:
        if con.criterion in (x, x_hi):
            ax.axvline(con.limit, color="#c33", ls=":", lw=1)
            ax.annotate(f"{CRITERIA[con.criterion].label} limit", (con.limit, ax.get_ylim()[0]), fontsize=7,
                        color="#c33", rotation=90, va="bottom", ha="right")
    limits = [c.limit for c in m.decision.profile.constraints if c.criterion in (x, x_hi)]
    _log_axis(ax, [*t[x].dropna(), *(t[x_hi].dropna() if x_hi else []), *limits])
    ax.set_xlabel(f"{CRITERIA[x].label} ({CRITERIA[x].unit}, log scale)")
    ax.set_ylabel("quality (0 = constant predictor, 1 = best seen)")
    ax.grid(alpha=0.3)
    return fig


def _log_axis(ax: Any, values: list[float]) -> None:
    """Log x axis spanning at least a decade around the values, ticks as plain numbers ('0.5', '20')."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    positive = [v for v in values if v > 0]
    ax.set_xscale("log")
    if positive:
        low, high = min(positive), max(positive)
        mid = math.sqrt(low * high)
        span = max(high / low, 10.0) ** 0.5 * 1.6
        ax.set_xlim(min(low / 1.6, mid / span), max(high * 1.6, mid * span))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _score_parts(m: Matrix) -> Any:
    from matplotlib.figure import Figure

    d = m.decision
    t = d.table[d.table["feasible"]]
    total = sum(d.weights.values())
    fig = Figure(figsize=(7, 0.5 + 0.45 * len(t)))
    ax = fig.add_subplot()
    left = np.zeros(len(t))
    colors = matplotlib_colors(len(d.weights))
    for (c, w), color in zip(d.weights.items(), colors, strict=True):
        part = (w * t[f"u_{c}"] / total).to_numpy()
        ax.barh(list(t.index), part, left=left, color=color, label=f"{CRITERIA[c].label} (w {w:g})")
        left += part
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"weighted-sum score (profile {d.profile.name})")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def matplotlib_colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _effort(t: pd.DataFrame) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 0.6 + 0.4 * len(t)))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, col, color in zip(axes, ("lloc", "complexity"), ("#357", "#a73"), strict=True):
        ax.barh(list(t.index), t[col].fillna(0), color=color)
        ax.set_xlabel(CRITERIA[col].label)
        for y, v in enumerate(t[col]):
            if pd.notna(v):
                ax.annotate(f"{v:.0f}", (v, y), fontsize=7, xytext=(2, 0), textcoords="offset points", va="center")
    axes[0].invert_yaxis()
    return fig


def _cd_diagram(m: Matrix) -> Any:
    """autorank's critical-difference diagram, drawn only when the rank test ran (>= 5 complete tasks)."""
    if m.ranks.cd is None:
        return None
    import matplotlib.pyplot as plt
    from autorank import autorank, plot_stats

    quality = m.aggregate.per_task["quality"].unstack(P).dropna()
    quiet = io.StringIO()  # autorank prints its tables and warns on tied ranks even when not verbose
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        result = autorank(quality, alpha=m.ranks.alpha, force_mode="nonparametric", verbose=False)
        fig, ax = plt.subplots(figsize=(8, 3))
        plot_stats(result, allow_insignificant=True, ax=ax)
    plt.close(fig)  # out of pyplot's registry; the Figure itself stays drawable
    return fig

