"""``bench``: thin command line over the harness. Imports no framework at start-up.

Errors a user can fix (``BenchError``) print as one line naming the file, field and fix, and exit with
code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

from bench.commands import raise_interrupt
from bench.errors import BenchError

EXIT_USAGE = 2


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


class _VersionAction(argparse.Action):
    """Versions from package metadata, read only when asked: nothing is imported, so it answers at once."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from bench import __version__
        from bench.environment import versions

        parts = [f"{name} {version}" for name, version in versions().items()]
        print(f"bench {__version__} ({', '.join(parts)})")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="AutoML versus hand-coded pipelines, measured "
                                     "side by side on the same tasks and hardware, tracked in MLflow.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="print the harness's version and the installed framework versions, then exit")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a suite: tasks x pipelines x seeds, each job in its own process")
    run.add_argument("--suite", help="tasks/suites/<name>.yaml (quick, standard)")
    run.add_argument("--tasks", type=_csv, help="task names or paths to task YAML files, comma-separated")
    run.add_argument("--data", type=Path, help="your own .csv or .parquet file instead of --suite/--tasks (with "
                     "--target): kind, metric, categorical and date columns inferred and printed, the task file "
                     "written to OUT/tasks/<name>.yaml")
    run.add_argument("--target", help="with --data: the column to predict")
    run.add_argument("--kind", help="with --data: binary, multiclass or regression (default: inferred)")
    run.add_argument("--metric", help="with --data: the primary metric (default: the kind's first)")
    run.add_argument("--positive-label", help="with --data, binary: the positive class (default: yes/true/1 or "
                     "the minority class)")
    run.add_argument("--name", help="with --data: the task's name (default: the file's name)")
    run.add_argument("--out", type=Path, default=Path("results"), help="with --data: folder of the generated "
                     "tasks/<name>.yaml (default results/)")
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
    mx.add_argument("--price-cpu-hour", type=float, help="dollars per vCPU-hour for the money criteria (default "
                    "0.04048: AWS Fargate Linux/x86 on-demand, us-east-1)")
    mx.add_argument("--price-gb-hour", type=float, help="dollars per GB-hour of memory (default 0.004445: the same)")
    mx.add_argument("--format", type=_csv, default=["csv", "md", "html"],
                    help="csv,md,json,html (default csv,md,html: the HTML page carries the plots)")
    mx.add_argument("--out", type=Path, default=Path("results"), help="folder for the files (default results/)")
    mx.add_argument("--tracking-uri")
    mx.add_argument("--ui-url", default="http://127.0.0.1:5000", help="MLflow UI base for the compare-runs links")
    mx.add_argument("--no-log", action="store_true", help="do not log the files as an MLflow run in 'matrix'")
    mx.add_argument("--no-register", action="store_true", help="do not register the winner's model per task in "
                    "the MLflow model registry (model <task>, alias <profile>-winner)")
    mx.add_argument("--wait", action="store_true", help="wait until the files are logged as an MLflow run "
                    "(default: a detached process logs them, its outcome in OUT/matrix_run.json)")

    rs = sub.add_parser("rescore", help="recompute a metric for stored runs from their kept test-set predictions "
                        "(no refitting); printed and logged on each run as rescore_<metric>")
    rs.add_argument("--metric", required=True, help="roc_auc, log_loss, accuracy, balanced_accuracy, f1, brier "
                    "(binary), rmse, mae, r2, mape (regression)")
    rs.add_argument("--suite", help="only the tasks of this suite")
    rs.add_argument("--tasks", type=_csv, help="only these tasks, comma-separated")
    rs.add_argument("--pipelines", type=_csv, help="only these pipelines, comma-separated")
    rs.add_argument("--tracking-uri")
    rs.add_argument("--no-log", action="store_true", help="print only; log nothing onto the runs")

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

    dp = sub.add_parser("deploy", help="measure finished runs as deployed: exported to an edge runtime (ONNX, "
                        "LiteRT) and served by MLflow's model server under open-loop load; logged onto the runs")
    dp.add_argument("--targets", type=_csv, default=["edge", "service"], help="edge,service (default both)")
    dp.add_argument("--suite", help="the runs of this suite's tasks (default quick)")
    dp.add_argument("--tasks", type=_csv, help="task names or paths to task YAML files, comma-separated")
    dp.add_argument("--pipelines", type=_csv, help="pipeline ids (default: all)")
    dp.add_argument("--seeds", type=int, help="seeds 0..N-1 (default: every seed in the store)")
    dp.add_argument("--force", action="store_true", help="measure runs that already carry the figures again")
    dp.add_argument("--rates", type=_csv, default=["5", "20", "50", "100"],
                    help="service: target request rates (Poisson arrivals per second), comma-separated")
    dp.add_argument("--level-s", type=float, default=10.0, help="service: seconds per rate level (default 10)")
    dp.add_argument("--level-requests", type=int, default=1000, help="service: most requests per level")
    dp.add_argument("--objective-ms", type=float, default=50.0,
                    help="service: the p99 objective for the highest sustainable rate (default 50 ms)")
    dp.add_argument("--cold-start-repeats", type=int, default=3, help="edge: fresh runtime processes (median)")
    dp.add_argument("--latency-n", type=int, default=1000, help="edge: timed single-row calls (>= 1000 for a p99)")
    dp.add_argument("--tracking-uri")

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
        signal.signal(signal.SIGTERM, raise_interrupt)
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        from bench import commands

        return getattr(commands, f"cmd_{args.command}")(args)
    except BenchError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; the running job is marked killed. Rerun the same command "
              "to finish the rest.", file=sys.stderr)
        _forget_interrupt()
        return 130


def _forget_interrupt() -> None:
    """Let ``python -m bench.cli`` exit 130 after a handled interrupt, not by SIGINT.

    CPython (3.11) remembers a KeyboardInterrupt that escaped an ``exec`` of a string, even once it is caught:
    imports do such execs (dataclasses builds ``__init__``/``__repr__`` that way), so a SIGTERM during start-up
    often lands in one, and ``python -m`` then ends the process by SIGINT (exit status -2 to a parent; a shell
    loop running it stops). An ``exec`` of a string that completes clears what it remembered.
    """
    exec("")


def _finish(code: int) -> int:
    """The command has returned, its runs are recorded: a SIGTERM now must not turn a clean end into death by
    signal. CPython restores default handlers while it finalises (hundreds of ms once torch or TensorFlow is
    loaded), so a SIGTERM landing then would kill the process with status -15; blocked, it is moot."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    return code


def entry() -> int:
    """The ``bench`` console script and ``python -m bench.cli``."""
    return _finish(main())


if __name__ == "__main__":
    sys.exit(entry())
