"""What MLflow shows of a suite: training experiments with descriptions, dataset inputs, flavour models with a
signature and an input example for every pipeline, the invocation tag, and the matrix winner in the registry."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest

from bench import registry, tracking
from bench.cli import main
from bench.discovery import available
from bench.execution import runner
from bench.progress import print_summary
from bench.tasks import load_task
from tests.conftest import FAKE_PIPELINES

DESCRIPTION = "Two noisy classes for the tests."


def run_suite(uri: str, tmp_path, task_path, pipelines: list[str]) -> tuple[runner.RunConfig, list]:
    tracking.check_store(uri)
    config = runner.RunConfig(tracking_uri=uri, budget_s=1, time_margin_s=90, latency_n=50, latency_warmup=5,
                              batch_rows=200, cold_start_repeats=1, suite="test", job_root=tmp_path / "jobs")
    return config, runner.run_all(runner.plan([load_task(task_path)], pipelines, [0]), config)


def test_experiments_are_training_experiments_and_old_ones_are_fixed_up(store_uri):
    tracking.check_store(store_uri)
    client = tracking._client(store_uri)
    made = client.get_experiment(tracking.experiment_id(store_uri, "fresh", DESCRIPTION))
    assert made.tags["mlflow.experimentKind"] == "custom_model_development"
    assert made.tags["mlflow.note.content"] == DESCRIPTION

    old = client.create_experiment("old")  # as a harness without these tags made it
    assert tracking.experiment_id(store_uri, "old", DESCRIPTION) == old
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    assert client.get_experiment(old).tags["mlflow.note.content"] == DESCRIPTION

    client.set_experiment_tag(old, "mlflow.note.content", "written by a person in the UI")
    tracking.experiment_id(store_uri, "old", DESCRIPTION)
    assert client.get_experiment(old).tags["mlflow.note.content"] == "written by a person in the UI"


def test_the_registered_run_is_the_median_seed_and_aliases_are_valid():
    runs = pd.DataFrame({"run_id": list("abcde"), "seed": [0, 1, 2, 3, 4], "primary_score": [0.9, 0.7, 0.8, 0.6, 0.8]})
    assert registry.pick_run(runs)["run_id"] == "c"  # scores 0.6 0.7 [0.8 seed 2] 0.8 0.9
    assert registry.pick_run(runs.iloc[:2])["run_id"] == "b"  # lower middle of two
    assert registry.alias_for("cloud-realtime") == "cloud-realtime-winner"
    assert registry.alias_for("my profile.v2") == "my-profile-v2-winner"


@pytest.mark.slow
def test_every_pipeline_logs_lineage_and_a_servable_model_and_the_winner_is_registered(store_uri, tiny_tasks,
                                                                                        tmp_path, capsys):
    task_path = tiny_tasks["binary"]
    task_path.write_text(task_path.read_text() + f"description: {DESCRIPTION}\n")
    pipelines = available()
    assert len(pipelines) >= 7
    config, outcomes = run_suite(store_uri, tmp_path, task_path, pipelines)
    assert {o.job.pipeline: o.status for o in outcomes} == dict.fromkeys(pipelines, "finished")
    assert {o.job.pipeline: o.model_error for o in outcomes} == dict.fromkeys(pipelines, "")

    client = tracking._client(store_uri)
    experiment = client.get_experiment_by_name("tiny_binary")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.tags["mlflow.note.content"] == DESCRIPTION
    # the filter the README shows: one invocation's runs, and only them
    runs = client.search_runs([experiment.experiment_id], f"tags.invocation = '{config.invocation}'")
    assert sorted(r.data.tags["pipeline"] for r in runs) == sorted(pipelines)
    assert client.search_runs([experiment.experiment_id], "tags.invocation = 'another'") == []
    mlflow.set_tracking_uri(store_uri)
    for run in runs:
        pipeline, split = run.data.tags["pipeline"], run.data.tags["split_hash"]
        assert "model_logging_error" not in run.data.tags, (pipeline, run.data.tags.get("model_logging_error"))
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert sorted(inputs) == ["test", "train"], pipeline
        for context, dataset in inputs.items():
            assert (dataset.name, dataset.digest) == ("tiny_binary", f"{split}-{context}")
            assert json.loads(dataset.source)["uri"] == task_path.resolve().as_uri()
            assert json.loads(dataset.profile)["num_rows"] == int(run.data.params[f"n_{context}"])
            columns = [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]]
            assert columns and "label" not in columns
        model_uri = tracking.logged_model_uri(store_uri, run.info.run_id)
        info = mlflow.models.get_model_info(model_uri)
        assert info.signature is not None and info.signature.inputs is not None, pipeline
        assert info.saved_input_example_info is not None, pipeline
        example = mlflow.models.Model.load(model_uri).load_input_example(mlflow.artifacts.download_artifacts(model_uri))
        prediction = mlflow.pyfunc.load_model(model_uri).predict(example)  # the model serves its own example
        assert len(prediction) == len(example), pipeline

    out = tmp_path / "out"
    # the registry must use --tracking-uri even where MLflow's global URI points elsewhere (MLflow looks the
    # logged model up through the global one when it creates a version)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert main(["matrix", "--tracking-uri", store_uri, "--out", str(out), "--format", "csv", "--no-log"]) == 0
    printed = capsys.readouterr().out
    versions = client.search_model_versions("name = 'tiny_binary'")
    if "nothing registered" in printed:
        pytest.fail(f"the balanced profile chose no winner on the tiny task: {printed[-2000:]}")
    assert len(versions) == 1 and "registered: model 'tiny_binary' version 1" in printed
    winner = client.get_model_version_by_alias("tiny_binary", "balanced-winner")
    winning_run = client.get_run(winner.run_id)
    winner_rows = [line.split() for line in printed.splitlines() if line.rstrip().endswith("winner")]
    assert winner_rows and winning_run.data.tags["pipeline"] in winner_rows[0], printed[-2000:]
    assert winner.source == tracking.logged_model_uri(store_uri, winner.run_id)
    # the rerun's answer comes from SQLite alone (no MLflow import: it costs more than the whole matrix)
    known = registry._known_from_sqlite(store_uri, "tiny_binary", "balanced-winner", winner.run_id, "x")
    assert (known.version, known.run_id, known.new) == (str(winner.version), winner.run_id, False)
    assert registry._known_from_sqlite(store_uri, "tiny_binary", "edge-winner", winner.run_id, "x") is None
    unmodelled = client.create_run(experiment.experiment_id).info.run_id
    assert "has no MLflow model" in registry._known_from_sqlite(store_uri, "tiny_binary", "balanced-winner",
                                                                 unmodelled, "x").reason

    assert main(["matrix", "--tracking-uri", store_uri, "--out", str(out), "--format", "csv", "--no-log"]) == 0
    assert "already registered: model 'tiny_binary' version 1" in capsys.readouterr().out
    assert len(client.search_model_versions("name = 'tiny_binary'")) == 1  # idempotent

    assert main(["matrix", "--tracking-uri", store_uri, "--out", str(out), "--format", "csv", "--no-log",
                 "--profile", "low-effort", "--no-register"]) == 0
    assert "registered" not in capsys.readouterr().out
    assert "low-effort-winner" not in client.get_registered_model("tiny_binary").aliases


@pytest.mark.slow
def test_a_model_that_does_not_log_is_in_the_summary(store_uri, tiny_tasks, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_PIPELINE_PATH", str(FAKE_PIPELINES))
    monkeypatch.setenv("COLUMNS", "300")  # one summary line per job, whatever the terminal
    _, outcomes = run_suite(store_uri, tmp_path, tiny_tasks["binary"], ["model_unloggable", "sklearn_linear"])
    by_pipeline = {o.job.pipeline: o for o in outcomes}
    assert {p: o.status for p, o in by_pipeline.items()} == {"model_unloggable": "finished",
                                                             "sklearn_linear": "finished"}
    assert "pickle" in by_pipeline["model_unloggable"].model_error
    assert by_pipeline["sklearn_linear"].model_error == ""
    run = tracking._client(store_uri).get_run(by_pipeline["model_unloggable"].run_id)
    assert "pickle" in run.data.tags["model_logging_error"]
    print_summary(outcomes, store_uri)
    lines = [line for line in capsys.readouterr().out.splitlines() if "MODEL NOT LOGGED" in line]
    assert len(lines) == 1 and "tiny_binary/model_unloggable-s0" in lines[0]
