"""Start a child, hold it to its limits, say how it ended.

A child runs one entry function (``"package.module:function"``, called with the child's folder) and talks
to its supervisor through files only: ``spec.json`` (what to do), ``result.json`` (written by the entry),
``error.json`` (an exception, with its traceback), ``child.log`` (its stdout and stderr). Files survive a
crash of either side, so nothing already measured is lost.

Two ways to start the same entry: *fresh* (``python -m bench.execution.child ENTRY DIR``: a new interpreter,
for probes that must pay the imports) or *warm* (forked by a :mod:`~bench.execution.zygote` that already
imported the framework). Both end in :func:`supervise` and :func:`classify`, so every kind of run gets the
same failure causes: exception, timeout, memory, crash (a fatal signal), killed (SIGKILL from outside),
interrupted (the suite was stopped) and abandoned (set by the claim protocol when an owner vanished).

The supervisor watches the child's real memory (RSS of its process tree), not its address space: TensorFlow
and torch map far more virtual memory than they use, so ``RLIMIT_AS`` would kill healthy jobs.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procfs import tree_rss

POLL_S = 0.05  # how soon the end of a child is noticed (cheap: a poll)
MEMORY_POLL_S = 0.1  # how often its process tree's RSS is summed (a /proc scan: ~1.6 ms of supervisor CPU)
CRASH_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE", "SIGILL")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Limits:
    """Hard limits of one child: wall seconds and resident memory of its process tree."""

    time_s: float
    memory_mb: float


@dataclass
class End:
    """How a child ended: ``cause`` is empty for success, else one of the failure causes."""

    cause: str = ""
    message: str = ""
    trace: str = ""
    returncode: int = 0
    result: dict[str, Any] | None = None
    wall_s: float = 0.0
    folder: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.cause and self.result is not None


@dataclass
class ChildHandle:
    """A running child: its pid, how to ask whether it ended, and its folder."""

    pid: int
    folder: Path
    poll: Callable[[], int | None]  # the exit code (negative: killed by that signal), None while running
    started: float = field(default_factory=time.monotonic)


def write_spec(folder: Path, spec: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec, indent=1, default=str))


def read_spec(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "spec.json").read_text())


def write_result(folder: Path, result: dict[str, Any]) -> None:
    """Atomically, so a supervisor never reads half a result."""
    tmp = folder / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(folder / "result.json")


# ------------------------------------------------------------------ inside the child


def run_entry(entry: str, folder: Path) -> int:
    """Call the entry function; an exception becomes ``error.json`` with its traceback. Returns the exit code."""
    try:
        module_name, _, function = entry.partition(":")
        getattr(importlib.import_module(module_name), function)(folder)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the record, with its traceback
        (folder / "error.json").write_text(json.dumps({
            "type": type(exc).__name__, "message": str(exc)[:2000], "traceback": traceback.format_exc()}))
        return 1
    return 0


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies: no orphan ever measures or writes on."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def set_affinity(cores: list[int] | None) -> None:
    if cores:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, cores)


def _fresh_main(argv: list[str]) -> int:
    entry, folder = argv[0], Path(argv[1])
    die_with_parent()
    if os.getppid() == 1:  # the supervisor died before we could ask
        return 1
    set_affinity(read_spec(folder).get("cores"))
    return run_entry(entry, folder)


# ------------------------------------------------------------------ the supervising side


def start_fresh(entry: str, folder: Path, env: dict[str, str]) -> ChildHandle:
    """A new interpreter running ``entry``: for what must pay its own imports (cold-start probes)."""
    log = (folder / "child.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "bench.execution.child", entry, str(folder)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return ChildHandle(proc.pid, folder, proc.poll)


def supervise(child: ChildHandle, limits: Limits, stop: threading.Event | None = None,
              heartbeat: Callable[[], bool] | None = None, heartbeat_s: float = 5.0) -> str:
    """Wait for the child; kill it on time-out, memory excess, a stop request or a lost claim; say which.

    Returns "" when the child ended by itself. ``heartbeat`` is called every ``heartbeat_s`` (renewing the
    job's claim); when it returns False the claim is no longer ours and the child is killed ("abandoned").
    Any exception (Ctrl-C) kills the child's process group before it propagates.
    """
    deadline = child.started + limits.time_s
    limit_bytes = limits.memory_mb * 2**20
    next_beat = time.monotonic() + heartbeat_s
    next_memory = 0.0
    try:
        while child.poll() is None:
            now = time.monotonic()
            if now > deadline:
                return kill(child, "timeout")
            if now >= next_memory and limit_bytes != float("inf"):
                next_memory = now + MEMORY_POLL_S
                if tree_rss(child.pid) > limit_bytes:
                    return kill(child, "memory")
            if stop is not None and stop.is_set():
                return kill(child, "interrupted")
            if heartbeat is not None and now >= next_beat:
                next_beat = now + heartbeat_s
                if not heartbeat():
                    return kill(child, "abandoned")
            time.sleep(POLL_S)
    except BaseException:
        kill(child, "interrupted")
        raise
    return ""


def kill(child: ChildHandle, cause: str) -> str:
    """SIGKILL the child's process group (it leads its own), then wait until it has ended."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(child.pid, signal.SIGKILL)  # not yet its own group leader
    deadline = time.monotonic() + 30
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return cause


def classify(child: ChildHandle, cause: str, limits: Limits) -> End:
    """Read the child's folder and exit code into an :class:`End`; the only place causes are decided."""
    folder, code = child.folder, child.poll()
    code = 0 if code is None else code
    wall = time.monotonic() - child.started
    result_file, error_file = folder / "result.json", folder / "error.json"
    log_tail = tail(folder / "child.log")
    if not cause and code == 0 and result_file.exists():
        return End(returncode=code, result=json.loads(result_file.read_text()), wall_s=wall, folder=folder)
    end = End(cause=cause, returncode=code, trace=log_tail, wall_s=wall, folder=folder)
    if result_file.exists():  # measured before it failed: keep what was measured
        with contextlib.suppress(ValueError):
            end.result = json.loads(result_file.read_text())
    if cause == "timeout":
        end.message = f"killed after the time limit of {limits.time_s:.0f} s"
    elif cause == "memory":
        end.message = f"killed when its memory (RSS) passed the limit of {limits.memory_mb:.0f} MB"
    elif cause == "interrupted":
        end.message = "the suite was interrupted"
    elif cause == "abandoned":
        end.message = "its claim was taken over by another process (lease expired); stopped without recording"
    elif error_file.exists():
        error = json.loads(error_file.read_text())
        end.cause, end.message, end.trace = "exception", f"{error['type']}: {error['message']}", error["traceback"]
    elif code < 0:
        name = signal.Signals(-code).name
        end.cause = "crash" if name in CRASH_SIGNALS else "killed"
        end.message = f"the child process died of {name}"
    else:
        end.cause, end.message = "crash", f"the child process exited with code {code}"
    return end


def tail(path: Path, limit: int = 20_000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", errors="replace")


if __name__ == "__main__":
    sys.exit(_fresh_main(sys.argv[1:]))
