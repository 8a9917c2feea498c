"""Deliberately broken pipeline: ignores its budget and sleeps."""

import time

from bench.api import BasePipeline


class Pipeline(BasePipeline):
    technology = "sklearn"

    def fit(self, X, y, task):
        time.sleep(3600)
        return self
