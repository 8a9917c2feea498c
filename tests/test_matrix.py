"""The decision matrix's arithmetic on hand-made runs (the columns ``store.read_runs`` gives): quality
normalisation, aggregation, constraints, weighted sum, TOPSIS against pymcdm, Pareto, stability when a
dominated pipeline joins, reasons, statistics against scipy/autorank, and profile validation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.analysis import aggregate, criteria, decide, stats, verdict
from bench.analysis.profiles import Profile, builtin_names, load_profile, parse_profile
from bench.errors import BenchError
from tests.conftest import BASE, fake_runs


def profile(weights: dict[str, float], constraints: tuple = (), bounds: dict | None = None, rtt: float = 0.0,
            name: str = "test") -> Profile:
    from bench.analysis.profiles import Constraint

    return Profile(name, "", weights, tuple(Constraint(*c) for c in constraints), bounds or {}, rtt, "test")


# ---------------------------------------------------------------- normalisation and aggregation

def test_quality_is_zero_at_the_constant_and_one_at_the_best_per_split_either_direction():
    runs = fake_runs({"good": {"skill": 0.8}, "half": {"skill": 0.4}}, seeds=1)
    fin = runs.copy()
    q = aggregate.normalised_quality(fin)
    by = dict(zip(fin["run_id"], q, strict=True))
    assert by["auc_task-good-0"] == pytest.approx(1.0) and by["rmse_task-good-0"] == pytest.approx(1.0)
    assert by["auc_task-half-0"] == pytest.approx(0.5) and by["rmse_task-half-0"] == pytest.approx(0.5)
    # a score worse than the constant predictor is negative, not clipped
    fin.loc[fin["run_id"] == "auc_task-half-0", "primary_score"] = 0.4
    assert aggregate.normalised_quality(fin)[fin["run_id"] == "auc_task-half-0"].iloc[0] < 0


def test_aggregate_medians_over_seeds_geometric_mean_over_tasks_failures_and_reruns():
    runs = fake_runs({"a": {"skill": 0.8}}, seeds=3, failed=(("auc_task", "a", 2),))
    runs.loc[runs["task"] == "auc_task", "fit_wall_s"] = [1.0, 9.0, np.nan]  # median over seeds: 5
    runs.loc[runs["task"] == "rmse_task", "fit_wall_s"] = [20.0, 20.0, 20.0]
    agg = aggregate.aggregate(runs)
    row = agg.table.loc["a"]
    assert row["fit_wall_s"] == pytest.approx(math.sqrt(5.0 * 20.0))
    assert row["failure_rate"] == pytest.approx(1 / 6) and row["runs"] == 6 and row["finished"] == 5
    assert "exception on auc_task x1" in row["failures"]
    # a rerun that finished replaces the failed run of the same job key
    rerun = runs[runs["status"] == "FAILED"].assign(status="FINISHED", run_id="rerun",
                                                    start_time=pd.Timestamp("2026-12-01", tz="UTC"))
    measured = ["primary_score", "primary_constant", *BASE]
    rerun[measured] = runs.iloc[0][measured].to_numpy()
    agg2 = aggregate.aggregate(pd.concat([rerun, runs]))
    assert agg2.table.loc["a", "failure_rate"] == 0 and agg2.duplicates == 1


def test_spread_over_seeds_and_bootstrap_interval_and_mean_rank():
    runs = fake_runs({"a": {"skill": 0.8}, "b": {"skill": 0.4}}, seeds=4)
    table = aggregate.aggregate(runs).table
    assert table.loc["a", "quality_sd"] == pytest.approx(0.0, abs=1e-9)  # always the best: 1 on every split
    low, high = table.loc["b", ["quality_ci_low", "quality_ci_high"]]
    assert low <= table.loc["b", "quality"] <= high
    assert table.loc["a", "mean_rank"] == 1 and table.loc["b", "mean_rank"] == 2


# ---------------------------------------------------------------- scoring primitives

def test_utility_uses_fixed_bounds_a_log_scale_clipping_and_worst_for_missing():
    crit = criteria.CRITERIA["latency_p50_ms"]
    values = pd.Series([1000.0, 0.01, 1.0, 1e6, np.nan, 0.1])
    u = decide.utility(values, crit, (1000.0, 0.01))
    assert list(u.round(6)) == [0.0, 1.0, 0.6, 0.0, 0.0, 0.8]
    linear = decide.utility(pd.Series([0.25, 1.5]), criteria.CRITERIA["quality"], (0.0, 1.0))
    assert list(linear) == [0.25, 1.0]


def test_weighted_sum_by_hand():
    util = pd.DataFrame({"quality": [1.0, 0.5], "lloc": [0.0, 1.0]}, index=["x", "y"])
    scores = decide.weighted_sum(util, {"quality": 3, "lloc": 1})
    assert scores["x"] == pytest.approx(0.75) and scores["y"] == pytest.approx(0.625)


def test_topsis_matches_pymcdm():
    from pymcdm import normalizations
    from pymcdm.methods import TOPSIS

    rng = np.random.default_rng(1)
    m, w = rng.random((7, 4)) + 0.05, np.array([4.0, 1.0, 2.0, 0.5])
    types = np.array([1, -1, 1, -1])
    expected = TOPSIS(normalizations.vector_normalization)(m, w / w.sum(), types)
    assert decide.topsis(m, w, types > 0) == pytest.approx(expected)
    identity = TOPSIS(lambda x, cost: x)(m, w / w.sum(), np.ones(4))  # the matrix passes utilities as they are
    assert decide.topsis(m, w, normalise=False) == pytest.approx(identity)


def test_pareto_front():
    values = np.array([[1.0, 5.0], [2.0, 4.0], [1.5, 3.0], [0.5, 5.0], [2.0, 4.0], [np.nan, 3.0], [np.nan, 9.0]])
    assert list(decide.pareto_front(values)) == [True, True, False, False, True, False, True]


# ---------------------------------------------------------------- decisions

def test_constraints_exclude_with_the_numbers_and_the_worst_task():
    runs = fake_runs({"fast": {"skill": 0.5}, "slow": {"skill": 0.9, "latency_p99_ms": 41.0},
                      "big": {"skill": 0.7, "model_bytes": 8e6}})
    runs.loc[(runs["pipeline"] == "fast") & (runs["task"] == "rmse_task"), "latency_p99_ms"] = 12.0
    prof = profile({"quality": 1}, [("latency_p99_ms", "max", 20.0), ("model_mb", "max", 5.0)])
    d = decide.decide(aggregate.aggregate(runs), prof)
    assert d.table.loc["slow", "reason"] == "excluded: online p99 latency 41 ms > 20 ms"
    assert d.table.loc["big", "reason"] == "excluded: model size 8 MB > 5 MB"
    assert d.winner == "fast" and "only pipeline meeting every constraint" in d.winner_reason
    tighter = profile({"quality": 1}, [("latency_p99_ms", "max", 10.0)])
    d2 = decide.decide(aggregate.aggregate(runs), tighter)
    assert d2.table.loc["fast", "reason"] == "excluded: online p99 latency 12 ms > 10 ms on rmse_task"


def test_a_p99_limit_needs_the_calls_mlperfs_early_stopping_rule_needs():
    runs = fake_runs({"few": {"latency_p99_ms": 2.0, "latency_n": 200.0},
                      "enough": {"skill": 0.3, "latency_p99_ms": 3.0, "latency_p99_es_ms": 4.0, "latency_n": 1000.0}})
    d = decide.decide(aggregate.aggregate(runs), profile({"quality": 1}, [("latency_p99_ms", "max", 10.0)]))
    assert d.winner == "enough"
    assert d.table.loc["few", "reason"] == ("excluded: online p99 latency: not enough calls (200 < 662) for MLPerf's "
                                            "early-stopping estimate; rerun with --latency-n 1000")
    # the constraint reads the early-stopping estimate, not the empirical percentile
    d2 = decide.decide(aggregate.aggregate(runs), profile({"quality": 1}, [("latency_p99_ms", "max", 3.5)]))
    assert d2.table.loc["enough", "reason"].startswith("excluded: online p99 latency 4 ms > 3.5 ms")


def test_network_round_trip_is_added_to_online_latency():
    runs = fake_runs({"a": {"latency_p99_ms": 5.0}})
    d = decide.decide(aggregate.aggregate(runs), profile({"quality": 1}, [("latency_p99_ms", "max", 20.0)], rtt=20))
    assert d.table.loc["a", "reason"] == "excluded: online p99 latency 25 ms > 20 ms"


SPEC = {"accurate": {"skill": 0.9, "latency_p50_ms": 5.0, "model_bytes": 5e6},
        "quick": {"skill": 0.6, "latency_p50_ms": 0.1, "model_bytes": 1e4},
        "middle": {"skill": 0.75, "latency_p50_ms": 1.0, "model_bytes": 1e5}}
WEIGHTS = {"quality": 4, "latency_p50_ms": 2, "model_mb": 1}


def test_adding_a_dominated_pipeline_leaves_the_others_order_and_scores_unchanged():
    before = decide.decide(aggregate.aggregate(fake_runs(SPEC)), profile(WEIGHTS))
    worse = SPEC | {"dominated": {"skill": 0.55, "latency_p50_ms": 8.0, "model_bytes": 9e6}}
    after = decide.decide(aggregate.aggregate(fake_runs(worse)), profile(WEIGHTS))
    kept = [p for p in after.table.index if p != "dominated"]
    assert kept == list(before.table.index)
    assert after.table.loc[kept, "score"].to_numpy() == pytest.approx(before.table["score"].to_numpy())
    assert not after.table.loc["dominated", "pareto"] and "dominated by" in after.table.loc["dominated", "reason"]
    assert after.table.loc[kept, "pareto"].all()


def test_winner_reason_names_what_decided_it_and_sensitivity_finds_close_calls():
    d = decide.decide(aggregate.aggregate(fake_runs(SPEC)), profile(WEIGHTS))
    ranked = list(d.table.index)
    assert d.winner == ranked[0] and d.table.loc[ranked[0], "rank"] == 1
    assert d.winner_reason.startswith(f"{d.winner} wins with score") and "decided by" in d.winner_reason
    assert "agrees on the winner" in d.topsis_note or "DISAGREES" in d.topsis_note
    # two pipelines that tie on quality but differ slightly on latency flip when the latency weight drops
    close = {"a": {"skill": 0.8, "latency_p50_ms": 1.0, "model_bytes": 1e6},
             "b": {"skill": 0.8, "latency_p50_ms": 1.05, "model_bytes": 0.95e6}}
    weights = {"quality": 1, "latency_p50_ms": 1, "model_mb": 1}
    d2 = decide.decide(aggregate.aggregate(fake_runs(close)), profile(weights))
    assert d2.winner == "a"
    assert d2.sensitivity == ["online p50 latency weight -20% -> b wins", "model size weight +20% -> b wins"]


def test_online_learning_profile_degrades_gracefully_without_stream_data():
    runs = fake_runs({"batch_only": {}, "learner": {"online_learning": 1.0}})
    d = decide.decide(aggregate.aggregate(runs), load_profile("online-learning"))
    assert d.winner == "learner"
    assert d.table.loc["batch_only", "reason"].startswith("excluded: no online learning")
    assert any("no stream data yet" in n for n in d.notes)
    assert "drift_quality" not in d.weights and "update_ms" not in d.weights


def test_every_pipeline_failing_is_a_reason_not_a_crash():
    runs = fake_runs({"ok": {}, "broken": {}}, failed=tuple((t, "broken", s) for t in ("auc_task", "rmse_task")
                                                            for s in range(3)))
    d = decide.decide(aggregate.aggregate(runs), load_profile("balanced"))
    assert d.winner == "ok"
    assert d.table.loc["broken", "reason"].startswith("excluded: no finished run (exception on auc_task x3")


def test_automl_against_the_best_hand_coded_pipeline_per_task():
    runs = fake_runs({"flaml_automl": {"skill": 0.9, "technology": "flaml", "lloc": 25.0, "fit_wall_s": 10.0},
                      "hgb": {"skill": 0.7, "lloc": 50.0}, "linear": {"skill": 0.5}}, seeds=3)
    v = verdict.automl_vs_manual(aggregate.aggregate(runs))
    assert v["available"] and [r["manual"] for r in v["tasks"]] == ["hgb", "hgb"]
    row = v["tasks"][0]
    assert row["quality_diff"] > 0 and row["verdict"] == "AutoML better"
    assert row["lloc_ratio"] == pytest.approx(0.5) and row["fit_time_ratio"] == pytest.approx(10.0)
    assert "2 AutoML better" in v["overall"]["summary"]
    assert not verdict.automl_vs_manual(aggregate.aggregate(fake_runs({"hgb": {}})))["available"]


# ---------------------------------------------------------------- statistics against their oracles

def test_bootstrap_tau_friedman_and_cd_match_scipy_and_autorank():
    import scipy.stats

    x = np.array([0.61, 0.72, 0.68, 0.75, 0.64, 0.70])
    ref = scipy.stats.bootstrap((x,), np.mean, method="percentile", n_resamples=4000, rng=0).confidence_interval
    low, high = stats.bootstrap_ci(x, n_resamples=4000)
    assert low == pytest.approx(ref.low, abs=0.01) and high == pytest.approx(ref.high, abs=0.01)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([0.5]))  # no interval from one value
    a, b = [1, 2, 3, 4, 5], [2, 1, 3, 5, 4]
    assert stats.kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic)
    for df in (1, 2, 5, 8):
        assert stats.chi2_sf(7.3, df) == pytest.approx(scipy.stats.chi2.sf(7.3, df), rel=1e-10)

    rng = np.random.default_rng(3)
    table = pd.DataFrame(rng.random((8, 4)) + np.array([0.3, 0.1, 0.0, 0.2]), columns=list("abcd"),
                         index=[f"t{i}" for i in range(8)])
    table.iloc[0, 1] = table.iloc[0, 2]  # a tie
    stat, p = stats.friedman(table.to_numpy())
    ref = scipy.stats.friedmanchisquare(*table.to_numpy().T)
    assert stat == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    result = stats.rank_test(table)
    from autorank import autorank

    oracle = autorank(table, alpha=0.05, force_mode="nonparametric", verbose=False)
    assert result.test == "friedman" and result.p_value == pytest.approx(oracle.pvalue)
    assert result.cd == pytest.approx(oracle.cd, rel=1e-3)
    assert result.mean_ranks.to_dict() == pytest.approx(oracle.rankdf["meanrank"].to_dict())


def test_rank_test_needs_five_complete_tasks():
    table = pd.DataFrame({"a": [0.9, 0.8, 0.7, 0.9, np.nan], "b": [0.5, 0.6, 0.4, 0.5, 0.6],
                          "c": [0.7, 0.7, 0.8, 0.6, 0.7]})
    result = stats.rank_test(table)
    assert result.test is None and result.n_tasks == 4 and "need >= 5 tasks" in result.note
    assert result.dropped_tasks == ["4"]


# ---------------------------------------------------------------- profiles

def test_builtin_profiles_load():
    assert set(builtin_names()) >= {"edge", "cloud-batch", "cloud-realtime", "online-learning", "low-effort",
                                    "balanced"}
    for name in builtin_names():
        p = load_profile(name)
        assert p.weights and p.name == name
    assert load_profile("cloud-realtime").network_rtt_ms > 0


@pytest.mark.parametrize(("text", "field", "fix"), [
    ("weights: {qualty: 1}", "weights.qualty", "unknown criterion 'qualty'; expected one of"),
    ("weights: {quality: -1}", "weights.quality", "expected a non-negative number"),
    ("weights: {quality: 0}", "weights", "give at least one criterion a positive weight"),
    ("weights: {quality: 1}\nconstraints: {model_mb: {below: 5}}", "constraints.model_mb", "{max: number}"),
    ("weights: {quality: 1}\nconstraints: {model_mb: {max: five}}", "constraints.model_mb.max", "expected a number"),
    ("weights: {quality: 1}\nbounds: {model_mb: [0, 5]}", "bounds.model_mb", "log scale"),
    ("weights: {quality: 1}\nbounds: {model_mb: [0.1, 5]}", "bounds.model_mb", "best lower than worst"),
    ("weights: {quality: 1}\nlimits: {}", "limits", "unknown key"),
    ("weights: {quality: 1}\nnetwork_rtt_ms: -3", "network_rtt_ms", "non-negative"),
    ("criteria: {model_mb: {limit: 5, target: 10}}\nweights: {quality: 1}", "criteria.model_mb",
     "the target must be better (lower) than the limit"),
    ("criteria: {quality: {limit: 0.9, target: 0.5, weight: 1}}", "criteria.quality",
     "the target must be better (higher) than the limit"),
    ("criteria: {model_mb: {max: 5}}\nweights: {quality: 1}", "criteria.model_mb", "{limit: number, target: number"),
    ("criteria: {model_mb: {target: 0, weight: 1}}", "criteria.model_mb", "log scale"),
    ("criteria: {quality: {weight: -1}}", "criteria.quality.weight", "non-negative"),
    ("criteria: {quality: {weight: 1}}\nweights: {quality: 2}", "criteria.quality.weight", "keep one"),
    ("criteria: {train_usd: {target: 50, weight: 1}}", "criteria.train_usd", "not better than the worst end"),
    ("criteria: {model_mb: {limit: 5}}", "weights", "missing or empty"),
    ("weights: [quality", None, "malformed YAML at line"),
    ("weights: &w {quality: 1}\nbounds: *w", "weights", "anchor"),
    ("weights: {quality: 1}\nweights: {quality: 2}", "weights", "duplicate key"),
])
def test_a_bad_profile_is_one_error_naming_file_field_and_fix(tmp_path, text, field, fix):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(BenchError) as err:
        parse_profile(path)
    assert err.value.file == str(path) and err.value.field == field and fix in err.value.message
    assert "\n" not in str(err.value)


def test_targets_and_limits_set_the_fixed_scale_and_old_profile_files_still_load(tmp_path):
    new = tmp_path / "new.yaml"
    new.write_text("criteria:\n  quality: {weight: 3}\n  latency_p99_ms: {limit: 10, target: 1, weight: 1}\n"
                   "  model_mb: {limit: 5}\n  failure_rate: {limit: 0.25}\n")
    p = parse_profile(new)
    assert p.weights == {"quality": 3.0, "latency_p99_ms": 1.0} and p.targets == {"latency_p99_ms": 1.0}
    assert {(c.criterion, c.op, c.limit) for c in p.constraints} == {
        ("latency_p99_ms", "max", 10.0), ("model_mb", "max", 5.0), ("failure_rate", "max", 0.25)}
    assert p.bound("latency_p99_ms") == (10.0, 1.0) and p.bound("model_mb") == (5.0, 0.001)
    u = decide.utility(pd.Series([0.2, 1.0, 3.1623, 10.0, 40.0]), criteria.CRITERIA["latency_p99_ms"],
                       p.bound("latency_p99_ms"))
    assert list(u.round(3)) == [1.0, 1.0, 0.5, 0.0, 0.0], "1 at or under the target, log-linear to 0 at the limit"
    old = tmp_path / "old.yaml"
    old.write_text("weights: {quality: 3, latency_p99_ms: 1}\nconstraints: {latency_p99_ms: {max: 10}}\n"
                   "bounds: {latency_p99_ms: [10, 1]}\n")
    q = parse_profile(old)
    assert q.weights == p.weights and q.bound("latency_p99_ms") == p.bound("latency_p99_ms")
    assert [(c.criterion, c.op, c.limit) for c in q.constraints] == [("latency_p99_ms", "max", 10.0)]


def test_cli_reports_a_bad_profile_on_one_line(tmp_path, capsys):
    from bench.cli import main

    path = tmp_path / "mine.yaml"
    path.write_text("weights: {latency_p5O_ms: 1}\n")
    assert main(["matrix", "--profile", str(path), "--tracking-uri", f"sqlite:///{tmp_path}/none.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: field 'weights.latency_p5O_ms': unknown criterion") and "\n" not in err
    assert main(["matrix", "--profile", "nope"]) == 2
    assert "no built-in profile or file named 'nope'" in capsys.readouterr().err


def test_only_the_newest_measurement_of_a_job_slot_counts():
    from bench.analysis.aggregate import prepare

    old = {"status": "FINISHED", "task": "t", "pipeline": "p", "seed": "0", "job_key": "old",
           "start_time": pd.Timestamp("2026-01-01"), "lloc": 10.0}
    new = old | {"job_key": "new", "start_time": pd.Timestamp("2026-02-01"), "lloc": 30.0}
    other_seed = old | {"seed": "1", "job_key": "old-s1"}
    kept, _ = prepare(pd.DataFrame([old, new, other_seed]))
    assert sorted(kept["job_key"]) == ["new", "old-s1"]


def test_effort_counts_the_batch_path_except_for_online_learning():
    runs = fake_runs({"learner": {"skill": 0.8, "lloc": 200.0, "lloc_batch": 50.0},
                      "batch_only": {"skill": 0.8, "lloc": 100.0, "lloc_batch": 100.0},
                      "older": {"skill": 0.8, "lloc": 80.0}})  # logged before lloc_batch existed
    table = aggregate.aggregate(runs).table
    assert table.loc["learner", "lloc"] == pytest.approx(50.0)
    assert table.loc["learner", "lloc_total"] == pytest.approx(200.0)
    assert table.loc["batch_only", "lloc"] == pytest.approx(100.0)
    assert table.loc["older", "lloc"] == pytest.approx(80.0), "the whole file where the batch figure is missing"
    assert "lloc_total" in load_profile("online-learning").weights
    assert all("lloc_total" not in load_profile(n).weights for n in builtin_names() if n != "online-learning")


PIPELINE_FIGURES = st.fixed_dictionaries({
    "skill": st.floats(0.1, 0.85), "latency_p99_es_ms": st.floats(0.05, 200.0), "model_bytes": st.floats(1e3, 5e7),
    "serving_rss_mb": st.floats(20.0, 3000.0), "batch_rows_per_s": st.floats(10.0, 1e7),
    "fit_wall_s": st.floats(0.01, 5000.0), "lloc": st.floats(10.0, 500.0)})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(existing=st.lists(PIPELINE_FIGURES, min_size=2, max_size=4), newcomer=PIPELINE_FIGURES,
       profile_name=st.sampled_from(["edge", "cloud-batch", "cloud-realtime", "balanced", "low-effort"]))
def test_adding_any_pipeline_below_the_best_quality_never_reorders_the_others(existing, newcomer, profile_name):
    # targets and limits are fixed by the profile, so the newcomer can only slot in; it must not beat the best
    # quality seen (quality's 1 is "the best seen", the one figure that depends on who is compared)
    spec = {f"p{i}": figures for i, figures in enumerate(existing)}
    top = max(f["skill"] for f in existing)
    prof = load_profile(profile_name)
    before = decide.decide(aggregate.aggregate(fake_runs(spec, seeds=2)), prof)
    after = decide.decide(aggregate.aggregate(fake_runs(spec | {"new": newcomer | {"skill": min(newcomer["skill"],
                                                                                               top - 0.05)}},
                                                        seeds=2)), prof)
    ranked = [p for p in after.table.index[after.table["rank"].notna()] if p != "new"]
    assert ranked == list(before.table.index[before.table["rank"].notna()])
    assert after.table.loc[ranked, "score"].to_numpy() == pytest.approx(before.table.loc[ranked, "score"].to_numpy())
