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
