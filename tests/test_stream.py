"""The stream benchmark: prequential order, strategy semantics, drift recovery, config errors, update paths."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import stream as st
from bench.errors import TaskError
from bench.tasks import load_task
from tests.conftest import write_stream_task


class Recorder:
    """A fake pipeline that records which rows it learned from and refuses to score a row it has seen."""

    events: list[tuple[str, frozenset]] = []

    def __init__(self) -> None:
        self.seen: set[float] = set()

    def fit(self, X, y, task):
        self.seen = set(X["row_id"])
        Recorder.events.append(("fit", frozenset(self.seen)))
        return self

    def update(self, X, y, task):
        self.seen |= set(X["row_id"])
        Recorder.events.append(("update", frozenset(X["row_id"])))
        return self

    def _check(self, X) -> None:
        overlap = self.seen & set(X["row_id"])
        assert not overlap, f"scored rows it was trained on: {sorted(overlap)[:5]}"
        Recorder.events.append(("score", frozenset(X["row_id"])))

    def predict(self, X):
        self._check(X)
        return np.where(X["x"] > 0, "yes", "no").astype(object)

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-3 * X["x"].to_numpy()))
        return np.column_stack([1 - p, p])


def run(path: Path, strategy: str, **kwargs):
    stream = st.load_stream(load_task(path))
    Recorder.events = []
    initial, periods = st.prequential(Recorder, stream, strategy, lambda kind: stream.data.info(0, 1, 5.0), **kwargs)
    return stream, initial, periods, list(Recorder.events)


@pytest.mark.parametrize("strategy,kwargs", [("static", {}), ("periodic", {}), ("periodic", {"window": 1}),
                                             ("periodic", {"retrain_every": 2}), ("incremental", {})])
def test_prequential_never_scores_rows_it_learned(tmp_path, strategy, kwargs):
    stream, _, periods, events = run(write_stream_task(tmp_path), strategy, **kwargs)
    ids = stream.data.X["row_id"].to_numpy()
    period_of = dict(zip(ids, stream.position, strict=True))
    learned: set[float] = set()
    for kind, rows in events:
        if kind == "score":
            t = {period_of[r] for r in rows}
            assert len(t) == 1, "a scoring call holds one period"
            assert all(period_of[r] < min(t) for r in learned), "the model saw a period that is not in its past"
            assert not learned & rows
        elif kind == "fit":
            learned = set(rows)
        else:
            learned |= rows
    assert [p.position for p in periods] == [2, 3, 4, 5]  # every period after the initial two is scored once
    assert "row_id" in stream.data.X and "period" not in stream.data.X  # the period column is no feature
    assert all(math.isfinite(p.quality) for p in periods)
    summary = st.summarise(periods, stream)  # no known drift: no drift figures, the rest as usual
    assert summary["mean_quality"] > 0.8 and "drift_quality" not in summary and "recovery" not in summary


def test_strategy_semantics(tmp_path):
    path = write_stream_task(tmp_path)
    _, _, periods, events = run(path, "static")
    assert [k for k, _ in events if k != "score"] == ["fit"]
    assert all(not p.update and p.update_wall_s == 0 for p in periods)

    stream, _, periods, events = run(path, "periodic", retrain_every=2)
    fits = [rows for k, rows in events if k == "fit"]
    assert [p.update for p in periods] == ["", "refit", "", ""]  # refit after 2 new periods; none after the last
    assert {stream.position[int(r)] for r in fits[1]} == {0, 1, 2, 3}  # all data so far

    _, _, periods, events = run(path, "periodic", window=1)
    fits = [rows for k, rows in events if k == "fit"]
    assert len(fits) == 4 and [p.update for p in periods] == ["refit", "refit", "refit", ""]
    assert {stream.position[int(r)] for r in fits[-1]} == {4}  # the last period only
    assert periods[0].update_rows == 12 and periods[0].new_rows == 12

    _, _, periods, events = run(path, "incremental")
    updates = [rows for k, rows in events if k == "update"]
    assert len(updates) == 3 and [p.update for p in periods] == ["update", "update", "update", ""]
    assert all(len({stream.position[int(r)] for r in rows}) == 1 for rows in updates)  # one period each time


def drift_task(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "drift.yaml"
    path.write_text("name: tiny_drift\nkind: binary\ntarget: label\npositive_label: pos\n"
                    "source: {type: drift, periods: 9, rows_per_period: 400, features: 4, abrupt: 5, seed: 1}\n"
                    "stream: {period: period, initial_periods: 2, drifts: [5], drift_window: 2}\n")
    return path


def test_incremental_recovers_from_abrupt_drift_and_static_does_not(tmp_path):
    from bench.discovery import load_module

    stream = st.load_stream(load_task(drift_task(tmp_path)))
    pipeline = load_module("sklearn_sgd").Pipeline

    def info(kind):
        return stream.data.info(0, 1, 5.0, time.monotonic() + 5.0)

    summaries = {}
    for strategy in ("static", "incremental"):
        _, periods = st.prequential(pipeline, stream, strategy, info)
        summaries[strategy] = st.summarise(periods, stream)
    static, incremental = summaries["static"], summaries["incremental"]
    assert static["pre_drift_quality"] > 0.9 and incremental["pre_drift_quality"] > 0.9
    assert static["recovery"] == [None], "static cannot follow a flipped boundary"
    assert incremental["recovery"][0] is not None and incremental["recovery"][0] <= 2
    assert incremental["drift_quality"] > static["drift_quality"]
    assert incremental["update_ms"] > 0 and math.isnan(static["update_ms"])


@pytest.mark.parametrize("stream_yaml,field", [
    ("{period: period, colour: red}", "stream.colour"),
    ("{period: period, initial_periods: two}", "stream.initial_periods"),
    ("{period: period, rows: 10}", "stream.period"),
    ("{period: period, drifts: [4, 2]}", "stream.drifts"),
    ("{rows: 0}", "stream.rows"),
    ("[period]", "stream"),
])
def test_bad_stream_config_names_file_and_field(tmp_path, stream_yaml, field):
    path = write_stream_task(tmp_path)
    path.write_text(path.read_text().rsplit("stream:", 1)[0] + f"stream: {stream_yaml}\n")
    with pytest.raises(TaskError) as err:
        load_task(path)
    assert err.value.field == field and str(path) in str(err.value)


@pytest.mark.parametrize("extra,field", [(", drifts: [9]", "stream.drifts"), (", initial_periods: 6", None)])
def test_stream_config_checked_against_the_data(tmp_path, extra, field):
    path = write_stream_task(tmp_path)
    path.write_text(path.read_text().replace(", initial_periods: 2}", extra + "}"))
    with pytest.raises(TaskError) as err:
        st.load_stream(load_task(path))
    assert err.value.field == (field or "stream.initial_periods")
    missing = write_stream_task(tmp_path / "m")
    missing.write_text(missing.read_text().replace("period: period", "period: month"))
    with pytest.raises(TaskError, match="month") as err:
        st.load_stream(load_task(missing))
    assert err.value.field == "stream.period"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sklearn_sgd", "torch_mlp", "keras_mlp", "flaml_automl"])
def test_update_takes_a_batch_with_unseen_levels(tmp_path, name):
    from bench.discovery import load_module

    path = drift_task(tmp_path)  # segment level "F" first appears with the drift at period 5
    stream = st.load_stream(load_task(path))
    X, y, pos = stream.data.X, stream.data.y, stream.position
    before, after = pos < 2, pos == 5
    assert "F" not in set(X.loc[before, "segment"]) and "F" in set(X.loc[after, "segment"])
    cls = load_module(name).Pipeline
    assert cls.supports_online_learning
    pipe = cls()
    pipe.fit(X[before], y[before], stream.data.info(0, 1, 3.0, time.monotonic() + 3.0))
    old = np.asarray(pipe.predict_proba(X[after]))
    assert pipe.update(X[after], y[after], stream.data.info(0, 1, 3.0, time.monotonic() + 3.0)) is pipe
    new = np.asarray(pipe.predict_proba(X[after]))
    assert new.shape == old.shape and np.isfinite(new).all()
    assert not np.allclose(new, old), "the update changed nothing"
    assert set(np.asarray(pipe.predict(X[after])).tolist()) <= set(stream.data.classes)


@pytest.mark.slow
def test_bench_stream_logs_runs_table_and_matrix_criteria(tmp_path, store_uri):
    from bench import store
    from bench.analysis import aggregate
    from bench.cli import main

    path = drift_task(tmp_path / "tasks")
    out = tmp_path / "results"
    code = main(["stream", "--task", str(path), "--pipelines", "sklearn_sgd,sklearn_linear", "--strategies",
                 "incremental", "--budget", "5", "--update-budget", "2", "--tracking-uri", store_uri,
                 "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out / "stream_tiny_drift.csv")
    assert len(table) == 2
    no_path = table[(table["pipeline"] == "sklearn_linear") & (table["strategy"] == "incremental")]
    assert no_path["status"].tolist() == ["no incremental path"]
    assert (table.loc[table["pipeline"] == "sklearn_sgd", "status"] == "finished").all()
    assert (out / "stream_tiny_drift.png").stat().st_size > 1000 and (out / "stream_tiny_drift.md").exists()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri)
    exp = client.get_experiment_by_name("stream-tiny_drift")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert {"sklearn_sgd-incremental-s0", "stream-summary"} == set(runs)  # no run for "no incremental path"
    inc = runs["sklearn_sgd-incremental-s0"]
    assert inc.data.tags["strategy"] == "incremental" and inc.data.tags["kind"] == "stream"
    history = client.get_metric_history(inc.info.run_id, "quality")
    assert sorted(m.step for m in history) == [2, 3, 4, 5, 6, 7, 8]  # the period is the step
    assert inc.data.metrics["update_ms"] > 0 and "drift_quality" in inc.data.metrics

    criteria = aggregate.stream_criteria(aggregate.split_stream(store.read_runs(store_uri))[1])
    assert criteria.loc["sklearn_sgd", "update_ms"] == pytest.approx(inc.data.metrics["update_ms"])
    assert list(criteria.index) == ["sklearn_sgd"]


def test_matrix_scores_online_learning_from_incremental_stream_runs():
    from bench import store
    from bench.analysis import aggregate, decide
    from bench.analysis.profiles import load_profile
    from tests.conftest import fake_runs

    # slow_learner's suite runs predate its update() (flag 0): its incremental stream run shows it learns online.
    runs = fake_runs({"batch_only": {}, "learner": {"online_learning": 1.0}, "slow_learner": {}})
    t0 = pd.Timestamp("2026-11-02", tz="UTC")
    stream_rows = []
    for i, (pipeline, strategy, update_ms, kept) in enumerate([
            ("learner", "incremental", 0.01, 0.9), ("learner", "static", math.nan, 0.0),
            ("slow_learner", "incremental", 5.0, 0.4), ("slow_learner", "periodic", 1.0, 0.1),
            ("slow_learner", "incremental", 50.0, 0.1)]):  # an older run of the same seed: not used
        stream_rows.append({"run_id": f"s{i}", "experiment_id": "9", "status": "FINISHED",
                            "start_time": t0 - pd.Timedelta(minutes=i), "tags.task": "drift", "tags.pipeline": pipeline,
                            "tags.seed": "0", "tags.kind": "stream", "tags.strategy": strategy,
                            "tags.job_key": f"stream-{i}", "metrics.update_ms": update_ms,
                            "metrics.drift_quality": kept})
    agg = aggregate.aggregate(pd.concat([runs, store.plain(pd.DataFrame(stream_rows))], ignore_index=True))
    assert agg.table.loc["learner", "update_ms"] == pytest.approx(0.01)
    assert agg.table.loc["slow_learner", "drift_quality"] == pytest.approx(0.4)
    assert math.isnan(agg.table.loc["batch_only", "update_ms"])
    assert set(agg.runs["task"]) == {"auc_task", "rmse_task"}  # stream runs are no suite jobs
    d = decide.decide(agg, load_profile("online-learning"))
    assert d.winner == "learner"
    assert "drift_quality" in d.weights and "update_ms" in d.weights
    assert not d.table.loc["batch_only", "feasible"]
    assert d.table.loc["slow_learner", "feasible"] and d.table.loc["slow_learner", "online_learning"] == 1.0


def test_any_stream_section_is_valid_or_a_task_error_naming_a_stream_field(tmp_path_factory):
    import yaml
    from hypothesis import given, settings
    from hypothesis import strategies as hs

    from bench.tasks import STREAM_KEYS
    from tests.conftest import FUZZ_VALUES as values

    @settings(max_examples=60, deadline=None)
    @given(section=hs.dictionaries(hs.sampled_from([*STREAM_KEYS, "extra"]), values, max_size=5))
    def check(section):
        path = write_stream_task(tmp_path_factory.mktemp("s"), periods=3, rows=4)
        spec = yaml.safe_load(path.read_text()) | {"stream": section}
        path.write_text(yaml.safe_dump(spec))
        try:
            load_task(path)
        except TaskError as err:
            assert str(path) in str(err) and (err.field or "").startswith("stream")

    check()
