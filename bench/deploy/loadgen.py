"""An open-loop load generator: Poisson arrivals at a target rate, single-row JSON requests (MLPerf Server).

Open loop means requests leave on their schedule whatever is still outstanding: a scheduler thread releases
each request at its arrival time to a pool of sender threads, each with its own keep-alive connection, and
the latency of a request counts from its scheduled arrival to the end of its response, so time spent queued
behind a slow server is charged to the server (no coordinated omission). A level is bounded both in time and
in requests; what it achieved is measured, not assumed.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Level:
    """What one target rate gave: latencies of the answered requests, errors, the rate achieved."""

    rate: float
    sent: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    first_error: str = ""

    @property
    def achieved_rps(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def p99_estimate(self) -> float:
        """MLPerf's early-stopping p99 of the answered requests; NaN below the 662 it needs."""
        from bench.early_stopping import estimate

        value = estimate(self.latencies_ms)
        return float("nan") if value is None else value


def _send(port: int, jobs: queue.Queue, level: Level, lock: threading.Lock, timeout_s: float) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    while (job := jobs.get()) is not None:
        due, body = job
        error = ""
        try:
            conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                error = f"HTTP {response.status}: {payload[:200].decode(errors='replace')}"
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
        done = time.perf_counter()
        with lock:
            if error:
                level.errors += 1
                level.first_error = level.first_error or error
            else:
                level.latencies_ms.append((done - due) * 1e3)
    conn.close()


def run_level(port: int, bodies: list[bytes], rate: float, duration_s: float, max_requests: int, seed: int = 0,
              senders: int = 32, timeout_s: float = 10.0, alive=None) -> Level:
    """Send ``min(max_requests, what duration_s holds)`` requests at Poisson arrivals of ``rate`` per second.

    ``alive`` (a callable) is asked between arrivals: once it answers False (the server died) the level stops
    sending, and what is outstanding ends as errors.
    """
    level, lock = Level(rate), threading.Lock()
    jobs: queue.Queue = queue.Queue()
    threads = [threading.Thread(target=_send, args=(port, jobs, level, lock, timeout_s), daemon=True)
               for _ in range(senders)]
    for thread in threads:
        thread.start()
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=max_requests)
    start = time.perf_counter()
    due = start
    try:
        for i, gap in enumerate(gaps):
            due += gap
            if due - start > duration_s or (alive is not None and not alive()):
                break
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            jobs.put((due, bodies[i % len(bodies)]))
            level.sent += 1
    finally:
        for _ in threads:
            jobs.put(None)
        for thread in threads:
            thread.join(timeout_s + 1)
    level.wall_s = time.perf_counter() - start
    return level


def dataframe_split(columns: list[str], rows: list[list]) -> list[bytes]:
    """One MLflow ``dataframe_split`` request body per row (missing values as JSON null)."""
    def clean(value):
        if isinstance(value, float) and value != value:
            return None
        return value.item() if isinstance(value, np.generic) else value

    return [json.dumps({"dataframe_split": {"columns": columns, "data": [[clean(v) for v in row]]}}).encode()
            for row in rows]


def highest_rate_under(levels: list[Level], objective_ms: float) -> float:
    """The highest target rate whose p99 stayed under the objective with no errors (0 when none did)."""
    ok = [lv.rate for lv in levels if lv.latencies_ms and not lv.errors and lv.percentile(99) <= objective_ms]
    return max(ok, default=0.0)
