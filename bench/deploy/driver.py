"""``bench deploy``: measure the finished suite runs in their deployed forms and log the figures onto them.

Resumable like ``bench run``: a run that already carries a target's figures (``edge_exported`` for the edge,
``service_ok`` for the service) is skipped unless ``force``; an interrupted ``bench deploy`` rerun measures the
rest. A run whose form cannot be measured (no export, no logged model, a server that fails) gets the
reason as a tag and its ``*_exported``/``service_ok`` at 0: that is a finding, and it counts as measured.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGETS = ("edge", "service")
DONE_METRIC = {"edge": "edge_exported", "service": "service_ok"}


@dataclass
class DeployConfig:
    targets: list[str]
    force: bool = False
    repeats: int = 3
    latency: dict[str, Any] = field(default_factory=lambda: {"n": 1000, "warmup": 50, "cap_s": 5.0, "min_n": 662})
    rates: list[float] = field(default_factory=lambda: [5.0, 20.0, 50.0, 100.0])
    level_s: float = 10.0
    level_requests: int = 1000
    objective_ms: float = 50.0
    start_timeout_s: float = 180.0


def select_runs(uri: str, task_names: list[str], pipelines: list[str] | None, seeds: list[int] | None):
    """The newest finished suite run per task, pipeline and seed in the selection."""
    from bench.store import read_runs

    runs = read_runs(uri, tasks=task_names, pipelines=pipelines)
    if runs.empty or "status" not in runs:
        return runs
    runs = runs[(runs["kind"] == "job") & (runs["status"] == "FINISHED")]
    if seeds is not None and "seed" in runs:
        runs = runs[runs["seed"].astype(str).isin({str(s) for s in seeds})]
    return runs.drop_duplicates(["task", "pipeline", "seed"])  # read_runs lists the newest first


def _needed(run: Any, config: DeployConfig) -> list[str]:
    if config.force:
        return list(config.targets)
    return [t for t in config.targets if not (DONE_METRIC[t] in run and run[DONE_METRIC[t]] == run[DONE_METRIC[t]])]


def deploy_run(uri: str, run: Any, task_path: Path, config: DeployConfig, targets: list[str]) -> dict[str, Any]:
    """Measure one run's deployed forms and log them; returns what was logged."""
    from bench import tracking
    from bench.deploy.edge import measure_edge
    from bench.deploy.export import run_child

    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    logged: dict[str, Any] = {"metrics": {}, "tags": {}}
    try:
        native = tracking.download_artifacts(uri, run["run_id"], "native", work / "download")
        seed = int(run["seed"])
        if "edge" in targets:
            edge = measure_edge(run["pipeline"], native, task_path, seed, work / "edge-work", config.repeats,
                                config.latency)
            tracking.log_steps(uri, run["run_id"], [], metrics=edge["metrics"], tags=edge["tags"])
            tracking.log_files(uri, run["run_id"], [Path(f) for f in edge.get("files", [])], "edge")
            logged["metrics"] |= edge["metrics"]
            logged["tags"] |= edge["tags"]
        if "service" in targets:
            service = _service(uri, run, native, task_path, seed, work, config, run_child)
            tracking.log_steps(uri, run["run_id"], [], metrics=service["metrics"], tags=service["tags"])
            logged["metrics"] |= service["metrics"]
            logged["tags"] |= service["tags"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return logged


def _service(uri: str, run: Any, native: Path, task_path: Path, seed: int, work: Path, config: DeployConfig,
             run_child: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    from bench import tracking
    from bench.deploy.service import SERVER, measure_service

    model_uri = tracking.logged_model_uri(uri, run["run_id"])
    if model_uri is None:
        why = run.get("model_logging_error") if hasattr(run, "get") else None
        reason = f"the run has no logged MLflow model to serve ({why})" if isinstance(why, str) and why else \
            "the run has no logged MLflow model to serve"
        return {"metrics": {"service_ok": 0.0}, "tags": {"service_server": SERVER, "service_error": reason}}
    made = run_child("bench.deploy.export:requests_main", work / "requests", {
        "pipeline": run["pipeline"], "model_dir": str(native), "task_path": str(task_path), "seed": seed,
        "out": str(work / "requests-out")})
    if "error" in made:
        return {"metrics": {"service_ok": 0.0}, "tags": {"service_server": SERVER, "service_error": made["error"]}}
    bodies = Path(made["file"]).read_bytes().split(b"\n")
    measured = measure_service(model_uri, uri, bodies, config.rates, config.level_s, config.level_requests,
                               config.objective_ms, config.start_timeout_s)
    measured["tags"]["service_payload"] = made["payload"]
    return measured


def deploy(uri: str, tasks: list[Any], pipelines: list[str] | None, seeds: list[int] | None, config: DeployConfig,
           say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every selected finished run, one after another (timings must not share cores); returns one row each."""
    paths = {t.name: Path(t.path) for t in tasks}
    runs = select_runs(uri, list(paths), pipelines, seeds)
    rows = []
    for _, run in runs.iterrows():
        label = f"{run['task']}/{run['pipeline']}-s{run['seed']}"
        targets = _needed(run, config)
        if not targets:
            say(f"{label}: already measured ({', '.join(config.targets)}); --force to measure again")
            continue
        say(f"{label}: measuring {', '.join(targets)}")
        logged = deploy_run(uri, run, paths[run["task"]], config, targets)
        rows.append({"run": label, **logged["metrics"], **logged["tags"]})
        say(f"{label}: {summary(logged)}")
    return rows


def summary(logged: dict[str, Any]) -> str:
    """One line: edge format and p50 or why not; service p99 per rate or why not."""
    m, t = logged["metrics"], logged["tags"]
    parts = []
    if "edge_exported" in m:
        parts.append(f"edge {t.get('edge_format')} p50 {m['edge_latency_p50_ms']:.3f} ms" if m["edge_exported"]
                     else f"no edge export: {t.get('edge_error', '')[:160]}")
    if "service_ok" in m:
        p99 = [f"{k.removeprefix('service_p99_ms_r')} rps p99 {v:.1f} ms" for k, v in m.items()
               if k.startswith("service_p99_ms_")]
        parts.append("service " + ", ".join(p99) if m["service_ok"] else
                     f"service failed: {t.get('service_error', '')[:160]}")
    return "; ".join(parts)
