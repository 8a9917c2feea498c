"""Warm parents on the supervising side: one zygote per pipeline (and thread count), shared by the jobs of
one ``bench run`` (or of one Dask worker), closed when that pipeline has no job left.

A zygote that cannot warm up (its pipeline fails at import, say) is not an error here: :meth:`WarmPool.spawn`
returns None and the caller starts a fresh child instead, which fails the same way and records it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.execution.child import ChildHandle

READY_TIMEOUT_S = 300.0


class Zygote:
    """One warm parent process and the reader thread that routes its messages."""

    def __init__(self, pipeline: str, env: dict[str, str], log: Path, cores: list[int] | None = None) -> None:
        self.pipeline = pipeline
        with log.open("ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.execution.zygote", pipeline], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         start_new_session=True)
        if cores:  # import on the core of the slot that asked, not on one where a job is measuring
            with contextlib.suppress(OSError):
                os.sched_setaffinity(self.proc.pid, cores)
        self.log = log
        self.import_s: float | None = None
        self.error: str | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._next_id = 0
        self._pids: dict[int, int] = {}  # request id -> pid
        self._pid_events: dict[int, threading.Event] = {}
        self._status: dict[int, int] = {}  # pid -> exit code
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"zygote-{pipeline}")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            message = json.loads(raw)
            with self._lock:
                if "ready" in message:
                    self.import_s = message["import_s"]
                    self._ready.set()
                elif "error" in message:
                    self.error = message["error"]
                elif "status" in message:
                    self._status[message["pid"]] = message["status"]
                elif "pid" in message:
                    self._pids[message["id"]] = message["pid"]
                    self._pid_events.pop(message["id"]).set()
        with self._lock:  # the zygote ended: no child of it is alive any more (they die with it)
            self.error = self.error or f"the warm parent exited with code {self.proc.wait()}"
            for event in self._pid_events.values():
                event.set()
            self._ready.set()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        self._ready.wait(timeout)
        return self.alive and self.import_s is not None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and self.error is None

    def fork(self, entry: str, folder: Path) -> ChildHandle | None:
        """Ask for a child running ``entry`` in ``folder``; None if this zygote is gone."""
        event = threading.Event()
        with self._lock:
            if not self.alive:
                return None
            request_id = self._next_id
            self._next_id += 1
            self._pid_events[request_id] = event
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write((json.dumps({"id": request_id, "entry": entry, "folder": str(folder)})
                                       + "\n").encode())
                self.proc.stdin.flush()
            except OSError:
                return None
        started = time.monotonic()
        event.wait(60)
        with self._lock:
            pid = self._pids.pop(request_id, None)
        if pid is None:
            return None
        return ChildHandle(pid, folder, lambda: self._poll(pid), started=started)

    def _poll(self, pid: int) -> int | None:
        with self._lock:
            if pid in self._status:
                return self._status[pid]
            if self.proc.poll() is not None and not self._reader.is_alive():
                return self._status.get(pid, -9)  # the zygote died, and the child with it
        return None

    def close(self) -> None:
        """End of input: the zygote kills any child left and exits."""
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait()


class WarmPool:
    """The zygotes of one process, by pipeline and thread count, started on first use."""

    def __init__(self) -> None:
        self._zygotes: dict[tuple[str, int], Zygote] = {}
        self._lock = threading.Lock()

    def get(self, pipeline: str, threads: int, env: dict[str, str], log: Path,
            cores: list[int] | None = None) -> Zygote | None:
        """The warm parent for this pipeline, started (and waited for) if needed; None if it cannot warm up."""
        key = (pipeline, threads)
        with self._lock:
            zygote = self._zygotes.get(key)
            if zygote is None or (zygote.proc.poll() is not None and zygote.import_s is not None):
                zygote = self._zygotes[key] = Zygote(pipeline, env, log, cores)
        return zygote if zygote.wait_ready() else None

    def release(self, pipeline: str) -> None:
        """Close the zygotes of a pipeline that has no job left (frees its memory for the next ones)."""
        with self._lock:
            keys = [k for k in self._zygotes if k[0] == pipeline]
            zygotes = [self._zygotes.pop(k) for k in keys]
        for zygote in zygotes:
            zygote.close()

    def close(self) -> None:
        with self._lock:
            zygotes, self._zygotes = list(self._zygotes.values()), {}
        for zygote in zygotes:
            zygote.close()


#: This process's pool (a ``bench run``, or a Dask worker process).
POOL = WarmPool()
