"""The Dagster code location: movie_plots -> style_banks -> keyframes -> qa_pairs -> eval_scores,
the first four partitioned by movie, and the sensor that keeps the movie partitions in step."""

import dagster as dg

from .assets import ASSETS, CHECKS, SENSORS
from .resources import Workspace

defs = dg.Definitions(assets=ASSETS, asset_checks=CHECKS, sensors=SENSORS, resources={"workspace": Workspace()})
