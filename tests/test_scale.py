"""Scaling sweep: nested subsamples on a fixed test set, one process per point, growth exponent, MLflow curves."""

from __future__ import annotations

import numpy as np
import pytest

from bench import scale, tracking
from bench.cli import main
from bench.errors import BenchError
from tests.conftest import write_task


def test_rows_parse_sorted_with_full_last():
    assert scale.parse_rows("100000,1000,full,10k") == [1000, 10_000, 100_000, None]
    assert scale.parse_rows("1e3, 1000") == [1000]
    for bad in ("ten", "5", ""):
        with pytest.raises(BenchError):
            scale.parse_rows(bad)


def test_growth_exponent_is_the_slope_on_logs_and_projects_ten_times_the_largest_size():
    points = [scale.Point("p", n, "ok", {"train_rows": n, "fit_wall_s": 2e-6 * n ** 1.5, "fit_cpu_s": 1e-6 * n})
              for n in (1e3, 1e4, 1e5)]
    points.append(scale.Point("p", None, "timeout", error="killed"))
    fit = scale.growth("p", points)
    assert fit.exponent == pytest.approx(1.5) and fit.exponent_last == pytest.approx(1.5)
    assert fit.exponent_cpu == pytest.approx(1.0)
    assert fit.projected_rows == 1_000_000
    assert fit.projected_fit_s == pytest.approx(2e-6 * 1e6 ** 1.5)
    assert scale.growth("p", points[:1]) is None


def test_subsamples_are_nested_seeded_and_stratified():
    train = np.arange(0, 2000, 2)
    y = np.where(np.arange(2000) % 10 == 0, "rare", "common")
    small, large = (scale.subsample(train, y, n, seed=0, stratify=True) for n in (100, 400))
    assert set(small) <= set(large) and set(large) <= set(train)
    assert abs(len(small) - 100) <= 2 and (y[small] == "rare").sum() == 20  # 1 in 5 of the training rows
    assert np.array_equal(small, scale.subsample(train, y, 100, seed=0, stratify=True))
    assert scale.subsample(train, y, None, 0, True) is train


@pytest.mark.slow
def test_bench_scale_prints_the_table_and_exponents_and_logs_curves_to_mlflow(tmp_path, capsys):
    task = write_task(tmp_path / "tasks", "binary", rows=600, name="growing")
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    code = main(["scale", "--task", str(task), "--pipelines", "sklearn_linear", "--rows", "100,full",
                 "--budget", "3", "--time-limit", "300", "--tracking-uri", uri])
    out = capsys.readouterr().out
    assert code == 0
    assert "scaling on growing" in out and "sklearn_linear" in out and "projected fit s" in out
    assert "480" in out, "full = the whole training split (80% of 600 rows)"

    client = tracking._client(uri)
    experiment = client.get_experiment_by_name("scale-growing")
    (run,) = client.search_runs([experiment.experiment_id], "tags.kind = 'scale'")
    assert run.data.tags["pipeline"] == "sklearn_linear" and run.info.status == "FINISHED"
    assert "job_key" not in run.data.tags, "scale runs never count as suite jobs"
    assert {"scale_exponent", "projected_fit_s_10x"} <= set(run.data.metrics)
    assert f"{run.data.metrics['scale_exponent']:.2f}" in out
    history = client.get_metric_history(run.info.run_id, "fit_wall_s")
    assert sorted(m.step for m in history) == [100, 480]
    assert len({m.value for m in client.get_metric_history(run.info.run_id, "test_roc_auc")}) >= 1


def test_synthetic_task_holds_the_largest_size_in_its_training_split(tmp_path):
    task = scale.synthetic_task("regression", [500, 2000, None], features=5)
    assert task.name == "synthetic_regression" and task.source["rows"] * 0.8 >= 2000
    with pytest.raises(BenchError, match="numeric sizes"):
        scale.synthetic_task("binary", [None])
