"""Deliberately broken pipeline: allocates (and touches) memory without bound."""

import time

import numpy as np

from bench.api import BasePipeline


class Pipeline(BasePipeline):
    technology = "sklearn"

    def fit(self, X, y, task):
        hoard = []
        for _ in range(200):
            hoard.append(np.ones(64 * 2**20 // 8))  # 64 MiB of real, touched pages per step
            time.sleep(0.05)
        return self
