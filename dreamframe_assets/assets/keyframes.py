"""The `keyframes` asset: every frame drawn in its movie's learned style: one tar shard of PNGs per movie plus keyframes.parquet."""

import dagster as dg

from ..resources import Workspace
from ..steps import render_keyframes
from .common import code_version, contract_check, to_result


@dg.asset(group_name="render", deps=["movie_plots", "style_banks"], code_version=code_version("keyframes"), kinds={"polars"})
def keyframes(workspace: Workspace) -> dg.MaterializeResult:
    """Every frame drawn in its movie's learned style: one tar shard of PNGs per movie plus keyframes.parquet."""
    return to_result(render_keyframes(workspace.path, workspace.params()), workspace.path)


@dg.asset_check(asset=keyframes, blocking=True, description="Tables of keyframes match their pandera schemas.")
def keyframes_contract(workspace: Workspace) -> dg.AssetCheckResult:
    return contract_check(workspace.path, "keyframes", ("keyframes",))
