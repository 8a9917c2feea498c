"""The HTML export's plots as inline SVG written directly, without matplotlib.

The HTML page is a default output of ``bench matrix``, which must stay under 3 s over 1,000 runs; importing
matplotlib and rasterising its five figures took about 3 s on its own on the loaded 2-core machine. The same
plots written as SVG text take milliseconds, scale without blur and stay searchable. The matplotlib figures
(:mod:`bench.report.plots`) remain what the notebook API returns.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from bench.analysis.criteria import CRITERIA
from bench.analysis.decide import pareto_front
from bench.analysis.matrix import Matrix
from bench.report.figure_plan import CD, EFFORT, FIT, LATENCY, SCORE, finished_rows, plan

W, H = 600, 380
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 16, 48
WINNER, FEASIBLE, EXCLUDED, FRONT, LIMIT = "#2a7", "#357", "#aaa", "#c63", "#c33"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#e7ba52"]


def figures(m: Matrix) -> dict[str, str]:
    """The plots as SVG text, by caption (:func:`bench.report.figure_plan.plan` decides which)."""
    t = finished_rows(m)
    draw: dict[str, Callable[[], str]] = {
        LATENCY: lambda: _tradeoff(m, t, "latency_p50_ms", "latency_p99_ms"),
        FIT: lambda: _tradeoff(m, t, "fit_wall_s", None), SCORE: lambda: _score_parts(m),
        EFFORT: lambda: _effort(t), CD: lambda: _cd_diagram(m)}
    return {caption: draw[key]() for caption, key in plan(m)}


def _svg(width: float, height: float, body: list[str]) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width:.0f} {height:.0f}' width='{width:.0f}' "
            f"height='{height:.0f}' font-family='sans-serif' font-size='11'>" + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "start", color: str = "#222", size: int = 11,
          rotate: bool = False) -> str:
    turn = f" transform='rotate(-90 {x:.1f} {y:.1f})'" if rotate else ""
    return (f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' fill='{color}' font-size='{size}'{turn}>"
            f"{html.escape(text)}</text>")


def _line(x1: float, y1: float, x2: float, y2: float, color: str = "#222", width: float = 1, dash: str = "") -> str:
    d = f" stroke-dasharray='{dash}'" if dash else ""
    return f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' stroke='{color}' stroke-width='{width}'{d}/>"


def _log_scale(values: list[float], low_px: float, high_px: float) -> tuple[Callable[[float], float], list[float]]:
    """A log axis spanning at least a decade around the values, and its 1-2-5 ticks."""
    positive = [v for v in values if v > 0 and math.isfinite(v)] or [1.0]
    low, high = min(positive), max(positive)
    mid = math.sqrt(low * high)
    span = max(high / low, 10.0) ** 0.5 * 1.6
    lo, hi = math.log10(min(low / 1.6, mid / span)), math.log10(max(high * 1.6, mid * span))

    def scale(v: float) -> float:
        return low_px + (math.log10(max(v, 1e-300)) - lo) / (hi - lo) * (high_px - low_px)

    ticks = [m * 10.0 ** e for e in range(math.floor(lo), math.ceil(hi) + 1) for m in (1, 2, 5)]
    return scale, [v for v in ticks if lo <= math.log10(v) <= hi]


def _tradeoff(m: Matrix, t: pd.DataFrame, x: str, x_hi: str | None) -> str:
    limits = [c.limit for c in m.decision.profile.constraints if c.criterion in (x, x_hi)]
    xs = [*t[x].dropna(), *(t[x_hi].dropna() if x_hi else []), *limits]
    sx, ticks = _log_scale(xs, LEFT, W - RIGHT)
    q = t["quality"].dropna()
    y_lo, y_hi = min(0.0, float(q.min()) if len(q) else 0.0) - 0.05, max(1.0, float(q.max()) if len(q) else 1.0) + 0.05

    def sy(v: float) -> float:
        return TOP + (y_hi - v) / (y_hi - y_lo) * (H - TOP - BOTTOM)

    body = [f"<rect x='{LEFT}' y='{TOP}' width='{W - LEFT - RIGHT}' height='{H - TOP - BOTTOM}' fill='none' "
            "stroke='#999'/>"]
    for v in ticks:
        body += [_line(sx(v), TOP, sx(v), H - BOTTOM, "#eee"), _text(sx(v), H - BOTTOM + 14, f"{v:g}", "middle")]
    for v in np.arange(math.ceil(y_lo * 4) / 4, y_hi, 0.25):
        body += [_line(LEFT, sy(v), W - RIGHT, sy(v), "#eee"), _text(LEFT - 5, sy(v) + 4, f"{v:g}", "end")]
    for limit in limits:
        body += [_line(sx(limit), TOP, sx(limit), H - BOTTOM, LIMIT, dash="2,3"),
                 _text(sx(limit) - 3, H - BOTTOM - 4, "limit", "end", LIMIT, 9)]
    body += _front(t, x, sx, sy) + _points(m, t, x, x_hi, sx, sy)
    body += [_text((LEFT + W - RIGHT) / 2, H - 12, f"{CRITERIA[x].label} ({CRITERIA[x].unit}, log scale)", "middle"),
             _text(16, (TOP + H - BOTTOM) / 2, "quality (0 = constant predictor, 1 = best seen)", "middle",
                   rotate=True),
             _line(W - RIGHT + 10, TOP + 10, W - RIGHT + 30, TOP + 10, FRONT, dash="5,3"),
             _text(W - RIGHT + 34, TOP + 14, "Pareto front", size=10)]
    return _svg(W, H, body)


def _front(t: pd.DataFrame, x: str, sx: Callable[[float], float], sy: Callable[[float], float]) -> list[str]:
    """The Pareto front on quality (higher) and ``x`` (lower) as a dashed step line."""
    body: list[str] = []
    pts = t[[x, "quality"]].dropna()
    if len(pts):
        front = pts[pareto_front(np.column_stack([-pts[x], pts["quality"]]))].sort_values(x)
        path, prev = [], None
        for px, py in zip(front[x], front["quality"], strict=True):
            path.append(f"{sx(px):.1f},{sy(prev if prev is not None else py):.1f} {sx(px):.1f},{sy(py):.1f}")
            prev = py
        body.append(f"<polyline points='{' '.join(path)}' fill='none' stroke='{FRONT}' stroke-dasharray='5,3'/>")
    return body


def _points(m: Matrix, t: pd.DataFrame, x: str, x_hi: str | None, sx: Callable[[float], float],
            sy: Callable[[float], float]) -> list[str]:
    """A marker per pipeline (winner green, excluded grey crosses), its sd, its line to p99 and its name."""
    body: list[str] = []
    for name, row in t.iterrows():
        if pd.isna(row.get(x)) or pd.isna(row.get("quality")):
            continue
        ok, win = bool(row["feasible"]), name == m.decision.winner
        color = WINNER if win else (FEASIBLE if ok else EXCLUDED)
        px, py = sx(row[x]), sy(row["quality"])
        if x_hi and pd.notna(row.get(x_hi)):
            body.append(_line(px, py, sx(row[x_hi]), py, color, 1))
        sd = row.get("quality_sd")
        if pd.notna(sd):
            body.append(_line(px, sy(row["quality"] - sd), px, sy(row["quality"] + sd), color, 1))
        r = 5 if win else 4
        body.append(f"<circle cx='{px:.1f}' cy='{py:.1f}' r='{r}' fill='{color}'/>" if ok else
                    _line(px - r, py - r, px + r, py + r, color, 2) + _line(px - r, py + r, px + r, py - r, color, 2))
        body.append(_text(px + 6, py - 6, str(name) + ("" if ok else " (excluded)"), color=color, size=10))
    return body


def _bars(rows: list[str], segments: list[tuple[str, list[float], str]], x_max: float, label: str,
          values: bool = False, width: float = W) -> str:
    """Horizontal bars, one row per pipeline; several segments stack left to right, a legend on the right."""
    name_w = 8 + 6.5 * max(len(r) for r in rows)
    legend_w = 0 if len(segments) == 1 else 170
    plot_w = width - name_w - legend_w - 30
    row_h, top = 22, 10
    height = top + row_h * len(rows) + 40
    body = []
    left = np.zeros(len(rows))
    for _seg_name, part, color in segments:
        for i, v in enumerate(part):
            if not math.isfinite(v) or v <= 0:
                continue
            x0 = name_w + left[i] / x_max * plot_w
            body.append(f"<rect x='{x0:.1f}' y='{top + i * row_h + 3}' width='{v / x_max * plot_w:.1f}' "
                        f"height='{row_h - 6}' fill='{color}'/>")
            if values:
                body.append(_text(x0 + v / x_max * plot_w + 3, top + i * row_h + 15, f"{v:.0f}", size=9))
        left += np.nan_to_num(np.asarray(part, dtype=float))
    for i, r in enumerate(rows):
        body.append(_text(name_w - 6, top + i * row_h + 15, r, "end"))
    axis_y = top + row_h * len(rows)
    body += [_line(name_w, axis_y, name_w + plot_w, axis_y, "#999"), _text(name_w, axis_y + 14, "0", "middle"),
             _text(name_w + plot_w, axis_y + 14, f"{x_max:g}", "middle"),
             _text(name_w + plot_w / 2, axis_y + 30, label, "middle")]
    if legend_w:
        for j, (seg_name, _part, color) in enumerate(segments):
            y = top + 4 + 15 * j
            body += [f"<rect x='{width - legend_w}' y='{y}' width='10' height='10' fill='{color}'/>",
                     _text(width - legend_w + 14, y + 9, seg_name, size=9)]
        height = max(height, top + 15 * len(segments) + 20)
    return _svg(width, height, body)


def _score_parts(m: Matrix) -> str:
    d = m.decision
    t = d.table[d.table["feasible"]]
    total = sum(d.weights.values())
    segments = [(f"{CRITERIA[c].label} (w {w:g})", list((w * t[f"u_{c}"] / total).astype(float)),
                 PALETTE[i % len(PALETTE)]) for i, (c, w) in enumerate(d.weights.items())]
    return _bars([str(p) for p in t.index], segments, 1.0, f"weighted-sum score (profile {d.profile.name})")


def _effort(t: pd.DataFrame) -> str:
    rows = [str(p) for p in t.index]
    parts = []
    for col, color in (("lloc", FEASIBLE), ("complexity", "#a73")):
        values = [float(v) if pd.notna(v) else 0.0 for v in t[col]]
        top = max(values + [1.0]) * 1.15
        nice = min(m * 10.0 ** math.ceil(math.log10(top / m)) for m in (1, 2, 5))  # a round axis end: 50, not 44.85
        parts.append(_bars(rows, [(col, values, color)], nice, CRITERIA[col].label, values=True, width=W / 2))
    return "".join(parts)


def _cd_diagram(m: Matrix) -> str:
    """Mean ranks on one axis (1 = best, left), pipelines joined when closer than the critical difference."""
    ranks = m.ranks.mean_ranks.sort_values()
    k = len(ranks)
    x0, x1, axis_y = 150, W - 150, 40

    def sx(r: float) -> float:
        return x0 + (r - 1) / max(k - 1, 1) * (x1 - x0)

    body = [_line(x0, axis_y, x1, axis_y)]
    for r in range(1, k + 1):
        body += [_line(sx(r), axis_y - 4, sx(r), axis_y), _text(sx(r), axis_y - 7, str(r), "middle")]
    cd = float(m.ranks.cd)
    body += [_line(x0, 12, sx(1 + cd), 12, "#222", 2), _text(sx(1 + cd) + 5, 16, f"CD = {cd:.2f}")]
    half = (k + 1) // 2
    for i, (name, r) in enumerate(ranks.items()):
        left = i < half
        y = axis_y + 28 + 18 * (i if left else k - 1 - i)
        end = x0 - 10 if left else x1 + 10
        body += [_line(sx(r), axis_y, sx(r), y), _line(sx(r), y, end, y),
                 _text(end - 4 if left else end + 4, y + 4, f"{name} ({r:.2f})", "end" if left else "start")]
    cliques: list[tuple[int, int]] = []
    for i in range(k):  # the widest group of pipelines within the CD starting at each one, if not inside another
        j = max(jj for jj in range(i, k) if ranks.iloc[jj] - ranks.iloc[i] < cd)
        if j > i and not any(a <= i and j <= b for a, b in cliques):
            cliques.append((i, j))
    for n, (i, j) in enumerate(cliques):
        y = axis_y + 12 + 5 * n
        body.append(_line(sx(ranks.iloc[i]) - 3, y, sx(ranks.iloc[j]) + 3, y, "#222", 3))
    height = axis_y + 40 + 18 * max(half, k - half)
    return _svg(W, height, body)
