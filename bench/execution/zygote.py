"""A warm parent: imports one pipeline's framework once, then forks a child per request.

Started by :mod:`bench.execution.pool` as ``python -m bench.execution.zygote PIPELINE`` with the thread
environment already pinned, so every native pool is sized before numpy or the framework loads, exactly as a
fresh worker would be. It imports and *runs nothing* (no thread pool is started, no model built), which is
what makes forking it safe for torch, TensorFlow and OpenMP.

Protocol, one JSON object a line. In (stdin): ``{"id": N, "entry": "module:function", "folder": DIR}``.
Out (stdout): ``{"ready": true, "import_s": S}`` once warm (or ``{"error": ...}`` and exit), then
``{"id": N, "pid": P}`` per fork and ``{"pid": P, "status": EXIT_CODE}`` when that child ends (negative:
killed by that signal). End of stdin (the supervisor exited or died) kills every child and ends the zygote.

Each child leads its own process group (the supervisor kills the group), dies with the zygote
(``PR_SET_PDEATHSIG``), pins itself to the cores its spec names, writes its output to ``child.log`` in its
folder and leaves with ``os._exit``, so nothing of the zygote (atexit hooks, buffers) runs twice.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import sys
import threading
import time
from pathlib import Path

#: Modules every job imports, loaded before the pipeline's own framework.
COMMON_IMPORTS = ("numpy", "pandas", "psutil", "pyarrow.parquet", "threadpoolctl", "sklearn.metrics",
                  "bench.execution.worker", "bench.measure", "bench.metrics", "bench.splits", "bench.tasks",
                  "bench.execution.child", "bench.execution.coldstart")
#: MLflow's flavour module per technology: the child writes the flavour model, the supervisor logs it.
FLAVOUR_IMPORTS = {"sklearn": "mlflow.sklearn", "flaml": "mlflow.sklearn", "pytorch": "mlflow.pytorch",
                   "keras": "mlflow.keras"}


def _send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def warm_up(pipeline: str) -> float:
    """Import what every job of ``pipeline`` needs; returns the seconds it took."""
    import importlib

    t0 = time.perf_counter()
    for name in COMMON_IMPORTS:
        importlib.import_module(name)
    from bench.discovery import load_module

    module = load_module(pipeline)
    flavour = FLAVOUR_IMPORTS.get(getattr(module.Pipeline, "technology", ""))
    if flavour:
        with contextlib.suppress(Exception):  # no flavour model then; the job records why
            importlib.import_module(flavour)
            importlib.import_module("mlflow.pyfunc")  # imported lazily by the first save_model otherwise
    # Move everything imported so far out of the collector's reach: a child's gc.collect() then skips it
    # (fast) and never writes to those pages (no copy-on-write of the whole heap in every child).
    gc.collect()
    gc.freeze()
    return time.perf_counter() - t0


def _child(entry: str, folder: Path, zygote_pid: int) -> None:
    """In the forked child: detach, make sure it dies with the zygote, run the entry, never return."""
    from bench.execution import child

    code = 1
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        child.die_with_parent()
        if os.getppid() != zygote_pid:
            os._exit(1)
        log = os.open(folder / "child.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        child.set_affinity(child.read_spec(folder).get("cores"))
        code = child.run_entry(entry, folder)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    """The request loop: fork on each request, report each child's end, stop at end of input."""
    zygote_pid = os.getpid()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    children: set[int] = set()
    stdin = sys.stdin.buffer
    buffered = b""
    try:
        while True:
            readable, _, _ = select.select([stdin.fileno(), wake_r], [], [], 1.0)
            if wake_r in readable:
                os.read(wake_r, 4096)
            if stdin.fileno() in readable:
                chunk = os.read(stdin.fileno(), 65536)
                if not chunk:
                    return
                buffered += chunk
                while b"\n" in buffered:
                    line, buffered = buffered.split(b"\n", 1)
                    request = json.loads(line)
                    pid = os.fork()
                    if pid == 0:
                        _child(request["entry"], Path(request["folder"]), zygote_pid)
                    children.add(pid)
                    _send({"id": request["id"], "pid": pid})
            _reap(children)
    finally:
        for pid in children:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _reap(children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _send({"pid": pid, "status": os.waitstatus_to_exitcode(status)})


def _exit_when_orphaned(stop: threading.Event) -> None:
    """While the zygote imports, nothing reads its stdin: end it as soon as the supervisor's end of the pipe
    closes (the supervisor exited or was SIGKILLed), so no warm parent outlives it by its import time.
    POLLHUP is reported without reading, so a request that is already waiting stays in the pipe."""
    poller = select.poll()
    poller.register(sys.stdin.fileno(), select.POLLHUP)
    while not stop.is_set():
        if any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(100)):
            os._exit(1)


def main(pipeline: str) -> int:
    stop = threading.Event()
    watchdog = threading.Thread(target=_exit_when_orphaned, args=(stop,), daemon=True)
    watchdog.start()
    try:
        import_s = warm_up(pipeline)
    except BaseException as exc:  # noqa: BLE001 - the supervisor falls back to fresh children
        _send({"error": f"{type(exc).__name__}: {exc}"[:2000]})
        return 1
    finally:  # no thread may be running when serve() forks
        stop.set()
        watchdog.join()
    _send({"ready": True, "import_s": import_s})
    serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
