"""Deliberately broken pipeline: kills its own process with a segmentation fault."""

import ctypes

from bench.api import BasePipeline


class Pipeline(BasePipeline):
    technology = "sklearn"

    def fit(self, X, y, task):
        ctypes.string_at(0)
        return self
