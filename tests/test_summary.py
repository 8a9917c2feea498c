"""The end-of-run summary fits 100 columns with every pipeline's full name, and ``bench --version``."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

from bench.execution.runner import Job, Outcome
from bench.progress import print_summary
from tests.conftest import REPO

PIPES = ["flaml_automl", "keras_mlp", "sklearn_hgb", "sklearn_hgb_tuned", "sklearn_linear", "sklearn_sgd",
         "torch_mlp", "my_very_long_custom_pipeline_name"]
TASKS = [("breast_cancer", "roc_auc"), ("penguins", "balanced_accuracy"), ("diabetes", "rmse"),
         ("mlc_churn", "roc_auc"), ("credit_data", "roc_auc"), ("ames", "rmse"), ("flights", "roc_auc")]


def outcomes() -> list[Outcome]:
    out = []
    for t_i, (name, metric) in enumerate(TASKS):
        task = SimpleNamespace(name=name, metric=metric)
        for p_i, pipe in enumerate(PIPES):
            for seed in range(3):
                failed = pipe == "torch_mlp" and seed == 2
                score = 25_000.0 + 1000 * p_i + 10 * seed if metric == "rmse" else 0.9 + 0.001 * p_i + 0.01 * seed
                out.append(Outcome(Job(task, pipe, seed), "failed" if failed else "finished", "r",
                                   cause="exception" if failed else "", message="boom" if failed else "",
                                   primary_score=None if failed else score + t_i))
    return out


def test_summary_fits_100_columns_with_pipelines_as_rows(capsys):
    print_summary(outcomes(), "sqlite:///" + "/very/long/path" * 8 + "/mlflow.db", 100.0, 2, 3.0)
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert max(map(len, lines)) <= 100, "\n".join(line for line in lines if len(line) > 100)
    tables = sum(line.startswith("pipeline ") for line in lines)
    assert tables >= 2, "seven tasks do not fit one 100-column table: split over several"
    for pipe in PIPES:  # each pipeline a row of its own, its name whole, in every table
        assert sum(line.split()[0] == pipe for line in lines if line.strip()) == tables, pipe
    for name, metric in TASKS:
        assert name in text and metric in text
    assert "27,012±10" in text, "large scores without an exponent"  # sklearn_hgb on diabetes
    assert "FAILED penguins/torch_mlp-s2 (exception): boom" in text


def test_version_prints_package_and_framework_versions():
    out = subprocess.run([sys.executable, "-m", "bench.cli", "--version"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    from importlib import metadata

    import bench

    line = out.stdout.strip()
    assert line.startswith(f"bench {bench.__version__} (python ")
    for package in ("scikit-learn", "flaml", "torch", "keras", "mlflow"):
        assert f"{package} {metadata.version(package)}" in line, line
