"""Seeded train/test splits, identical for every pipeline of a seed, and their hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.errors import TaskError
from bench.tasks import TaskData

MIN_TRAIN_ROWS = 10


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    test: np.ndarray
    hash: str


def make_split(data: TaskData, seed: int) -> Split:
    """Stratified for classification, so small test sets (penguins: 69 rows) keep every class.

    Row indices only: the hash names the exact rows, so two runs with the same hash saw the same data.
    """
    n = len(data.y)
    test_size = data.task.test_size
    n_test = int(np.ceil(n * test_size))
    rng = np.random.default_rng(seed)
    if data.task.kind == "regression":
        order = rng.permutation(n)
        test = np.sort(order[:n_test])
    else:
        counts = data.y.value_counts()
        if (counts < 2).any():
            rare = counts[counts < 2].index.tolist()
            raise TaskError(f"classes {rare[:5]} have fewer than 2 rows; a stratified split needs 2 per class",
                            file=data.task.path, field="target")
        test_parts = []
        codes = pd.factorize(data.y, sort=True)[0]
        for code in range(codes.max() + 1):
            members = np.flatnonzero(codes == code)
            take = max(1, int(round(len(members) * test_size)))
            take = min(take, len(members) - 1)
            test_parts.append(rng.choice(members, size=take, replace=False))
        test = np.sort(np.concatenate(test_parts))
    train = np.setdiff1d(np.arange(n), test)
    if len(train) < MIN_TRAIN_ROWS or len(test) < 2:
        raise TaskError(f"{n} rows give {len(train)} training and {len(test)} test rows; at least "
                        f"{MIN_TRAIN_ROWS} and 2 are needed", file=data.task.path, field="source")
    digest = hashlib.sha256(train.astype(np.int64).tobytes() + b"|" + test.astype(np.int64).tobytes())
    return Split(train=train, test=test, hash=digest.hexdigest()[:16])
