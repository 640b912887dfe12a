"""Dagster assets, one module per asset; each calls its plain step in ``pipeline/steps.py``.
The per-movie assets are partitioned by movie (``movies.py``) and run their checks in the
same step; ``eval_scores`` reads the whole dataset."""

from .eval_scores import eval_scores, eval_scores_language_bias, eval_scores_oracle_grounded
from .keyframes import keyframes
from .movie_plots import movie_plots
from .movies import MOVIES, movies_sensor
from .qa_pairs import qa_pairs
from .style_banks import style_banks

ASSETS = [movie_plots, style_banks, keyframes, qa_pairs, eval_scores]
CHECKS = [eval_scores_oracle_grounded, eval_scores_language_bias]
SENSORS = [movies_sensor]
__all__ = ["ASSETS", "CHECKS", "MOVIES", "SENSORS"]
