"""Known-answer decisions: synthetic runs whose right answer is clear from first principles, one per scenario,
each asserting the winner and the wording of the reason, over every built-in profile.

The runs are the frames ``store.read_runs`` gives (``tests.conftest.fake_runs``): nothing is fitted. Each
pipeline's spec sets its skill (share of the way from the constant predictor to a perfect score) and the
metrics that matter to the scenario; the rest are the same for everyone, so only the named difference can
decide.
"""

from __future__ import annotations

import pandas as pd
import pytest

from bench.analysis import aggregate, build, cost, decide
from bench.analysis.profiles import builtin_names, load_profile
from tests.conftest import fake_runs

TASKS = ("auc_a", "auc_b", "rmse_a", "rmse_b")
#: What every pipeline has unless a scenario says otherwise: well inside every built-in target and limit.
SERVING = {"latency_p50_ms": 0.3, "latency_p99_ms": 0.6, "latency_p99_es_ms": 0.7, "model_bytes": 2e5,
           "serving_rss_mb": 60.0, "cold_start_s": 0.8, "fit_wall_s": 1.0, "batch_rows_per_s": 1e6, "lloc": 40.0,
           "complexity_total": 8.0, "peak_rss_mb": 50.0}
COVERED: set[str] = set()


def runs(spec: dict[str, dict], failed: tuple = (), seeds: int = 2) -> pd.DataFrame:
    return fake_runs({p: SERVING | s for p, s in spec.items()}, tasks=TASKS, seeds=seeds, failed=failed)


def decide_for(profile: str, spec: dict[str, dict], failed: tuple = (), price: cost.Prices | None = None):
    COVERED.add(profile)
    return decide.decide(aggregate.aggregate(runs(spec, failed), price), load_profile(profile))


# ---------------------------------------------------------------- edge

def test_edge_only_one_pipeline_meets_the_p99_limit():
    # fast's quality is 0.6/0.95 of the best seen (the excluded pipeline still sets it), everything else at target:
    # (4 x 0.63 + 2 + 1 + 1 + 1) / 9 = 0.837
    d = decide_for("edge", {"accurate_but_slow": {"skill": 0.95, "latency_p99_es_ms": 25.0},
                            "fast": {"skill": 0.6}})
    assert d.winner == "fast"
    assert d.winner_reason == "fast is the only pipeline meeting every constraint (score 0.837); 1 excluded by " \
                              "constraints"
    assert d.table.loc["accurate_but_slow", "reason"] == "excluded: online p99 latency 25 ms > 10 ms"


def test_edge_is_not_decided_by_training_memory():
    # the better model needs 100x the training memory: the device never trains, so it must not matter
    d = decide_for("edge", {"big_trainer": {"skill": 0.9, "peak_rss_mb": 5000.0},
                            "lean_trainer": {"skill": 0.8, "peak_rss_mb": 50.0}})
    assert d.winner == "big_trainer"
    assert d.winner_reason.startswith("big_trainer wins with score 1.000 vs 0.951 for lean_trainer: decided by "
                                      "quality 1 vs 0.889 (+0.049)")
    assert "training memory" not in d.winner_reason and "training memory" not in d.table.loc["lean_trainer", "reason"]


def test_edge_serving_memory_past_the_device_is_excluded_with_the_numbers():
    d = decide_for("edge", {"tensorflow_like": {"skill": 0.9, "serving_rss_mb": 900.0},
                            "small": {"skill": 0.7}})
    assert d.winner == "small"
    assert d.table.loc["tensorflow_like", "reason"] == "excluded: serving memory 900 MB > 512 MB"


def test_edge_within_every_target_quality_decides():
    # 0.2 ms vs 0.9 ms p99, 0.1 MB vs 0.9 MB: both under the targets, so nobody notices; quality decides
    d = decide_for("edge", {"tiny_fast": {"skill": 0.7, "latency_p99_es_ms": 0.2, "model_bytes": 1e5},
                            "better": {"skill": 0.8, "latency_p99_es_ms": 0.9, "model_bytes": 9e5}})
    assert d.winner == "better"
    assert d.winner_reason.startswith("better wins with score 1.000 vs 0.945 for tiny_fast: decided by quality 1 vs "
                                      "0.876 (+0.055)")
    assert "although" not in d.winner_reason, "no criterion inside its target may count against the winner"


# ---------------------------------------------------------------- cloud-batch

def test_cloud_batch_equal_quality_the_100x_cheaper_pipeline_wins():
    # 1,000 vs 10 rows/s: $0.0113 vs $1.13 per million rows, both above the $0.01 target; on the log scale from
    # $0.01 (1) to $100 (0) that is 0.987 vs 0.487, weight 2 of 8: (4 + 2 x 0.987 + 1 + 1) / 8 = 0.997
    d = decide_for("cloud-batch", {"cheap": {"skill": 0.8, "batch_rows_per_s": 1e3},
                                   "dear": {"skill": 0.8, "batch_rows_per_s": 10.0}})
    assert d.winner == "cheap"
    assert d.winner_reason.startswith("cheap wins with score 0.997 vs 0.872 for dear: decided by batch cost per "
                                      "million rows $0.0113 vs $1.13")
    assert d.table.loc["cheap", "usd_per_million_batch"] * 100 == pytest.approx(
        d.table.loc["dear", "usd_per_million_batch"], rel=1e-3)


def test_cloud_batch_savings_below_the_target_do_not_buy_quality():
    # 10x cheaper, but both cost under a cent per million rows: the better model wins
    d = decide_for("cloud-batch", {"cheaper": {"skill": 0.78, "batch_rows_per_s": 1e6},
                                   "better": {"skill": 0.8, "batch_rows_per_s": 1e5}})
    assert d.winner == "better"
    assert d.winner_reason.startswith("better wins with score 1.000 vs 0.988 for cheaper: decided by quality 1 "
                                      "vs 0.975")


def test_cloud_batch_a_fit_past_the_nightly_window_is_excluded():
    d = decide_for("cloud-batch", {"slow_fit": {"skill": 0.9, "fit_wall_s": 5000.0},
                                   "nightly": {"skill": 0.7, "fit_wall_s": 300.0}})
    assert d.winner == "nightly"
    assert d.table.loc["slow_fit", "reason"] == "excluded: training wall time 5000 s > 3600 s"


def test_cloud_batch_a_pipeline_failing_on_half_the_jobs_is_excluded():
    failed = tuple((t, "flaky", s) for t in ("auc_b", "rmse_b") for s in range(2))
    d = decide_for("cloud-batch", {"flaky": {"skill": 0.95}, "steady": {"skill": 0.7}}, failed)
    assert d.winner == "steady"
    assert d.table.loc["flaky", "reason"] == ("excluded: failure rate 50 % > 25 %; 4 of 8 jobs failed or missing, "
                                              "scored as the constant predictor")


# ---------------------------------------------------------------- failures count (balanced)

def test_failing_on_one_of_four_tasks_loses_a_quarter_of_the_quality():
    failed = tuple(("rmse_b", "fails_once", s) for s in range(2))
    d = decide_for("balanced", {"fails_once": {"skill": 0.8}, "tries_all": {"skill": 0.8}}, failed)
    table = d.table
    assert table.loc["tries_all", "quality"] == pytest.approx(1.0)
    assert table.loc["fails_once", "quality"] == pytest.approx(0.75), "three tasks at 1, one at the constant (0)"
    assert table.loc["fails_once", "imputed"] == 2 and table.loc["fails_once", "failure_rate"] == pytest.approx(0.25)
    assert d.winner == "tries_all"
    assert d.winner_reason.startswith("tries_all wins with score") and "decided by quality 1 vs 0.75" in d.winner_reason
    assert table.loc["fails_once", "reason"].endswith("; 2 of 8 jobs failed or missing, scored as the constant "
                                                      "predictor")
    assert table.loc["fails_once", "mean_rank"] > table.loc["tries_all", "mean_rank"]


def test_a_job_never_run_counts_like_a_failure():
    all_runs = runs({"complete": {"skill": 0.8}, "partial": {"skill": 0.8}})
    gone = (all_runs["pipeline"] == "partial") & (all_runs["task"] == "auc_a")
    table = aggregate.aggregate(all_runs[~gone]).table
    assert table.loc["partial", "quality"] == pytest.approx(0.75)
    assert table.loc["partial", "imputed"] == 2 and table.loc["partial", "planned"] == 8


def test_balanced_ignores_what_it_does_not_weigh():
    # 50x the cyclomatic complexity: balanced weighs LLOC, not complexity, so the better model wins
    d = decide_for("balanced", {"tangled": {"skill": 0.85, "complexity_total": 400.0},
                                "tidy": {"skill": 0.8, "complexity_total": 8.0}})
    assert d.winner == "tangled"
    assert "complexity" not in d.winner_reason and d.winner_reason.startswith(
        "tangled wins with score 1.000 vs 0.983 for tidy: decided by quality 1 vs 0.942")


# ---------------------------------------------------------------- cloud-realtime

def test_cloud_realtime_the_network_round_trip_pushes_a_p99_over_the_objective():
    d = decide_for("cloud-realtime", {"borderline": {"skill": 0.9, "latency_p99_es_ms": 85.0},
                                      "snappy": {"skill": 0.7}})
    assert d.winner == "snappy"
    assert d.table.loc["borderline", "reason"] == "excluded: online p99 latency 105 ms > 100 ms"
    assert "20 ms network round trip" in " ".join(d.notes)


def test_cloud_realtime_a_tail_from_too_few_calls_is_not_a_claim():
    d = decide_for("cloud-realtime", {"few_calls": {"skill": 0.9, "latency_n": 300.0},
                                      "measured": {"skill": 0.7}})
    assert d.winner == "measured"
    assert d.table.loc["few_calls", "reason"] == ("excluded: online p99 latency: not enough calls (300 < 662) for "
                                                  "MLPerf's early-stopping estimate; rerun with --latency-n 1000")


def test_cloud_realtime_a_cold_start_autoscaling_cannot_wait_for():
    d = decide_for("cloud-realtime", {"heavy": {"skill": 0.9, "cold_start_s": 90.0}, "light": {"skill": 0.7}})
    assert d.winner == "light"
    assert d.table.loc["heavy", "reason"] == "excluded: cold start 90 s > 60 s"


# ---------------------------------------------------------------- low-effort and online-learning

def test_low_effort_fewest_lines_among_models_clearly_better_than_a_constant():
    d = decide_for("low-effort", {"one_liner": {"skill": 0.3, "lloc": 10.0},
                                  "short": {"skill": 0.7, "lloc": 40.0},
                                  "long": {"skill": 0.8, "lloc": 400.0, "complexity_total": 60.0}})
    assert d.winner == "short"
    assert d.table.loc["one_liner", "reason"].startswith("excluded: quality 0.")
    assert "< 0.5" in d.table.loc["one_liner", "reason"]
    assert d.winner_reason.startswith("short wins with score") and "decided by LLOC (batch path) 40 lines vs 400 " \
                                                                     "lines" in d.winner_reason


def test_online_learning_only_a_pipeline_that_learns_online_qualifies():
    d = decide_for("online-learning", {"refit_only": {"skill": 0.95}, "learner": {"skill": 0.6,
                                                                                   "online_learning": 1.0}})
    assert d.winner == "learner"
    assert d.table.loc["refit_only", "reason"] == "excluded: no online learning (new data needs a full refit)"


# ---------------------------------------------------------------- money at the user's prices

def test_prices_scale_the_money_criteria_and_are_validated():
    spec = {"a": {"skill": 0.8, "fit_wall_s": 3600.0, "threads": 2.0, "baseline_rss_mb": 924.0,
                  "peak_rss_mb": 100.0, "batch_rows_per_s": 1e3, "latency_p50_ms": 1.0, "serving_rss_mb": 1024.0}}
    table = aggregate.aggregate(runs(spec)).table
    # an hour on 2 vCPUs holding 1 GB: 2 x 0.04048 + 0.004445
    assert table.loc["a", "train_usd"] == pytest.approx(2 * 0.04048 + 0.004445)
    # a million rows at 1,000 rows/s: 1,000 s on 2 vCPUs holding 1 GB
    assert table.loc["a", "usd_per_million_batch"] == pytest.approx(1000 / 3600 * (2 * 0.04048 + 0.004445))
    # a million calls at 1 ms on one core holding 1 GB
    assert table.loc["a", "usd_per_million_online"] == pytest.approx(1000 / 3600 * (0.04048 + 0.004445))
    doubled = aggregate.aggregate(runs(spec), cost.prices(2 * 0.04048, 2 * 0.004445)).table
    assert doubled.loc["a", "train_usd"] == pytest.approx(2 * table.loc["a", "train_usd"])
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(Exception, match="must be a finite number of dollars > 0"):
            cost.prices(cpu_hour=bad)


def test_cli_rejects_a_bad_price_on_one_line(capsys, tmp_path):
    from bench.cli import main

    assert main(["matrix", "--price-cpu-hour", "-1", "--tracking-uri", f"sqlite:///{tmp_path}/none.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: field '--price-cpu-hour': must be a finite number of dollars > 0") and "\n" not in err


def test_build_passes_the_prices_through():
    spec = {"a": {"skill": 0.8}, "b": {"skill": 0.7}}
    m = build(runs(spec), load_profile("balanced"), cost.prices(1.0, 1.0))
    assert "money at $1 per vCPU-hour, $1 per GB-hour (set by the user)" in m.decision.notes
    import bench

    notebook = bench.decide(runs(spec), "balanced", price_cpu_hour=1.0, price_gb_hour=1.0)
    assert notebook.matrix.decision.table["train_usd"].equals(m.decision.table["train_usd"])


def test_every_builtin_profile_has_a_known_answer_scenario():
    assert set(builtin_names()) <= COVERED, f"no scenario for {set(builtin_names()) - COVERED}"
