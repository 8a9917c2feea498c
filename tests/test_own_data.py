"""``bench run --data FILE --target COL``: what is inferred from a user's CSV or Parquet file, the task file it
writes, and the one-line errors (exit 2, nothing written) for every bad input.

The inference and the errors run through the real CLI entry point in this process (``bench run --data``
refuses or writes its task file before it imports any framework); one real run goes end to end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import cli
from bench.errors import TaskError
from bench.tasks import cached_data, load_task
from bench.tasks.from_data import infer_task, task_from_data
from tests.conftest import bench


def churn_frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """String labels, a date column, missing values in a numeric and a categorical, an id and a constant."""
    rng = np.random.default_rng(seed)
    usage = rng.normal(size=rows)
    frame = pd.DataFrame({
        "customer_id": [f"c{i:04d}" for i in range(rows)],
        "signup": pd.date_range("2024-01-01 08:30", periods=rows, freq="37h").strftime("%Y-%m-%d %H:%M"),
        "plan": rng.choice(["basic", "pro", None], size=rows),
        "usage": np.where(rng.random(rows) < 0.1, np.nan, usage),
        "region_code": rng.integers(1, 4, size=rows),
        "constant": 7,
        "churn": np.where(usage + rng.normal(scale=0.5, size=rows) > 0.6, "yes", "no"),
    })
    frame.loc[3, "churn"] = None  # a row without a target: dropped, and said so
    return frame


def run_cli(tmp_path: Path, *args: str) -> int:
    return cli.main(["run", *args, "--pipelines", "sklearn_linear", "--budget", "1", "--tracking-uri",
                     f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", "--out", str(tmp_path / "results")])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_infers_kind_metric_dates_and_columns_and_writes_a_valid_task(tmp_path, suffix):
    data = tmp_path / f"my churn{suffix}"
    frame = churn_frame()
    frame.to_csv(data, index=False) if suffix == ".csv" else frame.to_parquet(data)
    path, notes = task_from_data(data, "churn", tmp_path / "results" / "tasks")
    assert path == tmp_path / "results" / "tasks" / "my_churn.yaml"
    task = load_task(path)  # the generated file passes the task schema and loads like any task file
    assert (task.kind, task.metric, task.positive_label) == ("binary", "roc_auc", "yes")
    assert task.prepare["date_parts"] == {"signup": ["year", "month", "day", "dayofweek", "hour"]}
    assert set(task.prepare["drop"]) == {"customer_id", "signup", "constant"}
    assert task.prepare["categorical"] == ["plan"]
    text = "\n".join(notes)
    for fragment in ("kind: binary (2 distinct labels", "positive label: 'yes'", "date 'signup'",
                     "dropped 'customer_id': an identifier", "dropped 'constant'", "categorical: plan",
                     "usage (", "target: 1 row(s) without a value are dropped"):
        assert fragment in text, text
    other = tmp_path / "elsewhere" / data.name
    other.parent.mkdir()
    frame.to_csv(other, index=False) if suffix == ".csv" else frame.to_parquet(other)
    with pytest.raises(TaskError, match=r"generated from \.\./\.\./my churn.*another file; give this data its"):
        task_from_data(other, "churn", tmp_path / "results" / "tasks")
    assert task_from_data(data, "churn", tmp_path / "results" / "tasks")[0] == path, "the same file: regenerated"
    data_ = cached_data(task)
    assert len(data_.X) == len(frame) - 1 and set(data_.classes) == {"yes", "no"}
    assert {"signup_year", "signup_hour", "usage", "plan", "region_code"} <= set(data_.X.columns)
    assert data_.X["usage"].isna().sum() > 0, "missing values are left for the pipelines"
    assert "signup" not in data_.X.columns and "customer_id" not in data_.X.columns


def test_kind_inference_and_overrides(tmp_path):
    rng = np.random.default_rng(1)
    base = pd.DataFrame({"x": rng.normal(size=60)})
    path = tmp_path / "d.csv"

    def spec(y, **kw):
        return infer_task(path, base.assign(y=y), "y", **kw).spec

    assert spec(rng.normal(size=60))["kind"] == "regression"
    assert spec(rng.integers(0, 50, size=60))["kind"] == "regression"  # many integers: a quantity
    counts = spec(np.tile([0, 1, 2], 20))
    assert (counts["kind"], counts["metric"]) == ("multiclass", "balanced_accuracy")
    zero_one = spec(np.r_[np.ones(10), np.zeros(50)].astype(int))
    assert (zero_one["kind"], zero_one["positive_label"]) == ("binary", 1)
    minority = spec(np.r_[["ham"] * 45, ["spam"] * 15])
    assert minority["positive_label"] == "spam"
    chosen = spec(np.r_[["ham"] * 45, ["spam"] * 15], positive_label="ham", metric="log_loss")
    assert (chosen["positive_label"], chosen["metric"]) == ("ham", "log_loss")
    assert spec(np.tile([0, 1, 2], 20), kind="regression")["kind"] == "regression"


def _bad_cases(tmp_path: Path) -> list[tuple[list[str], str, str]]:
    """(arguments, field, fragment) per bad input; the files are built here."""
    good = tmp_path / "good.csv"
    churn_frame().to_csv(good, index=False)
    one = tmp_path / "one_class.csv"
    pd.DataFrame({"x": range(30), "y": ["a"] * 30}).to_csv(one, index=False)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text("x,y\n")
    (tmp_path / "folder.csv").mkdir()
    xlsx = tmp_path / "book.xlsx"
    xlsx.write_bytes(b"PK")
    clash = tmp_path / "penguins.csv"
    churn_frame().to_csv(clash, index=False)
    only_target = tmp_path / "only_target.csv"
    pd.DataFrame({"y": [0, 1] * 10}).to_csv(only_target, index=False)
    no_values = tmp_path / "no_values.csv"
    pd.DataFrame({"x": range(10), "y": [None] * 10}).to_csv(no_values, index=False)
    d = str(good)
    return [
        (["--data", d, "--target", "churned"], "--target", "target column 'churned' is not in the data; columns:"),
        (["--data", str(one), "--target", "y"], "--target", "has a single value 'a' on every row"),
        (["--data", str(no_values), "--target", "y"], "--target", "has no values"),
        (["--data", str(garbage), "--target", "y"], "--data", "cannot read"),
        (["--data", str(empty), "--target", "y"], "--data", "cannot read"),
        (["--data", str(header_only), "--target", "y"], "--data", "has no rows"),
        (["--data", str(tmp_path / "missing.csv"), "--target", "y"], "--data", "does not exist"),
        (["--data", str(tmp_path / "folder.csv"), "--target", "y"], "--data", "is not a regular file"),
        (["--data", str(xlsx), "--target", "y"], "--data", "expected a .csv or .parquet file"),
        (["--data", str(only_target), "--target", "y"], "--data", "is the only column"),
        (["--data", d], "--target", "--data needs --target"),
        (["--data", d, "--target", "churn", "--kind", "regression"], "--kind", "must be numeric"),
        (["--data", d, "--target", "churn", "--kind", "ordinal"], "--kind", "expected one of binary"),
        (["--data", d, "--target", "usage", "--kind", "binary"], "--kind", "exactly 2 classes"),
        (["--data", d, "--target", "churn", "--metric", "rmse"], "--metric", "expected one of roc_auc"),
        (["--data", d, "--target", "churn", "--positive-label", "maybe"], "--positive-label", "not among"),
        (["--data", d, "--target", "usage", "--positive-label", "1"], "--positive-label", "only binary"),
        (["--data", d, "--target", "churn", "--name", "a b"], "--name", "letters, digits"),
        (["--data", str(clash), "--target", "churn"], "--name", "a task named 'penguins' exists already"),
        (["--data", d, "--target", "churn", "--tasks", "iris"], "--data", "not both"),
        (["--tasks", "penguins", "--target", "y"], "--target", "only with --data"),
    ]


def test_each_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    lines = []
    for args, field, fragment in _bad_cases(tmp_path):
        assert run_cli(tmp_path, *args) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: "), (args, err)
        assert f"field '{field}'" in err and fragment in err, (args, err)
        lines.append(err)
    assert not (tmp_path / "store").exists() and not (tmp_path / "results").exists()
    (tmp_path / "error_lines.txt").write_text("\n".join(lines) + "\n")  # what the user reads, case by case


@pytest.mark.slow
def test_data_runs_end_to_end_and_the_written_task_reruns_as_the_same_jobs(tmp_path):
    data = tmp_path / "churn.csv"
    churn_frame().to_csv(data, index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    small = ["--pipelines", "sklearn_linear", "--budget", "2", "--latency-n", "50", "--cold-start-repeats", "1",
             "--batch-rows", "200", "--tracking-uri", uri]
    first = bench("run", "--data", str(data), "--target", "churn", *small, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "kind: binary" in first.stdout and "wrote results/tasks/churn.yaml" in first.stdout
    assert "finished 1, skipped (already measured) 0, failed 0" in first.stdout.replace("\n", " ")
    again = bench("run", "--tasks", "results/tasks/churn.yaml", *small, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "finished 0, skipped (already measured) 1" in again.stdout.replace("\n", " ")
