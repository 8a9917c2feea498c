"""``bench``: thin command line over the harness. Imports no framework at start-up.

Errors a user can fix (``BenchError``) print as one line naming the file, field and fix, and exit with
code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from bench.errors import BenchError, check_number, check_writable_folder

EXIT_USAGE = 2


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="AutoML versus hand-coded pipelines, measured "
                                     "side by side on the same tasks and hardware, tracked in MLflow.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a suite: tasks x pipelines x seeds, each job in its own process")
    run.add_argument("--suite", help="tasks/suites/<name>.yaml (quick, standard)")
    run.add_argument("--tasks", type=_csv, help="task names or paths to task YAML files, comma-separated")
    run.add_argument("--pipelines", type=_csv, help="pipeline ids (default: all of `bench list pipelines`)")
    run.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (default 1)")
    run.add_argument("--budget", type=float, default=60.0, help="wall seconds per fit, same for every pipeline")
    run.add_argument("--cores", type=int, default=1, help="threads for every framework (default 1)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow/mlflow.db)")
    run.add_argument("--force", action="store_true", help="rerun jobs that already finished")
    run.add_argument("--time-margin", type=float, default=180.0,
                     help="seconds added to the budget for start-up and measurement before a job is killed")
    run.add_argument("--memory-limit-gb", type=float, help="RSS limit per job (default 60%% of RAM)")
    run.add_argument("--latency-n", type=int, default=1000, help="timed single-row calls (>= 1000 for a p99)")
    run.add_argument("--cold-start-repeats", type=int, default=3,
                     help="repeats of each cold-start probe: fresh interpreters importing the serving code (once "
                          "per pipeline per run) and model loads with a first prediction (per job); median")
    run.add_argument("--latency-cap-s", type=float, default=5.0,
                     help="seconds after which a single-row latency loop stops early (never below the 662 calls "
                          "a p99 needs); latency_n records the calls made")
    run.add_argument("--jobs", type=int, default=None,
                     help="jobs at once with the local executor, each pinned to cores of its own (default: "
                          "usable cores / --cores; 1 = one after another)")
    run.add_argument("--batch-rows", type=int, default=10_000, help="rows per batch-throughput call (>= 10k)")
    run.add_argument("--executor", choices=["local", "dask"],
                     help="local: one job at a time (default); dask: jobs in parallel on a Dask cluster "
                          "(implied by --scheduler or --workers > 1)")
    run.add_argument("--workers", type=int, default=None,
                     help="Dask workers of the LocalCluster started for this run, one job each at a time "
                          "(default: usable cores / --cores); keep workers x --cores <= cores for honest timings")
    run.add_argument("--scheduler", help="address of an existing Dask scheduler (tcp://HOST:PORT) to run on")
    run.add_argument("--no-pin", action="store_true",
                     help="do not pin LocalCluster workers to their own cores (let the OS place the jobs)")

    lst = sub.add_parser("list", help="list tasks, suites or pipelines")
    lst.add_argument("what", choices=["tasks", "pipelines", "suites"])

    ui = sub.add_parser("ui", help="serve the MLflow UI over the store on 127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1", help="bind address (anything but loopback is exposed)")
    ui.add_argument("--tracking-uri")

    mx = sub.add_parser("matrix", help="rank the pipelines for a requirement profile from the runs, with reasons")
    mx.add_argument("--suite", help="only the tasks of this suite")
    mx.add_argument("--tasks", type=_csv, help="only these tasks, comma-separated")
    mx.add_argument("--pipelines", type=_csv, help="only these pipelines, comma-separated")
    mx.add_argument("--profile", default="balanced", help="built-in profile (balanced, edge, cloud-batch, "
                    "cloud-realtime, online-learning, low-effort) or a path to a profile YAML file")
    mx.add_argument("--network-rtt-ms", type=float, help="network round trip added to online latencies "
                    "(overrides the profile's network_rtt_ms)")
    mx.add_argument("--format", type=_csv, default=["csv", "md"], help="csv,md,json,html (default csv,md)")
    mx.add_argument("--out", type=Path, default=Path("results"), help="folder for the files (default results/)")
    mx.add_argument("--tracking-uri")
    mx.add_argument("--ui-url", default="http://127.0.0.1:5000", help="MLflow UI base for the compare-runs links")
    mx.add_argument("--no-log", action="store_true", help="do not log the files as an MLflow run in 'matrix'")
    mx.add_argument("--wait", action="store_true", help="wait until the files are logged as an MLflow run "
                    "(default: a detached process logs them, its outcome in OUT/matrix_run.json)")

    srv = sub.add_parser("server", help="run an MLflow tracking server (SQLite or PostgreSQL, served artifacts) "
                         "for a team; log to it with bench run --tracking-uri http://HOST:PORT")
    srv.add_argument("--host", default="127.0.0.1", help="bind address (anything but loopback is exposed)")
    srv.add_argument("--port", type=int, default=5000)
    srv.add_argument("--backend-store-uri", default="sqlite:///mlflow/server.db",
                     help="sqlite:///PATH or postgresql://USER:PASS@HOST/DB; its own DB, not mlflow/mlflow.db")
    srv.add_argument("--artifacts-destination", default="mlflow/server-artifacts",
                     help="where the server stores artifacts (a folder, s3://..., ...)")

    sc = sub.add_parser("scale", help="scaling sweep: fit time, memory, throughput and quality against rows, "
                        "with a growth exponent per pipeline")
    sc.add_argument("--task", help="task name or path to a task YAML file")
    sc.add_argument("--synthetic", choices=["binary", "multiclass", "regression"],
                    help="use the synthetic generator instead of --task (rows as large as the largest size)")
    sc.add_argument("--features", type=int, default=20, help="numeric features of --synthetic (default 20)")
    sc.add_argument("--pipelines", type=_csv, default=["sklearn_linear", "sklearn_hgb"],
                    help="pipeline ids, comma-separated (default sklearn_linear,sklearn_hgb)")
    sc.add_argument("--rows", default="1000,10000,100000,full",
                    help="training rows per point, comma-separated; 'full' is the whole training split")
    sc.add_argument("--seed", type=int, default=0, help="split and subsample seed (default 0)")
    sc.add_argument("--budget", type=float, default=60.0, help="wall seconds per fit (default 60)")
    sc.add_argument("--cores", type=int, default=1, help="threads for every framework (default 1)")
    sc.add_argument("--time-limit", type=float, default=900.0, help="seconds before one point is killed")
    sc.add_argument("--memory-limit-gb", type=float, help="RSS limit per point (default 60%% of RAM)")
    sc.add_argument("--tracking-uri")

    st = sub.add_parser("stream", help="offline vs online learning on a stream task: prequential quality per "
                        "period, update costs and recovery after drift, per pipeline and strategy")
    st.add_argument("--task", required=True, help="a stream task (flights_stream, drift_stream) or its YAML path")
    st.add_argument("--pipelines", type=_csv, default=["sklearn_sgd"], help="pipeline ids, comma-separated")
    st.add_argument("--strategies", type=_csv, default=["static", "periodic", "incremental"],
                    help="static, periodic, incremental (comma-separated; default all three)")
    st.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (default 1)")
    st.add_argument("--budget", type=float, default=10.0, help="wall seconds per fit (initial and each refit)")
    st.add_argument("--update-budget", type=float, default=5.0, help="wall seconds per incremental update")
    st.add_argument("--retrain-every", type=int, default=1, help="periodic: refit every k periods (default 1)")
    st.add_argument("--window", type=int, help="periodic: refit on the last N periods (default: all data so far)")
    st.add_argument("--cores", type=int, default=1, help="threads for every framework (default 1)")
    st.add_argument("--time-margin", type=float, default=120.0,
                    help="seconds added to a job's summed budgets before it is killed")
    st.add_argument("--memory-limit-gb", type=float, help="RSS limit per job (default 60%% of RAM)")
    st.add_argument("--out", type=Path, default=Path("results"), help="folder for the table and plot")
    st.add_argument("--tracking-uri")

    ck = sub.add_parser("check", help="run the pipeline contract's named checks on a pipeline file (or id), in this "
                        "process on tiny generated data; exit 1 if any fails")
    ck.add_argument("pipeline", metavar="PIPELINE_FILE", help="a .py file defining class Pipeline (any folder), "
                    "or a pipeline id of `bench list pipelines`")
    ck.add_argument("--kinds", type=_csv, default=["binary", "multiclass", "regression"],
                    help="task kinds to check on (default binary,multiclass,regression)")
    ck.add_argument("--budget", type=float, default=3.0, help="wall seconds per fit (default 3; from 10 on, "
                    "learns_signal asks for most of the signal)")
    return parser


def main(argv: list[str] | None = None) -> int:
    # From the very first line: a SIGTERM at any moment (even while the store is being created) unwinds like
    # Ctrl-C, so cleanups run and the exit code is 130.
    with contextlib.suppress(ValueError):  # not the main thread (a test calling main): keep its handlers
        signal.signal(signal.SIGTERM, _raise_interrupt)
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return {"run": cmd_run, "list": cmd_list, "ui": cmd_ui, "matrix": cmd_matrix,
                "server": cmd_server, "scale": cmd_scale, "stream": cmd_stream, "check": cmd_check}[args.command](args)
    except BenchError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; the running job is marked killed. Rerun the same command "
              "to finish the rest.", file=sys.stderr)
        return 130


def _select_tasks(suite: str | None, refs: list[str] | None):
    from bench.tasks import resolve_task, suite_tasks

    if suite and refs:
        raise BenchError("give --suite or --tasks, not both", field="--tasks")
    if refs:
        return [resolve_task(r) for r in refs]
    return suite_tasks(suite or "quick")


def _select_pipelines(names: list[str] | None) -> list[str]:
    from bench.discovery import available, source_file

    for name in names or []:
        source_file(name)  # raises BenchError naming the known pipelines
    return names or available()


def cmd_run(args: argparse.Namespace) -> int:
    from bench import tracking
    from bench.execution import runner
    from bench.progress import SuiteProgress, print_summary
    from bench.splits import make_split
    from bench.tasks import cached_data

    _check_common(args)
    check_number(args.latency_n, "--latency-n", 1, 10_000_000)
    check_number(args.cold_start_repeats, "--cold-start-repeats", 1, 1000)
    check_number(args.batch_rows, "--batch-rows", 1, 100_000_000)
    check_number(args.workers, "--workers", 1, 1024)
    check_number(args.jobs, "--jobs", 1, 256)
    check_number(args.latency_cap_s, "--latency-cap-s", 0, 3600, low_open=True, unit="s")
    tracking.validate_store(tracking.resolve_uri(args.tracking_uri))  # a bad URI or store fails before any work
    tasks = _select_tasks(args.suite, args.tasks)
    pipelines = _select_pipelines(args.pipelines)
    seeds = list(range(args.seeds))
    # Validate every task's data and split before anything is written to the store.
    for task in tasks:
        data = cached_data(task)
        for seed in seeds:
            make_split(data, seed)
    uri = tracking.resolve_uri(args.tracking_uri)
    tracking.check_store(uri)
    config = runner.RunConfig(tracking_uri=uri, budget_s=args.budget, threads=args.cores,
                              time_margin_s=args.time_margin, suite=args.suite or "custom", force=args.force,
                              latency_n=args.latency_n, cold_start_repeats=args.cold_start_repeats,
                              batch_rows=args.batch_rows, latency_cap_s=args.latency_cap_s)
    config.jobs = _local_jobs(args)
    if args.memory_limit_gb:
        config.memory_limit_mb = args.memory_limit_gb * 1024
    jobs = runner.plan(tasks, pipelines, seeds)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.monotonic()
    with SuiteProgress(len(jobs)) as progress:
        outcomes = _execute(args, jobs, config, progress.on_event)
    from bench.execution.job import import_probe_seconds

    slots = config.jobs if config.executor == "local" else 1  # Dask workers probe in their own processes
    print_summary(outcomes, uri, time.monotonic() - started, slots, import_probe_seconds())
    return 0


def _local_jobs(args: argparse.Namespace) -> int:
    """Concurrent jobs of the local executor: one per usable core at --cores threads unless --jobs says."""
    from bench.execution.cores import core_plan, default_slots, usable_cores

    if args.jobs is None:
        return default_slots(args.cores)
    if args.jobs < 1 or args.jobs > 256:
        raise BenchError(f"--jobs must be between 1 and 256, got {args.jobs}", field="--jobs")
    if core_plan(args.jobs, args.cores) is None:
        print(f"warning: --jobs {args.jobs} x --cores {args.cores} exceed the {len(usable_cores())} usable cores: "
              "jobs share cores, so their timings (fit, latency, throughput) are inflated", file=sys.stderr)
    return args.jobs


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _check_common(args: argparse.Namespace) -> None:
    """The numeric options run, stream and scale share (those each has), then the data cache folder."""
    from bench.tasks import cache_dir

    day = 86_400.0
    for option, low, high, kw in [("seeds", 1, 1000, {}), ("cores", 1, 1024, {}),
                                  ("budget", 0, day, {"low_open": True, "unit": "s"}),
                                  ("update_budget", 0, day, {"low_open": True, "unit": "s"}),
                                  ("time_margin", 0, day, {"low_open": True, "unit": "s"}),
                                  ("time_limit", 0, 7 * day, {"low_open": True, "unit": "s"}),
                                  ("memory_limit_gb", 0, 1e5, {"low_open": True, "unit": "GB"}),
                                  ("retrain_every", 1, 1e6, {}), ("window", 1, 1e6, {}),
                                  ("features", 1, 100_000, {}), ("seed", 0, 2**32 - 1, {})]:
        if hasattr(args, option):
            check_number(getattr(args, option), "--" + option.replace("_", "-"), low, high, **kw)
    check_writable_folder(cache_dir(), "data cache folder", "make it writable or set BENCH_CACHE_DIR to a "
                          "writable folder", field="BENCH_CACHE_DIR")


def cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from bench.tasks import all_tasks, cached_shape, tasks_dir

    table = Table(box=None)
    if args.what == "tasks":
        for col in ("name", "kind", "rows", "features", "metric", "source"):
            table.add_column(col, justify="right" if col in ("rows", "features") else "left")
        for task in all_tasks():
            shape = cached_shape(task)
            rows, feats = (f"{shape[0]:,}", str(shape[1])) if shape else ("?", "?")
            table.add_row(task.name, task.kind, rows, feats, task.metric, task.source_label)
    elif args.what == "suites":
        from bench import safe_yaml

        table.add_column("suite")
        table.add_column("tasks")
        for path in sorted((tasks_dir() / "suites").glob("*.yaml")):
            table.add_row(path.stem, ", ".join(map(str, safe_yaml.load(path).get("tasks", []))))
    else:
        from bench.discovery import available, source_file, technology_of
        from bench.measure import code_effort

        for col in ("pipeline", "technology", "lloc", "file"):
            table.add_column(col)
        for name in available():
            effort = code_effort(source_file(name))
            table.add_row(name, technology_of(name), f"{effort['lloc']:.0f}", str(source_file(name)))
    Console().print(table)
    if args.what == "tasks" and any(cached_shape(t) is None for t in all_tasks()):
        print("? = not loaded yet: rows and features are filled in once a run has loaded the task.")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    import subprocess

    from bench import tracking

    check_number(args.port, "--port", 1, 65535)
    uri = tracking.resolve_uri(args.tracking_uri)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host} exposes the UI (and every artifact) to the network",
              file=sys.stderr)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", args.host,
           "--port", str(args.port), "--workers", "1"]
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    tracking.check_store(uri)  # create the store here, so the server never races a bench run to it
    print(f"MLflow UI on http://{args.host}:{args.port} over {uri} (Ctrl-C stops it)", flush=True)
    server = subprocess.Popen(cmd, env=env, start_new_session=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:  # the server's own workers too: nothing keeps listening after bench ui ends
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait()


def cmd_matrix(args: argparse.Namespace) -> int:
    from bench import report, store, tracking
    from bench.analysis import build
    from bench.analysis.profiles import load_profile, with_network_rtt

    check_number(args.network_rtt_ms, "--network-rtt-ms", 0, 60_000, unit="ms")
    formats = report.check_formats(args.format)
    profile = with_network_rtt(load_profile(args.profile), args.network_rtt_ms)
    uri = tracking.resolve_uri(args.tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise BenchError(f"no MLflow store at {uri}; run `bench run` first or give --tracking-uri",
                         field="--tracking-uri")
    task_names = [t.name for t in _select_tasks(args.suite, args.tasks)] if (args.suite or args.tasks) else None
    logger = report.MatrixRunLogger(uri, args.out, enabled=not args.no_log, wait=args.wait)
    if error := logger.previous_failure():
        print(f"warning: the previous `bench matrix` into {args.out} did not log its MLflow run: {error}",
              file=sys.stderr)
    runs = store.read_runs(uri, tasks=task_names, pipelines=args.pipelines)
    if runs.empty:
        raise BenchError(f"no runs in {uri} for this selection; run `bench run` first or widen --tasks/"
                         "--pipelines", field="--tracking-uri")
    result = build(runs, profile)
    meta = report.describe(runs, result, uri=uri, suite=args.suite, tasks=task_names,
                           pipelines=args.pipelines, ui_url=args.ui_url)
    written = report.export(result, meta, formats, args.out)
    print(report.console_summary(result, meta))
    for path in written:
        print(f"wrote {path}")
    if message := logger.log(result, meta, written):
        print(message)
    return 0


def _execute(args: argparse.Namespace, jobs: list, config, on_event) -> list:
    """Run the jobs with the executor the flags ask for; print the speed-up of a parallel run."""
    from bench.execution import executors

    executor = args.executor or ("dask" if args.scheduler or (args.workers or 1) > 1 else "local")
    workers = args.workers or (executors.default_workers(config.threads) if executor == "dask" else 1)
    outcomes = executors.run_with_executor(jobs, config, on_event, executor=executor, workers=workers,
                                           scheduler=args.scheduler, pin=not args.no_pin)
    if executor == "dask" and executors.LAST_REPORT and executors.LAST_REPORT.jobs:
        print(executors.LAST_REPORT.line())
    return outcomes


def cmd_check(args: argparse.Namespace) -> int:
    from bench.measure import thread_env

    for name, value in thread_env(1).items():  # before any framework loads, as in a job
        os.environ.setdefault(name, value)
    from bench import testing

    bad = [k for k in args.kinds if k not in testing.KINDS]
    if bad or not args.kinds:
        raise BenchError(f"unknown kind {bad[0] if bad else ''!r}; expected some of {', '.join(testing.KINDS)}",
                         field="--kinds")
    check_number(args.budget, "--budget", 0, 3600, low_open=True, unit="s")
    results = testing.check_pipeline(args.pipeline, kinds=tuple(args.kinds), budget_s=args.budget,
                                     on_result=lambda r: print(r.line(), flush=True))
    failed = [r.name for r in results if r.failed]
    passed = sum(r.status == "PASS" for r in results)
    print(f"{passed} passed, {len(failed)} failed, {len(results) - passed - len(failed)} skipped"
          + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def cmd_server(args: argparse.Namespace) -> int:
    from bench import server

    if warning := server.exposure_warning(args.host):
        print(warning, file=sys.stderr)
    store = server.absolute_store(args.backend_store_uri)
    print(f"MLflow tracking server on http://{args.host}:{args.port} over {store}, artifacts in "
          f"{args.artifacts_destination}; log to it with: bench run --tracking-uri "
          f"http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    return server.serve(store, args.artifacts_destination, args.host, args.port)


def cmd_scale(args: argparse.Namespace) -> int:
    import psutil

    from bench import scale, tracking

    if bool(args.task) == bool(args.synthetic):
        raise BenchError("give --task or --synthetic", field="--task")
    _check_common(args)
    tracking.validate_store(tracking.resolve_uri(args.tracking_uri))
    sizes = scale.parse_rows(args.rows)
    pipelines = _select_pipelines(args.pipelines)
    if args.synthetic:
        task = scale.synthetic_task(args.synthetic, sizes, args.features, args.seed)
    else:
        task = _select_tasks(None, [args.task])[0]
    uri = tracking.resolve_uri(args.tracking_uri)
    tracking.check_store(uri)
    sweep = scale.run_sweep(task, pipelines, sizes, uri, seed=args.seed, budget_s=args.budget, threads=args.cores,
                            time_limit_s=args.time_limit, on_point=scale.print_point,
                            memory_limit_mb=(args.memory_limit_gb * 1024 if args.memory_limit_gb
                                             else 0.6 * psutil.virtual_memory().total / 2**20))
    scale.print_report(sweep)
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    from bench import stream, tracking

    strategies = stream.parse_strategies(args.strategies)
    _check_common(args)
    tracking.validate_store(tracking.resolve_uri(args.tracking_uri))
    pipelines = _select_pipelines(args.pipelines)
    task = _select_tasks(None, [args.task])[0]
    uri = tracking.resolve_uri(args.tracking_uri)
    tracking.check_store(uri)
    config = stream.StreamConfig(uri, budget_s=args.budget, update_budget_s=args.update_budget,
                                 retrain_every=args.retrain_every, window=args.window, threads=args.cores,
                                 seeds=args.seeds, time_margin_s=args.time_margin, out=args.out)
    if args.memory_limit_gb:
        config.memory_limit_mb = args.memory_limit_gb * 1024
    signal.signal(signal.SIGTERM, _raise_interrupt)
    outcomes = stream.run_sweep(task, pipelines, strategies, config, on_job=stream.print_job)
    stream.print_table(task.name, outcomes)
    command = "bench stream " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["stream"] else sys.argv[1:])
    for path in stream.write_outputs(task, outcomes, config, command):
        print(f"wrote {path}")
    print(f"logged to MLflow experiment 'stream-{task.name}' (period as the step; kind=stream runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
