"""Exports of the decision matrix: every format states the profile, the selection, the runs, versions and
machine, ranks the pipelines and gives each exclusion its reason; HTML is self-contained with plots; the
CLI end to end over a real SQLite store, with the files logged as a run in the 'matrix' experiment."""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest

from bench import store
from bench.analysis import build
from bench.analysis.matrix import Matrix
from bench.analysis.profiles import load_profile
from bench.errors import BenchError
from bench.report import logger, meta, writers
from tests.conftest import fake_mlflow_runs, fake_runs

TASKS = ("auc_a", "auc_b", "rmse_a", "rmse_b", "auc_c")  # five tasks: enough for Friedman and the CD diagram
SPEC = {"sklearn_linear": {"skill": 0.7, "latency_p50_ms": 0.2, "latency_p99_ms": 0.5, "model_bytes": 5e3},
        "sklearn_hgb": {"skill": 0.85, "latency_p50_ms": 0.4, "latency_p99_ms": 0.9, "model_bytes": 3e5},
        "keras_mlp": {"skill": 0.8, "technology": "keras", "latency_p50_ms": 30.0, "latency_p99_ms": 41.0,
                      "model_bytes": 2e6, "lloc": 150.0},
        "flaml_automl": {"skill": 0.9, "technology": "flaml", "latency_p50_ms": 0.5, "latency_p99_ms": 1.0,
                         "model_bytes": 1e6, "lloc": 30.0, "fit_wall_s": 30.0}}


@pytest.fixture(scope="module")
def edge_matrix() -> tuple[Matrix, dict, pd.DataFrame]:
    runs = fake_runs(SPEC, tasks=TASKS, seeds=3)
    m = build(runs, load_profile("edge"))
    info = meta.describe(runs, m, uri="sqlite:///test.db", suite="quick", ui_url="http://127.0.0.1:5000")
    return m, info, runs


def test_csv_md_json_state_the_profile_rank_and_give_reasons(tmp_path, edge_matrix):
    m, info, _ = edge_matrix
    paths = writers.export(m, info, ["csv", "md", "json"], tmp_path)
    assert [p.name for p in paths] == ["decision_matrix_edge.csv", "decision_matrix_edge.md",
                                       "decision_matrix_edge.json"]
    excluded = "excluded: online p99 latency 41 ms > 10 ms"

    text = paths[0].read_text()
    for fact in ("# profile: edge", "# weights: quality 4", "# constraints (must hold on every task): online p99 "
                 "latency <= 10 ms", "# runs: 60 used", "# versions: scikit-learn 1.9.1",
                 "# machine: cpu_model test CPU", "# decision: flaml_automl wins"):
        assert fact in text
    table = pd.read_csv(paths[0], comment="#")
    assert list(table["pipeline"]) == ["flaml_automl", "sklearn_hgb", "sklearn_linear", "keras_mlp"]
    assert list(table["rank"].fillna(0)) == [1, 2, 3, 0]
    assert table.set_index("pipeline").loc["keras_mlp", "reason"] == excluded

    md = paths[1].read_text()
    assert md.startswith("# Decision matrix: profile `edge`") and "**flaml_automl wins with score" in md
    assert f"keras_mlp: {excluded}" in md and re.search(r"\| *1 *\| flaml_automl", md)
    assert "friedman test over 5 tasks" in md and "## AutoML vs hand-coded" in md

    data = json.loads(paths[2].read_text())
    assert data["profile"]["weights"]["quality"] == 4 and data["profile"]["name"] == "edge"
    assert {"criterion": "latency_p99_ms", "op": "max", "limit": 10.0} in data["profile"]["constraints"]
    assert data["meta"]["runs"]["used"] == 60 and data["meta"]["versions"]["scikit-learn"] == "1.9.1"
    assert data["meta"]["selection"]["suite"] == "quick" and data["meta"]["machine"]["cpu_model"] == "test CPU"
    assert [r["pipeline"] for r in data["rows"]][:3] == ["flaml_automl", "sklearn_hgb", "sklearn_linear"]
    assert data["winner"] == "flaml_automl" and data["ranks"]["test"] == "friedman"
    assert data["automl_vs_manual"]["tasks"][0]["manual"] == "sklearn_hgb"
    assert set(data["meta"]["compare_urls"]) == set(TASKS)


def test_html_is_self_contained_with_the_plots(tmp_path, edge_matrix):
    m, info, _ = edge_matrix
    (path,) = writers.export(m, info, ["html"], tmp_path)
    page = path.read_text()
    images = re.findall(r"<figure><svg [^>]*>.*?</svg>(?:<svg [^>]*>.*?</svg>)?<figcaption>([^<]*)</figcaption>", page)
    assert len(images) == 5  # inline SVG
    assert any("online latency" in a for a in images) and any("training wall time" in a for a in images)
    assert any("effort" in a for a in images) and any("critical-difference" in a for a in images)
    assert not re.search(r"(src|href)=['\"](?!data:|http://127\.0\.0\.1:5000)", page)  # nothing else to fetch
    assert "excluded: online p99 latency 41 ms &gt; 10 ms" in page and "<tr class='excluded'>" in page
    assert "profile: edge (built-in edge)" in page


def test_formats_and_file_names():
    assert writers.check_formats(["md", "csv"]) == ["csv", "md"]
    with pytest.raises(BenchError, match="expected a comma-separated subset of csv,md,json,html"):
        writers.check_formats(["csv", "pdf"])
    assert writers.file_stem("balanced") == "decision_matrix" and writers.file_stem("my kiosk") == \
        "decision_matrix_my_kiosk"


def _log_fake_runs(uri: str, runs: pd.DataFrame) -> None:
    from mlflow.entities import Metric, Param

    from bench import tracking

    tracking.check_store(uri)
    client = tracking._client(uri)
    experiments = {task: tracking.experiment_id(uri, task) for task in runs["tags.task"].unique()}
    for _, row in runs.iterrows():
        exp = experiments[row["tags.task"]]
        tags = {k.removeprefix("tags."): v for k, v in row.items() if k.startswith("tags.") and pd.notna(v)}
        run_id = client.create_run(exp, run_name=f"{row['tags.pipeline']}-s{row['tags.seed']}", tags=tags).info.run_id
        metrics = [Metric(k.removeprefix("metrics."), float(v), 0, 0) for k, v in row.items()
                   if k.startswith("metrics.") and pd.notna(v)]
        params = [Param(k.removeprefix("params."), str(v)) for k, v in row.items() if k.startswith("params.")]
        client.log_batch(run_id, metrics=metrics, params=params)
        client.set_terminated(run_id, row["status"])


@pytest.mark.slow
def test_bench_matrix_over_a_sqlite_store_writes_files_and_logs_the_matrix_run(store_uri, tmp_path, capsys,
                                                                                monkeypatch):
    from bench import tracking
    from bench.cli import main

    spec = {k: SPEC[k] for k in ("sklearn_linear", "keras_mlp", "flaml_automl")}
    _log_fake_runs(store_uri, fake_mlflow_runs(spec, tasks=("auc_a", "rmse_a"), seeds=2,
                                        failed=(("auc_a", "keras_mlp", 1),)))

    fast, slow = store.read_runs(store_uri), store.read_runs(store_uri, reader="mlflow")  # the direct read is exact
    assert list(fast["run_id"]) == list(slow["run_id"]) and set(fast.columns) == set(slow.columns)
    pd.testing.assert_frame_equal(fast, slow[fast.columns], check_dtype=False, check_index_type=False)
    assert len(store.read_runs(store_uri, tasks=["rmse_a"], pipelines=["keras_mlp"])) == 2
    assert set(fast["kind"]) == {"job"} and {"pipeline", "task", "fit_wall_s", "primary_metric"} <= set(fast)
    assert not [c for c in fast.columns if c.startswith(("tags.", "metrics.", "params."))]

    monkeypatch.chdir(tmp_path)
    assert main(["matrix", "--tracking-uri", store_uri]) == 0  # defaults: balanced, csv+md+html into results/
    assert "in the background" in capsys.readouterr().out
    outcome_file = tmp_path / "results" / "matrix_run.json"
    for _ in range(240):  # the detached logger imports mlflow: seconds, more on a loaded machine
        if outcome_file.is_file():
            break
        time.sleep(0.5)
    outcome = json.loads(outcome_file.read_text())
    assert outcome["status"] == "logged", outcome
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["decision_matrix.csv", "decision_matrix.html",
                                                                       "decision_matrix.md", "matrix_run.json"]
    out = tmp_path / "edge"
    assert main(["matrix", "--tracking-uri", store_uri, "--profile", "edge", "--format", "csv,md,json",
                 "--out", str(out), "--ui-url", "http://localhost:5001", "--wait"]) == 0
    printed = capsys.readouterr().out
    assert "excluded: online p99 latency 41 ms > 10 ms" in printed
    assert "http://localhost:5001/#/compare-runs?runs=" in printed and "in experiment 'matrix'" in printed
    assert json.loads((out / "matrix_run.json").read_text())["run_id"] in printed

    client = tracking._client(store_uri)
    exp = client.get_experiment_by_name("matrix")
    assert exp.artifact_location.startswith((tmp_path / "mlflow" / "artifacts").as_uri())
    logged = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    assert len(logged) == 2 and logged[0].data.params["profile"] == "edge" and logged[0].info.status == "FINISHED"
    assert logged[1].info.run_id == outcome["run_id"] and logged[1].data.params["profile"] == "balanced"
    names = {a.path for a in client.list_artifacts(logged[0].info.run_id)}
    assert names == {"decision_matrix_edge.csv", "decision_matrix_edge.md", "decision_matrix_edge.json"}
    assert len(store.read_runs(store_uri)) == len(slow)  # the matrix runs are not job runs
    assert set(tracking.load_runs(store_uri)["tags.pipeline"]) == set(fast["pipeline"])


def test_bench_matrix_explains_an_empty_or_missing_store(tmp_path, capsys):
    from bench.cli import main

    assert main(["matrix", "--tracking-uri", f"sqlite:///{tmp_path}/missing/mlflow.db"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_a_failed_background_log_is_recorded_and_reported_by_the_next_matrix(tmp_path):
    staging, out = tmp_path / "staging", tmp_path / "results"
    staging.mkdir(), out.mkdir()
    (staging / "decision_matrix.md").write_text("# matrix")
    payload = {"run_name": "matrix-x", "tags": {}, "params": {}, "metrics": {}, "uri": "sqlite:////proc/no/such.db",
               "paths": [str(staging / "decision_matrix.md")]}
    (staging / "payload.json").write_text(json.dumps(payload))
    assert logger._logger_main(staging, out / logger.OUTCOME_FILE) == 1
    outcome = json.loads((out / logger.OUTCOME_FILE).read_text())
    assert outcome["status"] == "failed" and outcome["traceback"] and not staging.exists()
    error = logger.MatrixRunLogger("sqlite:///x.db", out).previous_failure()
    assert error == outcome["error"] and error
