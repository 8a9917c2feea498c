"""One finished run served by MLflow's model server and driven at a few Poisson rates.

Figures logged onto the run: ``service_ok`` (1/0), ``service_start_s`` (process start to the first /ping
answer: model download, framework import, model load), ``service_rss_mb`` (the server's process tree after
the load), per target rate R (``r<R>`` in the name) ``service_p50_ms_r<R>``, ``service_p99_ms_r<R>``
(scheduled arrival to response end; ``service_p99_es_ms_r<R>``: MLPerf's early-stopping estimate, NaN below the
662 answers it needs), ``service_rps_r<R>`` (achieved), ``service_errors_r<R>`` and
``service_sent_r<R>``, and ``service_max_rps``: the highest target rate whose p99 stayed under the objective
with no errors. Tags say what was measured (``service_server``, ``service_payload``, ``service_objective_ms``,
``service_rates``) or why it could not be (``service_error``).
"""

from __future__ import annotations

from typing import Any

from bench.deploy.loadgen import highest_rate_under, run_level
from bench.deploy.server import ModelServer, ServerError

SERVER = "mlflow models serve (uvicorn, 1 worker, 1 thread, --env-manager local) on 127.0.0.1"
WARMUP_REQUESTS = 20


def rate_name(rate: float) -> str:
    return f"r{rate:g}".replace(".", "_")


def _warm_up(server: ModelServer, bodies: list[bytes]) -> None:
    """A few requests one after another: a server that rejects them is a failure, not a load level."""
    level = run_level(server.port, bodies, rate=1e6, duration_s=60.0, max_requests=WARMUP_REQUESTS, senders=1)
    if level.errors:
        raise ServerError(f"the model server rejected {level.errors} of {level.sent} warm-up requests: "
                          f"{level.first_error}")


def measure_service(model_uri: str, tracking_uri: str, bodies: list[bytes], rates: list[float], level_s: float,
                    level_requests: int, objective_ms: float, start_timeout_s: float = 180.0,
                    command: list[str] | None = None) -> dict[str, Any]:
    """``{"metrics", "tags"}``; a server that fails to start or dies is a recorded failure, never left running."""
    tags = {"service_server": SERVER, "service_objective_ms": f"{objective_ms:g}",
            "service_rates": ",".join(f"{r:g}" for r in rates)}
    metrics: dict[str, float] = {}
    levels = []
    try:
        with ModelServer(model_uri, tracking_uri, start_timeout_s, command) as server:
            metrics["service_start_s"] = server.start_s
            _warm_up(server, bodies)
            for i, rate in enumerate(rates):
                level = run_level(server.port, bodies, rate, level_s, level_requests, seed=i, alive=server.alive)
                levels.append(level)
                name = rate_name(rate)
                metrics |= {f"service_p50_ms_{name}": level.percentile(50),
                            f"service_p99_ms_{name}": level.percentile(99),
                            f"service_p99_es_ms_{name}": level.p99_estimate(),
                            f"service_rps_{name}": level.achieved_rps,
                            f"service_errors_{name}": float(level.errors), f"service_sent_{name}": float(level.sent)}
                if not server.alive():
                    raise ServerError(f"the model server died during the {rate:g} rps level (exit "
                                      f"{server.proc.returncode}): {server.output_tail()}")
            metrics["service_rss_mb"] = server.rss_mb()
    except ServerError as exc:
        tags["service_error"] = str(exc)[:5000]
        metrics["service_ok"] = 0.0
        return {"metrics": metrics, "tags": tags}
    metrics |= {"service_ok": 1.0, "service_max_rps": highest_rate_under(levels, objective_ms)}
    return {"metrics": metrics, "tags": tags}
