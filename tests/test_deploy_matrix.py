"""The edge and cloud-realtime decisions on the deployed forms bench deploy measured, and their fallbacks.

Synthetic runs (``tests.conftest.fake_runs``) with and without the ``edge_*``/``service_*`` figures: each test
names the answer and the wording that says which form was measured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import aggregate, decide
from bench.analysis.profiles import load_profile
from tests.conftest import fake_runs

TASKS = ("auc_a", "rmse_a")
SERVING = {"latency_p50_ms": 0.3, "latency_p99_ms": 0.6, "latency_p99_es_ms": 0.7, "model_bytes": 2e5,
           "serving_rss_mb": 60.0, "cold_start_s": 0.8, "fit_wall_s": 1.0, "batch_rows_per_s": 1e6, "lloc": 40.0,
           "complexity_total": 8.0, "peak_rss_mb": 50.0}
EDGE_OK = {"edge_exported": 1.0, "edge_latency_p99_es_ms": 0.02, "edge_latency_p99_ms": 0.02,
           "edge_model_bytes": 1e5, "edge_serving_rss_mb": 30.0, "edge_cold_start_s": 0.1}


def runs(spec: dict[str, dict], tags: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    frame = fake_runs({p: SERVING | s for p, s in spec.items()}, tasks=TASKS, seeds=2)
    for pipeline, values in (tags or {}).items():
        for key, value in values.items():
            frame.loc[frame["pipeline"] == pipeline, key] = value
    return frame


def decide_on(profile: str, frame: pd.DataFrame, **changes):
    from dataclasses import replace

    return decide.decide(aggregate.aggregate(frame), replace(load_profile(profile), **changes))


def test_edge_without_bench_deploy_is_the_in_process_decision_and_says_so():
    frame = runs({"slow": {"skill": 0.9, "latency_p99_es_ms": 25.0}, "fast": {"skill": 0.6}})
    d = decide_on("edge", frame)
    assert d.winner == "fast"
    assert d.table.loc["slow", "reason"] == "excluded: online p99 latency 25 ms > 10 ms"
    assert any("bench deploy has not measured the edge runtime form" in n for n in d.notes)
    assert "edge_latency_p99_ms" not in d.weights and "latency_p99_ms" in d.weights


def test_edge_ranks_on_the_runtime_figures_and_names_the_runtime():
    # in process the better model is too slow for the device; exported to ONNX it answers in 0.02 ms
    frame = runs({"slow_in_python": {"skill": 0.9, "latency_p99_es_ms": 25.0, **EDGE_OK},
                  "fast": {"skill": 0.6, **EDGE_OK}},
                 tags={"slow_in_python": {"edge_format": "onnx"}, "fast": {"edge_format": "onnx"}})
    d = decide_on("edge", frame)
    assert d.winner == "slow_in_python"
    assert "edge_latency_p99_ms" in d.weights
    assert d.table.loc["slow_in_python", "edge_latency_p99_ms"] == np.float64(0.02)
    assert "edge: onnx runtime measured on 4 of 4 runs" in d.table.loc["slow_in_python", "reason"]


def test_edge_requires_an_export_and_gives_the_converters_reason():
    failed = {"edge_exported": 0.0}
    frame = runs({"unexportable": {"skill": 0.9, **failed}, "exportable": {"skill": 0.6, **EDGE_OK}},
                 tags={"unexportable": {"edge_format": "none", "edge_error": "RuntimeError: no converter for X"},
                       "exportable": {"edge_format": "onnx"}})
    d = decide_on("edge", frame)
    assert d.winner == "exportable"
    reason = d.table.loc["unexportable", "reason"]
    assert reason.startswith("excluded: edge export 0 % of runs < 100 % of runs")
    assert "edge: no edge export on 4 of 4 runs (RuntimeError: no converter for X)" in reason


def test_edge_falls_back_per_pipeline_where_bench_deploy_has_not_run():
    frame = runs({"measured": {"skill": 0.6, **EDGE_OK}, "not_measured": {"skill": 0.7}},
                 tags={"measured": {"edge_format": "onnx"}})
    d = decide_on("edge", frame)
    assert "edge: bench deploy has not run, in-process figures" in d.table.loc["not_measured", "reason"]
    assert d.table.loc["not_measured", "edge_latency_p99_ms"] == np.float64(0.7)  # the in-process estimate


def service(p99: dict[float, float]) -> dict[str, float]:
    out = {"service_ok": 1.0}
    for rate, value in p99.items():
        out[f"service_p99_ms_r{rate:g}"] = value
    return out


def test_cloud_realtime_ranks_on_the_service_p99_at_the_profile_rate_plus_the_round_trip():
    frame = runs({"keras_like": {"skill": 0.9, **service({5: 10.0, 20: 95.0, 50: 300.0})},
                  "sklearn_like": {"skill": 0.7, **service({5: 8.0, 20: 12.0, 50: 30.0})}},
                 tags={p: {"service_rates": "5,20,50"} for p in ("keras_like", "sklearn_like")})
    d = decide_on("cloud-realtime", frame, request_rate_rps=20.0)
    assert d.winner == "sklearn_like"
    assert d.table.loc["keras_like", "reason"].startswith("excluded: service p99 latency 115 ms > 100 ms")
    assert "service: MLflow model server p99 at 20 rps (profile rate 20) + 20 ms round trip, measured on 4 of 4" \
        in d.table.loc["sklearn_like", "reason"]
    # at 5 rps the same server meets the target (10 + 20 ms): quality decides, at the profile's rate
    assert decide_on("cloud-realtime", frame, request_rate_rps=5.0).winner == "keras_like"


def test_cloud_realtime_without_bench_deploy_keeps_the_fixed_round_trip():
    frame = runs({"borderline": {"skill": 0.9, "latency_p99_es_ms": 85.0}, "snappy": {"skill": 0.7}})
    d = decide_on("cloud-realtime", frame)
    assert d.winner == "snappy"
    assert d.table.loc["borderline", "reason"] == "excluded: online p99 latency 105 ms > 100 ms"
    assert any("bench deploy has not measured the service form" in n for n in d.notes)


def test_a_service_that_failed_is_excluded_with_its_error():
    frame = runs({"broken": {"skill": 0.9, "service_ok": 0.0}, "served": {"skill": 0.6, **service({20: 12.0})}},
                 tags={"broken": {"service_error": "the model server exited with code 1"}})
    d = decide_on("cloud-realtime", frame)
    assert d.winner == "served"
    reason = d.table.loc["broken", "reason"]
    assert reason.startswith("excluded: service p99 latency not measured")
    assert "failed on 4 (the model server exited with code 1)" in reason


def test_a_profile_request_rate_must_be_a_positive_number(tmp_path):
    import pytest

    from bench.analysis.profiles import parse_profile
    from bench.errors import BenchError

    path = tmp_path / "p.yaml"
    path.write_text("name: p\ncriteria:\n  quality: {weight: 1}\n  service_p99_ms: {limit: 100}\nrequest_rate_rps: 0\n")
    with pytest.raises(BenchError, match="requests per second") as err:
        parse_profile(path)
    assert err.value.field == "request_rate_rps"
    path.write_text(path.read_text().replace("request_rate_rps: 0", "request_rate_rps: 50"))
    assert parse_profile(path).request_rate_rps == 50.0


def test_the_closing_note_tables_read_what_bench_deploy_logged():
    from benchmarks import deploy_table

    frame = runs({"exported": {"skill": 0.7, **EDGE_OK, "edge_agreement": 0.998, "model_latency_p50_ms": 0.05,
                               "model_latency_p99_ms": 0.09},
                  "refused": {"skill": 0.8, "edge_exported": 0.0, **service({5: 8.0, 20: 12.0})}},
                 tags={"exported": {"edge_format": "onnx", "edge_graph": "network only on encoded rows",
                                    "edge_compare_with": "model_latency"},
                       "refused": {"edge_format": "none", "edge_error": "RuntimeError: no converter for X",
                                   "service_rates": "5,20", "service_objective_ms": "50",
                                   "service_payload": "raw rows (4 columns)"}})
    edge_rows = deploy_table.edge_table(frame).set_index("pipeline")
    assert edge_rows.loc["exported", "exported"] == "4/4" and edge_rows.loc["refused", "exported"] == "0/4"
    assert edge_rows.loc["exported", "in-process figure"] == "model_latency"
    assert edge_rows.loc["exported", "in-process p50/p99 ms"] == "0.05 / 0.09"
    assert edge_rows.loc["exported", "edge p50/p99 ms"] == "- / 0.02"
    assert edge_rows.loc["exported", "fidelity (worst agreement, max diff)"] == "0.998, -"
    assert edge_rows.loc["refused", "no edge export because"] == "RuntimeError: no converter for X"
    served = deploy_table.service_table(frame).set_index("pipeline")
    assert list(served.index) == ["refused", "refused"]  # one row per task
    assert served.iloc[0]["20 rps p50/p99 ms"] == "- / 12" and served.iloc[0]["payload"] == "raw rows (4 columns)"
