"""The chance answerer: picks an option at random (1 in 3 or 4); the floor every other answerer is read against."""

from __future__ import annotations

import random

from ..core.cache import digest
from ..core.plot import QA, MoviePlot


class RandomAnswerer:
    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def answer(self, plot: MoviePlot, qas: list[QA], images=None) -> list[int]:
        rng = random.Random(digest("random-answerer", plot.movie.movie_id, self.seed))
        return [rng.randrange(len(qa.options)) for qa in qas]
