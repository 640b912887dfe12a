"""The `style_banks` asset: per movie, the immobilized style: reference images drawn from its style description and the style parameters learned from them."""

import dagster as dg

from ..resources import Workspace
from .common import movie_asset, run_movies


@movie_asset("style_banks", "style", "Per movie, the immobilized style: reference images drawn from its style "
             "description and the style parameters learned from them.", deps=["movie_plots"])
def style_banks(context: dg.AssetExecutionContext, workspace: Workspace):
    yield from run_movies(context, workspace.path, workspace.params(), "style_banks")
