"""The Dagster code location: movie_plots -> style_banks -> keyframes -> qa_pairs -> eval_scores."""

import dagster as dg

from .assets import ASSETS, CHECKS
from .resources import Workspace

defs = dg.Definitions(assets=ASSETS, asset_checks=CHECKS, resources={"workspace": Workspace()})
