"""The `style_banks` asset: per movie, the immobilized style: reference images drawn from its style description and the style parameters learned from them."""

import dagster as dg

from ..pipeline.code import code_version
from ..pipeline.steps import learn_style_banks
from ..resources import Workspace
from .common import contract_check, to_result


@dg.asset(group_name="style", deps=["movie_plots"], code_version=code_version("style_banks"), kinds={"polars"})
def style_banks(workspace: Workspace) -> dg.MaterializeResult:
    """Per movie, the immobilized style: reference images drawn from its style description and the style parameters learned from them."""
    params = workspace.params()
    return to_result(learn_style_banks(workspace.path, params), workspace.path, params.style_banks)


@dg.asset_check(asset=style_banks, blocking=True, description="Tables of style_banks match their pandera schemas.")
def style_banks_contract(workspace: Workspace) -> dg.AssetCheckResult:
    return contract_check(workspace.path, "style_banks", ("styles",))
