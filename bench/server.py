"""A team's MLflow tracking server: ``mlflow server`` over SQLite or PostgreSQL with served artifacts.

``bench server`` runs::

    mlflow server --backend-store-uri sqlite:///mlflow/server.db --serve-artifacts \\
        --artifacts-destination mlflow/server-artifacts --host 127.0.0.1 --port 5000 --workers 1

and ``bench run --tracking-uri http://127.0.0.1:5000`` logs through it: clients never touch the database or
the artifact folder, so any number of ``bench run`` processes (on any machine that can reach it) log at once.

The server gets its own database, not the embedded ``mlflow/mlflow.db``: experiments created through the
server get ``mlflow-artifacts:/`` locations, which a client writing to the same database directly cannot
use, and experiments created directly point at local folders the server does not serve. For
PostgreSQL pass ``--backend-store-uri postgresql://user:password@host:5432/mlflow`` (needs ``psycopg2``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_BACKEND = "sqlite:///mlflow/server.db"
DEFAULT_ARTIFACTS = "mlflow/server-artifacts"


def server_command(backend_store_uri: str = DEFAULT_BACKEND, artifacts_destination: str = DEFAULT_ARTIFACTS,
                   host: str = "127.0.0.1", port: int = 5000, workers: int = 1) -> list[str]:
    """The ``mlflow server`` command line; relative SQLite paths and the artifact folder become absolute."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", absolute_store(backend_store_uri),
            "--serve-artifacts", "--artifacts-destination", str(Path(artifacts_destination).resolve()),
            "--host", host, "--port", str(port), "--workers", str(workers)]


def server_env() -> dict[str, str]:
    """No background job runner: it is not needed for tracking and halves the start-up time (~4.5 s, not 8-10 s)."""
    return os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def absolute_store(uri: str) -> str:
    """``sqlite:///relative.db`` resolved against the current folder, its folder created; others unchanged."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///")).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    return uri


def exposure_warning(host: str) -> str | None:
    if host in LOOPBACK:
        return None
    return (f"warning: binding {host} exposes the tracking server to the network: anyone who reaches it can read "
            "and delete runs and artifacts (MLflow has no authentication here); put it behind a proxy with auth")


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start(backend_store_uri: str, artifacts_destination: str | Path, host: str = "127.0.0.1",
          port: int | None = None, log_file: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start a server in the background; returns the process and its URL once it answers ``/health``.

    Example:
        >>> proc, url = start("sqlite:////tmp/t/server.db", "/tmp/t/artifacts")  # doctest: +SKIP
        >>> ...  # bench run --tracking-uri {url}
        >>> stop(proc)  # doctest: +SKIP
    """
    port = port or free_port(host)
    out = log_file.open("wb") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(server_command(backend_store_uri, str(artifacts_destination), host, port),
                            env=server_env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://{host}:{port}"
    try:
        wait_ready(url, proc)
    except BaseException:
        stop(proc)
        raise
    return proc, url


def serve(backend_store_uri: str = DEFAULT_BACKEND, artifacts_destination: str = DEFAULT_ARTIFACTS,
          host: str = "127.0.0.1", port: int = 5000) -> int:
    """Run the server in the foreground until it exits or this process is interrupted (Ctrl-C, SIGTERM).

    The server runs in its own process group and is stopped with its workers whatever ends this process
    short of SIGKILL, so nothing keeps listening after ``bench server`` has gone.
    """
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    proc = subprocess.Popen(server_command(backend_store_uri, artifacts_destination, host, port),
                            env=server_env(), start_new_session=True)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop(proc)


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout_s: float = 120.0) -> None:
    """Poll ``/health`` until the server answers; fail early if its process has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the MLflow server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"the MLflow server at {url} did not answer within {timeout_s:.0f} s")


def stop(proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """Terminate the server and its workers (its process group), then wait for it."""
    import contextlib
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
