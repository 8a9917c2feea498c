"""Machine and version facts recorded with every run, read without importing any framework."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

FRAMEWORK_PACKAGES = ("scikit-learn", "flaml", "lightgbm", "xgboost", "torch", "tensorflow-cpu", "keras",
                      "mlflow", "pandas", "numpy", "scipy")


@functools.cache
def versions() -> dict[str, str]:
    """Installed versions from package metadata (cheap: nothing is imported)."""
    out = {"python": platform.python_version()}
    for name in FRAMEWORK_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


@functools.cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def git_revision() -> str:
    """The harness's revision, with '+dirty' when uncommitted changes could have affected the numbers."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, str]:
    import psutil

    return {"cpu_model": cpu_model(), "cpu_count": str(os.cpu_count()),
            "memory_gb": f"{psutil.virtual_memory().total / 2**30:.1f}", "platform": platform.platform(),
            "git_revision": git_revision()}
