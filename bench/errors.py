"""Errors a user can fix: the CLI prints them on one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class BenchError(Exception):
    """A mistake in the user's input, with where it is and how to fix it."""

    def __init__(self, message: str, *, file: str | Path | None = None, field: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        self.message = message
        where = ": ".join(p for p in (self.file, f"field '{field}'" if field else None) if p)
        super().__init__(f"{where}: {message}" if where else message)


class TaskError(BenchError):
    """An invalid task file or task data."""


def check_number(value: float | int | None, option: str, low: float, high: float, *, low_open: bool = False,
                 unit: str = "") -> None:
    """A numeric option must be finite and within its range: ``nan`` or ``inf`` would silently disable a limit,
    a negative one make every job fail. Raises a BenchError naming the option and the accepted range."""
    import math

    if value is None:
        return
    bad = not math.isfinite(value) or value > high or (value <= low if low_open else value < low)
    if bad:
        lower = f"> {low:g}" if low_open else f">= {low:g}"
        kind = "an integer" if isinstance(value, int) else "a finite number"
        raise BenchError(f"must be {kind} {lower} and <= {high:g}{' ' + unit if unit else ''}, got {value}",
                         field=option)


def check_writable_folder(folder: Path, what: str, fix: str, field: str | None = None) -> None:
    """Make sure ``folder`` can be created and written, creating nothing: a probe file is created and removed in
    it or, if it does not exist yet, in its nearest existing parent (``os.access`` says yes to root even on a
    read-only mount)."""
    import os
    import tempfile

    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, f"{existing} is not a folder")
        fd, probe = tempfile.mkstemp(prefix=".bench-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BenchError(f"cannot write to the {what} {folder} ({exc.strerror or exc}); {fix}", field=field) from None
