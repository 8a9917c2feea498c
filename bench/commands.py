"""What each ``bench`` subcommand does, behind the thin parser of :mod:`bench.cli`.

Each ``cmd_*`` takes the parsed arguments, checks them before anything is written (a ``BenchError`` names the
option or file and the fix) and imports what it needs only when it runs, so ``bench --help`` stays fast.
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


def raise_interrupt(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: every command's cleanups run and the exit code is 130."""
    raise KeyboardInterrupt


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
    given = [o for o in ("target", "kind", "metric", "positive_label", "name") if getattr(args, o) is not None]
    if given and not args.data:
        raise BenchError("only with --data FILE", field="--" + given[0].replace("_", "-"))
    check_number(args.latency_n, "--latency-n", 1, 10_000_000)
    check_number(args.cold_start_repeats, "--cold-start-repeats", 1, 1000)
    check_number(args.batch_rows, "--batch-rows", 1, 100_000_000)
    check_number(args.workers, "--workers", 1, 1024)
    check_number(args.jobs, "--jobs", 1, 256)
    check_number(args.latency_cap_s, "--latency-cap-s", 0, 3600, low_open=True, unit="s")
    tracking.validate_store(tracking.resolve_uri(args.tracking_uri))  # a bad URI or store fails before any work
    tasks = _data_task(args) if args.data else _select_tasks(args.suite, args.tasks)
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
    signal.signal(signal.SIGTERM, raise_interrupt)
    started = time.monotonic()
    with SuiteProgress(len(jobs)) as progress:
        outcomes = _execute(args, jobs, config, progress.on_event)
    from bench.execution.job import import_probe_seconds

    slots = config.jobs if config.executor == "local" else 1  # Dask workers probe in their own processes
    print_summary(outcomes, uri, time.monotonic() - started, slots, import_probe_seconds())
    print(f"this invocation's runs in the MLflow UI: search tags.invocation = '{config.invocation}'")
    failed = [o.job.label for o in outcomes if o.status == "failed"]
    if failed:  # a CI job or a shell script must see it: exit 1, naming them
        print(f"{len(failed)} job(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _data_task(args: argparse.Namespace) -> list:
    """``--data FILE --target COL``: the generated, validated task file, and what was inferred, printed."""
    from bench.tasks import load_task
    from bench.tasks.from_data import task_from_data

    if args.suite or args.tasks:
        raise BenchError("give --data or --suite/--tasks, not both", field="--data")
    if not args.target:
        raise BenchError("--data needs --target, the column to predict", field="--target")
    path, notes = task_from_data(args.data, args.target, args.out / "tasks", kind=args.kind, metric=args.metric,
                                 positive_label=args.positive_label, name=args.name)
    print(f"{args.data}: inferred", *(f"  {note}" for note in notes), f"wrote {path} (rerun with: bench run "
          f"--tasks {path})", sep="\n", flush=True)
    return [load_task(path)]


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
    for name, experiment in tracking.training_experiments(uri).items():
        print(f"  {name}: {tracking.experiment_url(f'http://{args.host}:{args.port}', experiment)}")
    print("  (MLflow's UI opens experiments on GenAI pages until 'Model training' is chosen at its top left; "
          "the browser remembers the choice, and these links choose it)", flush=True)
    server = subprocess.Popen(cmd, env=env, start_new_session=True)
    signal.signal(signal.SIGTERM, raise_interrupt)
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
    from bench.analysis import build, cost
    from bench.analysis.profiles import load_profile, with_network_rtt

    check_number(args.network_rtt_ms, "--network-rtt-ms", 0, 60_000, unit="ms")
    price = cost.prices(args.price_cpu_hour, args.price_gb_hour)
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
    result = build(runs, profile, price)
    meta = report.describe(runs, result, uri=uri, suite=args.suite, tasks=task_names,
                           pipelines=args.pipelines, ui_url=args.ui_url)
    written = report.export(result, meta, formats, args.out)
    print(report.console_summary(result, meta))
    for path in written:
        print(f"wrote {path}")
    if message := logger.log(result, meta, written):
        print(message)
    if not args.no_register and result.decision.winner:
        from bench import registry

        for registration in registry.register_winner(uri, runs, profile.name, result.decision.winner):
            print(registration.line())
    elif not args.no_register:
        print(f"nothing registered: the profile '{profile.name}' has no winner")
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from bench import rescore, tracking

    uri = tracking.resolve_uri(args.tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise BenchError(f"no MLflow store at {uri}; run `bench run` first or give --tracking-uri",
                         field="--tracking-uri")
    task_names = [t.name for t in _select_tasks(args.suite, args.tasks)] if (args.suite or args.tasks) else None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    rows = rescore.rescore_runs(uri, args.metric, task_names, args.pipelines, log=not args.no_log)
    rescore.print_rescored(rows, args.metric)
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


def cmd_deploy(args: argparse.Namespace) -> int:
    from bench import tracking
    from bench.deploy.driver import TARGETS, DeployConfig, deploy

    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown or not args.targets:
        raise BenchError(f"unknown target {', '.join(unknown) or '(none)'}; give edge, service or edge,service",
                         field="--targets")
    try:
        rates = [float(r) for r in args.rates]
    except ValueError:
        raise BenchError(f"rates must be numbers, got {','.join(args.rates)}", field="--rates") from None
    for rate in rates or [0.0]:
        check_number(rate, "--rates", 0, 100_000, low_open=True, unit="rps")
    check_number(args.level_s, "--level-s", 0, 3600, low_open=True, unit="s")
    check_number(args.level_requests, "--level-requests", 1, 10_000_000)
    check_number(args.objective_ms, "--objective-ms", 0, 3_600_000, low_open=True, unit="ms")
    check_number(args.cold_start_repeats, "--cold-start-repeats", 1, 1000)
    check_number(args.latency_n, "--latency-n", 1, 10_000_000)
    if args.seeds is not None:
        check_number(args.seeds, "--seeds", 1, 1000)
    uri = tracking.resolve_uri(args.tracking_uri)
    tracking.validate_store(uri)
    tasks = _select_tasks(args.suite, args.tasks)
    pipelines = _select_pipelines(args.pipelines) if args.pipelines else None
    config = DeployConfig(targets=args.targets, force=args.force, repeats=args.cold_start_repeats, rates=rates,
                          level_s=args.level_s, level_requests=args.level_requests, objective_ms=args.objective_ms)
    config.latency["n"] = args.latency_n
    config.latency["min_n"] = min(config.latency["min_n"], args.latency_n)
    signal.signal(signal.SIGTERM, raise_interrupt)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    rows = deploy(uri, tasks, pipelines, list(range(args.seeds)) if args.seeds else None, config)
    print(f"{len(rows)} run(s) measured")
    return 0


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
    signal.signal(signal.SIGTERM, raise_interrupt)
    outcomes = stream.run_sweep(task, pipelines, strategies, config, on_job=stream.print_job)
    stream.print_table(task.name, outcomes)
    command = "bench stream " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["stream"] else sys.argv[1:])
    for path in stream.write_outputs(task, outcomes, config, command):
        print(f"wrote {path}")
    print(f"logged to MLflow experiment 'stream-{task.name}' (period as the step; kind=stream runs)")
    return 0
