"""The job folders' root in the system temp folder, named after its owner so leftovers can be swept.

A ``bench run`` removes its root when it ends, but a SIGKILL (a user, the OOM killer, a CI timeout) ends it
before any ``finally`` runs, and each root can hold tens of MB of models and logs. The root's name records the
owning process and its start time (``bench-jobs-<pid>-<start ticks>-<random>``), so the next ``bench run`` on
the machine removes roots whose owner is gone, and never one whose owner still runs: a pid alone could have
been reused by an unrelated process since, the pair (pid, start time) cannot.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

PREFIX = "bench-jobs-"
_OWNED = re.compile(rf"^{PREFIX}(\d+)-(\d+)-")
#: Roots from before owners were recorded in the name: removed once nothing can still be writing them.
LEGACY_AGE_S = 24 * 3600


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
    return int(stat.rsplit(")", 1)[1].split()[19])


def make_root() -> Path:
    """A fresh root owned by this process, after sweeping the roots of owners that are gone."""
    sweep()
    me = os.getpid()
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{me}-{start_ticks(me) or 0}-"))


def sweep(temp_dir: Path | None = None) -> list[Path]:
    """Remove the roots whose owner (pid and start time) no longer runs; returns what was removed."""
    removed = []
    for path in Path(temp_dir or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        if path.is_dir() and not path.is_symlink() and _abandoned(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _abandoned(path: Path) -> bool:
    owned = _OWNED.match(path.name)
    if owned is None:
        try:
            return time.time() - path.stat().st_mtime > LEGACY_AGE_S
        except OSError:
            return False
    pid, ticks = int(owned.group(1)), int(owned.group(2))
    return start_ticks(pid) != ticks
