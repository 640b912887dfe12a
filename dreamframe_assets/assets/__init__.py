"""Dagster assets, one module per asset; each calls its plain step in ``pipeline/steps.py``."""

from .eval_scores import eval_scores, eval_scores_blind, eval_scores_oracle_grounded
from .keyframes import keyframes, keyframes_contract
from .movie_plots import movie_plots, movie_plots_contract
from .qa_pairs import qa_pairs, qa_pairs_contract, qa_pairs_grounded
from .style_banks import style_banks, style_banks_contract

ASSETS = [movie_plots, style_banks, keyframes, qa_pairs, eval_scores]
CHECKS = [
    movie_plots_contract,
    style_banks_contract,
    keyframes_contract,
    qa_pairs_contract,
    qa_pairs_grounded,
    eval_scores_oracle_grounded,
    eval_scores_blind,
]
