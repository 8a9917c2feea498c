"""Same seed, same machine, same code: a ``--force`` rerun reproduces every quality metric bit for bit.

A benchmark that is not repeatable is a bug. The fixed pipelines are deterministic by construction (seeded
splits, seeded shuffles and initialisations, one thread); the budget-bound searches (FLAML, the tuned HGB)
evaluate as many candidates as the machine's speed allows, so they are only checked for the same split.
"""

import mlflow
import pytest

from tests.conftest import bench, write_task

DETERMINISTIC = ["sklearn_linear", "sklearn_hgb", "torch_mlp"]


@pytest.mark.slow
def test_force_rerun_gives_identical_quality_metrics(tmp_path):
    task = write_task(tmp_path / "tasks", "binary", name="det_binary")
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    args = ["run", "--tasks", str(task), "--pipelines", ",".join(DETERMINISTIC),
            "--budget", "30", "--latency-n", "100", "--cold-start-repeats", "1", "--batch-rows", "1000",
            "--tracking-uri", uri]
    for extra in ([], ["--force"]):
        out = bench(*args, *extra, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "finished 3, skipped (already measured) 0, failed 0" in out.stdout.replace("\n", " ")

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["det_binary"])
    assert (runs["status"] == "FINISHED").all() and len(runs) == 6
    quality = sorted(c for c in runs if c.startswith("metrics.test_")) + ["metrics.primary_score"]
    assert len(quality) >= 5
    for (task, pipeline), pair in runs.groupby(["tags.task", "tags.pipeline"]):
        assert len(pair) == 2 and pair["tags.split_hash"].nunique() == 1
        assert pair["run_id"].nunique() == 2, "--force measures again into a new run"
        first, second = pair[quality].iloc[0], pair[quality].iloc[1]
        assert first.equals(second), f"{pipeline} on {task} changed on a rerun:\n{pair[quality].T}"
