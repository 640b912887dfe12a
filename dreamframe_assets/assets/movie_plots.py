"""The `movie_plots` asset: three-level story expansion per theme: movies, characters, substories, tinystories, frames, dialogue and the levels' QA pairs."""

import dagster as dg

from ..resources import Workspace
from .common import movie_asset, run_movies


@movie_asset("movie_plots", "story", "Three-level story expansion per theme: movies, characters, substories, "
             "tinystories, frames, dialogue and the levels' QA pairs.", deps=[])
def movie_plots(context: dg.AssetExecutionContext, workspace: Workspace):
    yield from run_movies(context, workspace.path, workspace.params(), "movie_plots")
