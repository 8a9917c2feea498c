"""Team tracking: `bench server` over its own SQLite store, two `bench run` logging through it at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from bench import server, tracking
from tests.conftest import REPO, write_task

SMALL = ["--budget", "3", "--time-margin", "120", "--latency-n", "100", "--cold-start-repeats", "1",
         "--batch-rows", "500"]


def bench(args: list[str], cwd, log=subprocess.PIPE) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=env, text=True, stdout=log,
                            stderr=subprocess.STDOUT if log is not subprocess.PIPE else subprocess.PIPE)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_server_command_serves_artifacts_on_loopback_and_warns_when_exposed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cmd = server.server_command()
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and "--serve-artifacts" in cmd
    assert cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path / 'mlflow' / 'server.db'}"
    assert cmd[cmd.index("--artifacts-destination") + 1] == str(tmp_path / "mlflow" / "server-artifacts")
    assert server.absolute_store("postgresql://u:p@db/mlflow") == "postgresql://u:p@db/mlflow"
    assert server.exposure_warning("127.0.0.1") is None
    assert "exposes" in server.exposure_warning("0.0.0.0")
    assert 0 < server.free_port() < 65536


@pytest.mark.slow
def test_two_bench_runs_through_one_server_log_every_run_once(tmp_path):
    task = write_task(tmp_path / "tasks", "binary", name="team")
    port = server.free_port()
    url = f"http://127.0.0.1:{port}"
    srv = bench(["server", "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp_path / 'srv' / 'server.db'}",
                 "--artifacts-destination", str(tmp_path / "srv" / "artifacts")], tmp_path,
                log=(tmp_path / "server.log").open("w"))  # a file: the server's access log would fill a pipe
    try:
        server.wait_ready(url, srv)
        args = ["run", "--tasks", str(task), "--pipelines", "sklearn_linear", "--seeds", "2",
                "--tracking-uri", url, *SMALL]
        serial, parallel = bench(args, tmp_path), bench([*args, "--executor", "dask", "--workers", "2"], tmp_path)
        results = [p.communicate(timeout=600) for p in (serial, parallel)]
        assert serial.returncode == 0 and parallel.returncode == 0, results
        assert "speed-up" in results[1][0]

        client = tracking._client(url)
        experiment = client.get_experiment_by_name("team")
        assert experiment.artifact_location.startswith("mlflow-artifacts:/"), "the server owns its artifact store"
        runs = client.search_runs([experiment.experiment_id])
        names = sorted(r.info.run_name for r in runs)
        assert names == ["sklearn_linear-s0", "sklearn_linear-s1"], names
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert len({r.data.tags["job_key"] for r in runs}) == 2
        for run in runs:
            assert "primary_score" in run.data.metrics and "latency_p50_ms" in run.data.metrics
            assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"native"}, "artifacts via server"
        stored = [p for p in (tmp_path / "srv" / "artifacts").rglob("*") if p.is_file() and p.parent.name == "native"]
        assert len(stored) >= 2, "each run's saved model lands in the server's artifact store"
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=60)
    deadline = time.monotonic() + 10
    while port_open(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not port_open(port), "bench server stops the MLflow server it started"
