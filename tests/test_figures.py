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
