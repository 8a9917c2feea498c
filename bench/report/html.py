"""The self-contained HTML export: tables, reasons and the plots inlined as SVG."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis.matrix import Matrix
from bench.report.tables import sections

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1500px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f0f0f0}tr.excluded td{color:#888}ul.meta{font-size:13px}
.winner{font-size:17px;background:#eef7ee;padding:.6em;border-left:4px solid #3a3}img,svg{max-width:100%;height:auto}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:1em}p.note{font-size:13px;color:#555}
.scroll{overflow-x:auto}"""


def write_html(m: Matrix, meta: dict[str, Any], path: Path) -> None:
    """One self-contained file: tables, reasons and the plots inlined as SVG."""
    esc = html.escape
    name = esc(m.decision.profile.name)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Decision matrix: {name}</title>"
             f"<style>{CSS}</style></head><body><h1>Decision matrix: profile <code>{name}</code></h1>"]
    for title, blocks in sections(m, meta):
        parts.append(f"<h2>{esc(title)}</h2>" if title else "")
        for kind, value in blocks:
            if kind == "lead":
                parts.append(f"<p class='winner'>{esc(value)}</p>")
            elif kind == "list":
                parts.append("<ul class='meta'>" + "".join(f"<li>{esc(x)}</li>" for x in value) + "</ul>")
            elif kind == "text":
                parts.append(f"<p class='note'>{esc(value)}</p>")
            elif kind == "table" and len(value[0]):
                parts.append(f"<div class='scroll'>{_html_table(*value)}</div>")
            elif kind == "links":
                parts.append("<ul>" + "".join(f"<li><a href='{esc(u)}'>{esc(t)}</a></li>" for t, u in value.items())
                             + "</ul>")
            elif kind == "figures":  # inline SVG: milliseconds, where matplotlib's PNGs took seconds
                from bench.report.svg import figures

                parts.append("<div class='plots'>" + "".join(
                    f"<figure>{v}<figcaption>{esc(k)}</figcaption></figure>" for k, v in figures(m).items())
                    + "</div>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")


def _html_table(frame: pd.DataFrame, row_classes: list[str] | None = None) -> str:
    """A plain HTML table (pandas' to_html cannot mark rows), every cell escaped."""
    esc = html.escape
    head = "".join(f"<th>{esc(str(c))}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cls = f" class='{row_classes[i]}'" if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

