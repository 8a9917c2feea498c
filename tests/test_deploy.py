"""bench deploy with real processes: converters, fresh runtime processes, MLflow's model server, open-loop load."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from bench.deploy import edge
from bench.deploy.loadgen import dataframe_split, highest_rate_under, run_level
from bench.deploy.service import measure_service
from tests.conftest import BENCH, FAKE_PIPELINES, REPO, bench, write_task

TINY_LATENCY = {"n": 60, "warmup": 5, "cap_s": 1.0, "min_n": 20}


def fit_and_save(pipeline: str, task_path: Path, folder: Path, budget_s: float = 3.0) -> Path:
    """The suite job's fit on seed 0's split, saved as a run's ``native/`` folder would be."""
    from bench.discovery import load_module
    from bench.splits import make_split
    from bench.tasks import cached_data, load_task

    data = cached_data(load_task(task_path))
    split = make_split(data, 0)
    pipe = load_module(pipeline).Pipeline()
    info = data.info(seed=0, threads=1, budget_s=budget_s, deadline=time.monotonic() + budget_s)
    pipe.fit(data.X.iloc[split.train], data.y.iloc[split.train], info)
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save(folder)
    return folder


def processes_mentioning(marker: str) -> list[int]:
    """Live processes whose command line or environment holds ``marker`` (a server we started, say)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            text = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in text:
            found.append(int(entry.name))
    return found


# ---------------------------------------------------------------- edge


def test_a_converter_failure_is_recorded_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_PIPELINE_PATH", str(FAKE_PIPELINES))
    task = write_task(tmp_path / "tasks", "binary")
    model = fit_and_save("edge_unconvertible", task, tmp_path / "native")
    out = edge.measure_edge("edge_unconvertible", model, task, 0, tmp_path / "work", repeats=1, latency=TINY_LATENCY)
    assert out["metrics"] == {"edge_exported": 0.0}
    assert out["tags"]["edge_format"] == "none"
    assert "FunctionTransformer is not supported" in out["tags"]["edge_error"]


def test_an_exported_pipeline_is_measured_in_a_fresh_runtime_process(tmp_path):
    task = REPO / "tasks" / "breast_cancer.yaml"  # no missing values: skl2onnx has no imputer indicators
    model = fit_and_save("sklearn_sgd", task, tmp_path / "native")
    out = edge.measure_edge("sklearn_sgd", model, task, 0, tmp_path / "work", repeats=2, latency=TINY_LATENCY)
    m, t = out["metrics"], out["tags"]
    assert m["edge_exported"] == 1.0, t.get("edge_error")
    assert t["edge_format"] == "onnx" and t["edge_graph"].startswith("whole pipeline")
    assert m["edge_agreement"] >= edge.MIN_AGREEMENT and m["edge_max_abs_diff"] < 1e-4
    assert m["edge_latency_n"] == TINY_LATENCY["n"] and 0 < m["edge_latency_p50_ms"] <= m["edge_latency_p99_ms"]
    assert m["edge_import_s"] + m["edge_load_s"] < m["edge_cold_start_s"]  # the interpreter's start is in it
    assert 1 < m["edge_serving_rss_mb"] < m["edge_process_rss_mb"] < 400  # onnxruntime, numpy: no framework, no pandas
    assert m["edge_runtime_mb"] > 1 and m["edge_model_bytes"] == Path(out["files"][0]).stat().st_size


def test_fidelity_counts_labels_and_values(tmp_path):
    native = tmp_path / "native.npz"
    np.savez(native, labels=np.array([0, 1, 1, 0]), proba=np.array([[.9, .1], [.2, .8], [.4, .6], [.7, .3]]))
    edge_proba = np.array([[.9, .1], [.2, .8], [.6, .4], [.7, .3]])  # the third row's label flips
    assert edge.fidelity("binary", native, edge_proba) == pytest.approx((0.75, 0.2))
    np.savez(native, values=np.array([100.0, 200.0, 300.0]))
    agreement, diff = edge.fidelity("regression", native, np.array([[100.0], [200.05], [330.0]]))
    assert agreement == pytest.approx(2 / 3) and diff == pytest.approx(30.0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_every_pipeline_exports_faithfully_or_says_why(tmp_path, kind):
    from bench.discovery import available

    task = write_task(tmp_path / "tasks", kind)
    for name in available():
        model = fit_and_save(name, task, tmp_path / name / "native")
        out = edge.measure_edge(name, model, task, 0, tmp_path / name / "work", repeats=1, latency=TINY_LATENCY)
        m, t = out["metrics"], out["tags"]
        if m["edge_exported"]:
            assert m["edge_agreement"] >= edge.MIN_AGREEMENT, name
        else:
            assert t["edge_error"], name
        if name in ("torch_mlp", "keras_mlp"):  # a network on encoded rows has nothing a converter could refuse
            assert m["edge_exported"] == 1.0, (name, t.get("edge_error"))
        if name == "keras_mlp":
            assert m["edge_litert_exported"] == 1.0, t.get("edge_litert_error")
            assert m["edge_litert_agreement"] >= edge.MIN_AGREEMENT


# ---------------------------------------------------------------- load generator


class _Slow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.05)
        status = 500 if b"fail" in self.path.encode() or self.server.fail else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.fail = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_the_load_is_open_loop(slow_server):
    """Requests leave on their Poisson schedule while earlier ones are still being answered (50 ms each)."""
    bodies = dataframe_split(["a", "b"], [[1.0, float("nan")], [2.0, 3.0]])
    assert b'"data": [[1.0, null]]' in bodies[0]
    level = run_level(slow_server.server_port, bodies, rate=80.0, duration_s=1.5, max_requests=1000)
    assert 80 <= level.sent <= 170  # Poisson around 120 in 1.5 s; a closed loop would manage ~30
    assert level.errors == 0 and len(level.latencies_ms) == level.sent
    assert level.percentile(50) >= 50  # scheduled arrival to response end
    capped = run_level(slow_server.server_port, bodies, rate=80.0, duration_s=5.0, max_requests=10)
    assert capped.sent == 10 and capped.wall_s < 2


def test_errors_are_counted_and_no_rate_qualifies(slow_server):
    slow_server.fail = True
    level = run_level(slow_server.server_port, [b"{}"], rate=50.0, duration_s=0.5, max_requests=100)
    assert level.errors == level.sent > 0 and level.first_error.startswith("HTTP 500")
    assert highest_rate_under([level], objective_ms=1e9) == 0.0


# ---------------------------------------------------------------- MLflow's model server


def test_a_server_that_fails_to_start_is_a_recorded_failure_with_no_process_left(tmp_path):
    marker = f"m-{uuid.uuid4().hex}"
    (tmp_path / "mlflow").mkdir()
    out = measure_service(f"models:/{marker}", f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}", [b"{}"], [10.0],
                          level_s=1, level_requests=10, objective_ms=50, start_timeout_s=120)
    assert out["metrics"]["service_ok"] == 0.0
    assert "exited with code" in out["tags"]["service_error"]
    assert processes_mentioning(marker) == []


def _answers(port: int) -> bool:
    import http.client

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except OSError:
        return False


@pytest.fixture
def served_model(tmp_path):
    """A real MLflow sklearn model on disk (no store needed: the server takes a local path)."""
    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
    path = tmp_path / f"model-{uuid.uuid4().hex}"
    mlflow.sklearn.save_model(LogisticRegression().fit(X, X["a"] > 20), str(path),
                              serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    return str(path), dataframe_split(["a", "b"], X.to_numpy().tolist())


@pytest.mark.slow
def test_a_server_that_dies_mid_load_is_a_recorded_failure_with_no_process_left(tmp_path, served_model):
    path, bodies = served_model
    killed = []

    def kill_once_serving():  # SIGKILL the uvicorn process once it answers, during the first level
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not killed:
            for pid in processes_mentioning(path):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"uvicorn" in b" ".join(argv) and _answers(int(argv[argv.index(b"--port") + 1])):
                    time.sleep(2)  # the warm-up is done, the first level is under way
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
            time.sleep(0.2)

    killer = threading.Thread(target=kill_once_serving)
    killer.start()
    out = measure_service(path, f"sqlite:///{tmp_path / 'unused.db'}", bodies, [20.0, 20.0], level_s=30,
                          level_requests=10_000, objective_ms=50, start_timeout_s=120)
    killer.join()
    assert killed
    assert out["metrics"]["service_ok"] == 0.0 and "died during the 20 rps level" in out["tags"]["service_error"]
    assert out["metrics"]["service_start_s"] > 0
    assert processes_mentioning(path) == []


@pytest.mark.slow
def test_a_served_model_gives_the_figures_of_each_level(tmp_path, served_model):
    path, bodies = served_model
    out = measure_service(path, f"sqlite:///{tmp_path / 'unused.db'}", bodies, [5.0, 10.0], level_s=2,
                          level_requests=15, objective_ms=10_000, start_timeout_s=120)
    m = out["metrics"]
    assert m["service_ok"] == 1.0, out["tags"].get("service_error")
    assert m["service_sent_r5"] > 0 and m["service_errors_r5"] == 0 and m["service_p99_ms_r10"] > 0
    assert m["service_max_rps"] == 10.0 and m["service_rss_mb"] > 50
    assert processes_mentioning(path) == []


# ---------------------------------------------------------------- bench deploy


@pytest.fixture
def finished_store(tmp_path):
    import pandas as pd

    task = write_task(tmp_path / "tasks", "binary")
    data = task.with_suffix(".csv")  # without missing values: skl2onnx has no imputer indicators
    pd.read_csv(data).fillna({"x2": 0.0, "colour": "red"}).to_csv(data, index=False)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    done = bench("run", "--tasks", str(task), "--pipelines", "sklearn_linear", "--budget", "1",
                 "--cold-start-repeats", "1", "--latency-n", "50", "--tracking-uri", uri, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return task, uri


@pytest.mark.slow
def test_bench_deploy_logs_onto_the_run_and_resumes(tmp_path, finished_store):
    from bench.store import read_runs

    task, uri = finished_store
    args = ("deploy", "--tasks", str(task), "--tracking-uri", uri, "--rates", "5", "--level-s", "1",
            "--level-requests", "5", "--latency-n", "50", "--cold-start-repeats", "1")
    first = bench(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run = read_runs(uri).iloc[0]
    assert run["edge_exported"] == 1.0 and run["edge_format"] == "onnx" and run["service_ok"] == 1.0
    assert run["edge_agreement"] >= edge.MIN_AGREEMENT and run["service_sent_r5"] > 0
    assert run["service_payload"].startswith("raw rows")
    again = bench(*args, cwd=tmp_path)
    assert again.returncode == 0 and "already measured" in again.stdout and "0 run(s) measured" in again.stdout


def test_bench_deploy_refuses_bad_options(tmp_path):
    for args, field in [(["--targets", "edge,cloud"], "--targets"), (["--rates", "5,fast"], "--rates"),
                        (["--rates", "0"], "--rates"), (["--objective-ms", "-1"], "--objective-ms")]:
        done = bench("deploy", *args, "--tracking-uri", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.startswith("error:") and field in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def _ctrl_c_reaches_it() -> None:
    """A shell that starts the tests in the background (``nohup make test &``) leaves SIGINT ignored in every
    process below it, and Python keeps an ignored SIGINT ignored: give the child the terminal's default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_during_bench_deploy_stops_the_server(tmp_path, finished_store):
    task, uri = finished_store
    proc = subprocess.Popen([*BENCH, "deploy", "--targets", "service", "--tasks", str(task), "--tracking-uri", uri,
                             "--rates", "5", "--level-s", "60", "--level-requests", "1000"], cwd=tmp_path,
                            env=os.environ | {"PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_reaches_it)
    marker = uri.removeprefix("sqlite:///")  # the server gets the store's URI in its environment
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and not any(
            b"uvicorn" in Path(f"/proc/{p}/cmdline").read_bytes() for p in processes_mentioning(marker)
            if Path(f"/proc/{p}").exists()):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert processes_mentioning(marker) == []
