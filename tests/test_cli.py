"""The command line end to end, in real processes, against a temp SQLite store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
import pandas as pd
import psutil
import pytest

from tests.conftest import BENCH, REPO, bench, write_task

HEAVY = ("torch", "tensorflow", "keras", "sklearn", "flaml", "mlflow", "lightgbm")


def test_help_and_list_import_no_framework(tmp_path):
    probe = ("import sys\nfrom bench.cli import main\n"
             "for argv in (['--help'], ['list', 'tasks'], ['list', 'pipelines']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "breast_cancer" in out.stdout and "sklearn_hgb" in out.stdout


@pytest.mark.slow
def test_bad_input_is_one_line_exit_2_and_writes_no_store(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nkind: binary\ntarget: y\nsource: {type: sklearn, loader: iris}\nfoo: 1\n")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    for args, fragment in [(["--tasks", str(bad)], "field 'foo': unknown key"),
                           (["--tasks", "no_such_task"], "unknown task 'no_such_task'"),
                           (["--suite", "nope"], "unknown suite 'nope'"),
                           (["--tasks", "penguins", "--pipelines", "nope"], "unknown pipeline 'nope'"),
                           (["--tasks", "penguins", "--pipelines", "sklearn_hgb", "--tracking-uri",
                             "http://127.0.0.1:9"], "cannot reach the tracking server")]:
        out = bench("run", *args, *([] if "--tracking-uri" in args else ["--tracking-uri", uri]), cwd=REPO)
        assert out.returncode == 2, out.stderr
        assert fragment in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "store").exists(), "nothing is written for invalid input"
    debug = bench("--debug", "run", "--tasks", str(bad), "--tracking-uri", uri, cwd=REPO)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.slow
def test_run_then_rerun_then_matrix(tmp_path):
    task = write_task(tmp_path / "tasks", "binary", name="cli_binary")
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    args = ["run", "--tasks", str(task), "--pipelines", "sklearn_hgb,sklearn_linear", "--seeds", "2",
            "--budget", "5", "--latency-n", "100", "--cold-start-repeats", "1", "--batch-rows", "1000",
            "--tracking-uri", uri]
    first = bench(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "finished 4, skipped (already measured) 0, failed 0" in first.stdout.replace("\n", " ")
    second = bench(*args, cwd=tmp_path)
    assert "finished 0, skipped (already measured) 4" in second.stdout.replace("\n", " ")

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["cli_binary"])
    assert sorted(runs["tags.mlflow.runName"]) == ["sklearn_hgb-s0", "sklearn_hgb-s1", "sklearn_linear-s0",
                                                  "sklearn_linear-s1"]
    assert (runs["status"] == "FINISHED").all()
    assert runs["params.version.scikit-learn"].notna().all() and runs["tags.cpu_model"].notna().all()
    assert (runs["metrics.latency_n"] == 100).all()
    models = mlflow.search_logged_models(experiment_ids=[runs["experiment_id"].iloc[0]], output_format="list")
    assert len(models) == 4, "each run logs its model in the sklearn flavour"

    out = bench("matrix", "--tracking-uri", uri, "--out", str(tmp_path / "results"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    matrix = pd.read_csv(tmp_path / "results" / "decision_matrix.csv", comment="#")
    assert set(matrix["pipeline"]) == {"sklearn_hgb", "sklearn_linear"}
    assert (tmp_path / "results" / "decision_matrix.md").read_text().count("sklearn_") >= 2


@pytest.mark.slow
def test_ui_serves_the_store_on_loopback_and_stops_with_its_server(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    proc = subprocess.Popen([*BENCH, "ui", "--port", str(port), "--tracking-uri", uri], cwd=tmp_path,
                            env=os.environ | {"PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read() == b"OK"
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the UI did not come up"
                time.sleep(0.5)
        listeners = [c for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port
                     and c.status == psutil.CONN_LISTEN]
        assert listeners and all(c.laddr.ip == "127.0.0.1" for c in listeners)
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    time.sleep(1)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
