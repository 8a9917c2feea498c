"""MLflow's own model server over a run's logged model, started and always stopped by the harness.

``mlflow models serve -m models:/<id> --env-manager local -h 127.0.0.1 -p <free port> -w 1``: the way an
MLflow user serves a model (FastAPI under uvicorn, one worker, the run's flavour model through pyfunc). It
runs in its own process group with every thread pool pinned to one thread; :class:`ModelServer` is a context
manager that kills the whole group on exit, whatever ended the block (a failure, Ctrl-C, SIGTERM), so no
server outlives a measurement. Traffic goes to loopback only.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Seconds a server may take to answer its first /ping (MLflow downloads the model and imports the framework).
START_TIMEOUT_S = 180.0


class ServerError(RuntimeError):
    """The server did not start, or died: the message says how, with the tail of its output."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ModelServer:
    """``with ModelServer(model_uri, tracking_uri) as server: server.port``; stopped on leaving the block."""

    def __init__(self, model_uri: str, tracking_uri: str, start_timeout_s: float = START_TIMEOUT_S,
                 command: list[str] | None = None) -> None:
        self.model_uri, self.tracking_uri = model_uri, tracking_uri
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.command = command or [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
                                   "--env-manager", "local", "-h", "127.0.0.1", "-p", str(self.port), "-w", "1"]
        self.proc: subprocess.Popen | None = None
        self.start_s = float("nan")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server

    def __enter__(self) -> ModelServer:
        from bench.measure import thread_env

        env = os.environ | thread_env(1) | {"MLFLOW_TRACKING_URI": self.tracking_uri,
                                            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        started = time.monotonic()
        self.proc = subprocess.Popen([*self.command], env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            self._log.close()
            raise
        self.start_s = time.monotonic() - started
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._log.close()

    def _wait_ready(self, started: float) -> None:
        while time.monotonic() - started < self.start_timeout_s:
            if self.proc.poll() is not None:
                raise ServerError(f"the model server exited with code {self.proc.returncode} before answering: "
                                  f"{self.output_tail()}")
            if self.ping():
                return
            time.sleep(0.2)
        raise ServerError(f"the model server did not answer /ping within {self.start_timeout_s:.0f} s: "
                          f"{self.output_tail()}")

    def ping(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/ping")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The server's live process group (the CLI and the uvicorn it execs): what :meth:`stop` kills.
        Zombies are left out: they hold no memory, no port and run nothing, and init reaps them."""
        if self.proc is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[2]) == self.proc.pid and fields[0] != "Z":
                        found.append(int(entry.name))
        return found

    def rss_mb(self) -> float:
        from bench.procfs import tree_rss

        return tree_rss(self.proc.pid) / 2**20 if self.alive() else float("nan")

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL after 5 s; returns once no process of the group runs any more (a
        SIGKILLed process with a framework loaded takes a while to tear down on a loaded machine)."""
        if self.proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 30.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait_s)
            if not self.pids():
                break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything of the group still there
        self.proc.wait()
        deadline = time.monotonic() + 60.0
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.05)

    def output_tail(self, lines: int = 3) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])[:600]
