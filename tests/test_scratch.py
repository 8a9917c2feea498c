"""Job roots left by a killed ``bench run`` are swept by the next one; a live owner's root never is."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.execution import scratch


def _root(tmp_path, pid: int, ticks: int):
    path = tmp_path / f"{scratch.PREFIX}{pid}-{ticks}-abc123"
    (path / "job").mkdir(parents=True)
    (path / "job" / "model.bin").write_bytes(b"x" * 1000)
    return path


def test_sweep_removes_only_roots_whose_owner_is_gone(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_ticks = scratch.start_ticks(gone.pid)
    gone.wait()
    me = os.getpid()
    mine = _root(tmp_path, me, scratch.start_ticks(me))
    dead = _root(tmp_path, gone.pid, gone_ticks or 1)
    reused = _root(tmp_path, me, scratch.start_ticks(me) + 1)  # same pid, another process's start time
    legacy_old = tmp_path / f"{scratch.PREFIX}q1w2e3r4"
    legacy_new = tmp_path / f"{scratch.PREFIX}z9x8c7v6"
    for legacy in (legacy_old, legacy_new):
        legacy.mkdir()
    old = time.time() - scratch.LEGACY_AGE_S - 60
    os.utime(legacy_old, (old, old))
    unrelated = tmp_path / "bench-matrix-run-1"
    unrelated.mkdir()

    removed = scratch.sweep(tmp_path)

    assert sorted(removed) == sorted([dead, reused, legacy_old])
    assert mine.is_dir() and legacy_new.is_dir() and unrelated.is_dir()
    assert not dead.exists() and not reused.exists() and not legacy_old.exists()


def test_make_root_names_its_owner(tmp_path, monkeypatch):
    monkeypatch.setattr(scratch.tempfile, "tempdir", str(tmp_path))
    root = scratch.make_root()
    try:
        assert root.parent == tmp_path
        assert root.name.startswith(f"{scratch.PREFIX}{os.getpid()}-{scratch.start_ticks(os.getpid())}-")
        assert scratch.sweep(tmp_path) == []  # its owner (this process) runs
    finally:
        root.rmdir()


def test_start_ticks_survives_spaces_and_parentheses_in_the_command_name():
    renames_itself = ("import sys, time\nopen('/proc/self/comm', 'w').write('a ) b (c')\n"
                      "print('ready', flush=True)\ntime.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", renames_itself], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == "a ) b (c"
        ticks = scratch.start_ticks(proc.pid)
        assert isinstance(ticks, int) and ticks > 0
        assert ticks >= scratch.start_ticks(os.getpid())  # started after this test process
    finally:
        proc.kill()
        proc.wait()
    assert scratch.start_ticks(proc.pid) is None


def test_slots_asking_at_once_share_one_root(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from bench.execution.runner import RunConfig

    monkeypatch.setattr(scratch.tempfile, "tempdir", str(tmp_path))
    slow_make_root = scratch.make_root

    def make_root_slowly():  # widen the window two slots used to race through
        time.sleep(0.05)
        return slow_make_root()

    monkeypatch.setattr(scratch, "make_root", make_root_slowly)
    config = RunConfig(tracking_uri="sqlite:///unused.db")
    with ThreadPoolExecutor(8) as pool:
        roots = set(pool.map(lambda _: config.root(), range(8)))
    assert roots == {config.job_root}
    assert [p.name for p in tmp_path.iterdir()] == [config.job_root.name]


def test_a_run_with_nothing_left_to_do_still_sweeps(tmp_path, monkeypatch):
    """The chaos benchmark's finding: after a race, the clean rerun had every job done, made no root, and so
    never swept the killed runner's root."""
    from bench.execution.runner import RunConfig, run_all

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = scratch.start_ticks(gone.pid)
    gone.wait()
    dead = _root(tmp_path, gone.pid, ticks or 1)
    monkeypatch.setattr(scratch.tempfile, "tempdir", str(tmp_path))
    assert run_all([], RunConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")) == []
    assert not dead.exists()
