"""The `movie_plots` asset: three-level story expansion per theme: movies, characters, substories, tinystories, frames, dialogue and the levels' QA pairs."""

import dagster as dg

from ..core.store import PLOT_TABLES
from ..pipeline.code import code_version
from ..pipeline.steps import write_movie_plots
from ..resources import Workspace
from .common import contract_check, to_result


@dg.asset(group_name="story", deps=[], code_version=code_version("movie_plots"), kinds={"polars"})
def movie_plots(workspace: Workspace) -> dg.MaterializeResult:
    """Three-level story expansion per theme: movies, characters, substories, tinystories, frames, dialogue and the levels' QA pairs."""
    params = workspace.params()
    return to_result(write_movie_plots(workspace.path, params), workspace.path, params.movie_plots)


@dg.asset_check(asset=movie_plots, blocking=True, description="Tables of movie_plots match their pandera schemas.")
def movie_plots_contract(workspace: Workspace) -> dg.AssetCheckResult:
    return contract_check(workspace.path, "movie_plots", PLOT_TABLES)
