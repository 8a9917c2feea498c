"""Figures show their whole title: every title's extent lies inside the figure it is drawn on."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from bench.stream.outputs import figure  # noqa: E402
from bench.stream.sweep import StreamOutcome  # noqa: E402


def _inside(fig) -> list[str]:
    """The titles (figure and axes) whose drawn extent leaves the figure, with their text."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    texts = [fig._suptitle] + [ax.title for ax in fig.axes]
    out = []
    for text in texts:
        if text is None or not text.get_text():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < 0 or box.y0 < 0 or box.x1 > width + 0.5 or box.y1 > height + 0.5:
            out.append(text.get_text())
    return out


@pytest.mark.parametrize("pipelines", [["sklearn_sgd"], ["sklearn_sgd", "sklearn_hgb"], ["a", "b", "c", "d"]])
def test_stream_figure_shows_its_whole_title(pipelines):
    task = SimpleNamespace(name="flights_stream_with_a_long_name", metric="balanced_accuracy",
                           stream={"drifts": [3]})
    outcomes = [StreamOutcome(pipeline=p, strategy=s, seed=0, status="finished",
                              periods=[{"period": i, "position": i, "quality": 0.7 + 0.01 * i} for i in range(6)])
                for p in pipelines for s in ("static", "incremental")]
    fig = figure(task, outcomes, plt)
    try:
        assert fig._suptitle is not None and "prequential balanced_accuracy" in fig._suptitle.get_text()
        assert _inside(fig) == []
    finally:
        plt.close(fig)


def test_matrix_html_carries_every_plot_as_well_formed_svg(tmp_path):
    import xml.etree.ElementTree as ET

    from bench import report
    from bench.analysis import build, cost
    from bench.analysis.profiles import load_profile
    from bench.cli import build_parser
    from tests.conftest import fake_runs

    assert "html" in build_parser().parse_args(["matrix"]).format, "bench matrix writes the HTML by default"
    spec = {f"pipe_{i}": {"skill": 0.3 + 0.06 * i, "fit_wall_s": 0.1 * 1.8 ** i, "latency_p50_ms": 0.2 * 2 ** i}
            for i in range(6)}
    runs = fake_runs(spec, tasks=tuple(f"auc_task{i}" for i in range(6)), seeds=3)
    m = build(runs, load_profile("edge"), cost.prices(None, None))
    meta = report.describe(runs, m, uri="sqlite:///x.db", suite=None, tasks=None, pipelines=None, ui_url="http://x")
    [path] = report.export(m, meta, ["html"], tmp_path)
    page = path.read_text()
    assert "data:image/png" not in page
    svgs = [page[i:page.index("</svg>", i) + 6] for i in range(len(page)) if page.startswith("<svg", i)]
    captions = [c.split("</figcaption>")[0] for c in page.split("<figcaption>")[1:]]
    assert len(captions) == 5 and any(c.startswith("critical-difference") for c in captions), captions
    assert len(svgs) == 6  # the effort figure has two panels
    for svg in svgs:
        root = ET.fromstring(svg)  # well-formed, escaped
        width = float(root.get("width"))
        xs = [float(t.get("x")) for t in root.iter("{http://www.w3.org/2000/svg}text")]
        assert xs and all(0 <= x <= width for x in xs)
    for i in range(6):
        assert f">pipe_{i}" in page
