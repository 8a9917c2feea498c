"""The study's quality table: newest run per seed, mean +- sd, and floors in the right direction."""

import pandas as pd

from benchmarks import quality_table


def runs(rows):
    """Hand-made runs; a run at time >= 2 measures a newer version of the job (a new job key)."""
    return pd.DataFrame([{"status": status, "start_time": t, "task": task, "pipeline": p, "kind": "job",
                          "seed": str(seed), "job_key": f"{task}-{p}-{seed}-v{min(t, 2)}",
                          "primary_metric": metric, "primary_score": score}
                         for status, t, task, p, seed, metric, score in rows])


def test_floors_follow_the_metric_direction_and_the_pipeline_family():
    assert quality_table.floor("sklearn_hgb", "flights", "roc_auc") == 0.765
    assert quality_table.floor("torch_mlp", "flights", "roc_auc") == 0.651
    assert quality_table.floor("keras_mlp", "diabetes", "rmse") == 58.6 * 1.10
    assert quality_table.floor("torch_mlp", "digits", "balanced_accuracy") == 0.97
    assert quality_table.floor("sklearn_linear", "flights", "roc_auc") is None
    assert quality_table.floor("flaml_automl", "my_task", "roc_auc") is None


def test_table_keeps_the_newest_finished_run_per_seed_and_marks_missed_floors():
    frame = runs([("FINISHED", 1, "flights", "sklearn_hgb", 0, "roc_auc", 0.70),   # replaced by the rerun below
                  ("FINISHED", 2, "flights", "sklearn_hgb", 0, "roc_auc", 0.77),
                  ("FINISHED", 2, "flights", "sklearn_hgb", 1, "roc_auc", 0.78),
                  ("FAILED", 3, "flights", "sklearn_hgb", 1, "roc_auc", None),
                  ("FINISHED", 2, "diabetes", "keras_mlp", 0, "rmse", 70.0),
                  ("FINISHED", 2, "diabetes", "keras_mlp", 1, "rmse", 60.0)])
    table, verdicts = quality_table.build(frame, ["flights", "diabetes"], ["sklearn_hgb", "keras_mlp"])
    cells = table.set_index("task")
    assert cells.loc["flights", "sklearn_hgb"].startswith("0.775 ± 0.0071 (n=2)")
    assert "*" not in cells.loc["flights", "sklearn_hgb"]
    assert cells.loc["diabetes", "keras_mlp"] == "65 ± 7.1 (n=2) * (~)"  # 65 > 64.46, within one sd
    assert cells.loc["flights", "keras_mlp"] == "-"
    assert verdicts == ["sklearn_hgb: floor met on 1 of 1 tasks (required: every task)",
                        "keras_mlp: floor met on 0 of 1 tasks (required: every task)"]
