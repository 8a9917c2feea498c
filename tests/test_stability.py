"""The stability benchmark's comparison logic on synthetic stores (benchmarks/stability.py): no suite is run."""

from __future__ import annotations

import json
import math

import pytest

from bench.analysis.profiles import builtin_names
from benchmarks import stability
from tests.conftest import fake_runs

CLEAR = {"strong": {"skill": 0.9}, "middle": {"skill": 0.6}, "weak": {"skill": 0.3}}


def test_identical_stores_agree_in_every_profile_with_margin_and_spread():
    runs = fake_runs(CLEAR, seeds=3)
    rows = stability.compare_stores(runs, runs.copy(), builtin_names())
    assert [r.profile for r in rows] == builtin_names()
    balanced = next(r for r in rows if r.profile == "balanced")
    assert balanced.same_winner and balanced.same_top3 and balanced.winner_a == "strong"
    assert balanced.margin > 0 and math.isfinite(balanced.spread) and balanced.clear
    assert balanced.verdict == "same winner"
    learning = next(r for r in rows if r.profile == "online-learning")
    assert learning.winner_a is None and learning.same_winner, "no pipeline learns online: nobody wins in both"


def test_a_clear_winner_that_flips_is_flagged_unstable():
    a = stability.Summary("strong", ["strong", "middle", "weak"], margin=0.2, spread=0.01)
    b = stability.Summary("middle", ["middle", "strong", "weak"], margin=0.15, spread=0.02)
    row = stability.compare("balanced", a, b)
    assert not row.same_winner and row.clear and row.verdict.startswith("UNSTABLE")
    assert row.margin == 0.15 and row.spread == 0.02


def test_a_close_call_that_flips_is_not_an_instability():
    a = stability.Summary("x", ["x", "y"], margin=0.004, spread=0.01)
    b = stability.Summary("y", ["y", "x"], margin=0.02, spread=0.01)
    row = stability.compare("edge", a, b)
    assert not row.same_winner and not row.clear and row.verdict.startswith("different winners, a close call")


def test_spread_over_seeds_comes_from_each_seed_decided_alone():
    # two pipelines a few points apart on every seed: the margin is the full-data score gap, the spread the
    # sd of the per-seed gaps (the fake runs give every seed the same +0.01 step, so the gaps barely move)
    summary = stability.summarise(fake_runs({"a": {"skill": 0.8}, "b": {"skill": 0.7}}, seeds=3), "balanced")
    assert summary.winner == "a" and summary.top3 == ["a", "b"]
    assert summary.margin > 0.01 and summary.spread < summary.margin
    one_seed = stability.summarise(fake_runs({"a": {"skill": 0.8}, "b": {"skill": 0.7}}, seeds=1), "balanced")
    assert math.isnan(one_seed.spread)
    lines = stability.table_lines([stability.compare("balanced", summary, summary)])
    assert lines[1].split()[:3] == ["balanced", "a", "a"]


def test_one_seed_has_no_spread_to_judge_by():
    a = stability.Summary("x", ["x"], margin=0.1, spread=math.nan)
    row = stability.compare("edge", a, stability.Summary("y", ["y"], margin=0.1, spread=math.nan))
    assert not row.clear and row.verdict == "different winners; one seed, so no spread to judge the margin by"


@pytest.mark.slow
def test_the_command_compares_two_existing_stores(tmp_path):
    from benchmarks.matrix_speed import build_store

    uris = [f"sqlite:///{tmp_path}/{n}.db" for n in ("a", "b")]
    for uri in uris:
        build_store(uri, 40, seed=0)  # the same runs twice: every profile must agree
    out = tmp_path / "stability.jsonl"
    assert stability.main(["--stores", *uris, "--suite", "", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["goal_met"] and [p["profile"] for p in record["profiles"]] == builtin_names()
    assert all(p["same_winner"] and p["same_top3"] for p in record["profiles"])
