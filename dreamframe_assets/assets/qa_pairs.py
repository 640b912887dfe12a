"""The `qa_pairs` asset: all QA pairs: the story levels' what/why/how/where/overview questions and questions grounded in the frames, 4 options each."""

import dagster as dg

from ..resources import Workspace
from ..steps import write_qa_pairs
from .common import code_version, contract_check, to_result


@dg.asset(group_name="qa", deps=["movie_plots", "keyframes"], code_version=code_version("qa_pairs"), kinds={"polars"})
def qa_pairs(workspace: Workspace) -> dg.MaterializeResult:
    """All QA pairs: the story levels' what/why/how/where/overview questions and questions grounded in the frames, 4 options each."""
    return to_result(write_qa_pairs(workspace.path, workspace.params()), workspace.path)


@dg.asset_check(asset=qa_pairs, blocking=True, description="Tables of qa_pairs match their pandera schemas.")
def qa_pairs_contract(workspace: Workspace) -> dg.AssetCheckResult:
    return contract_check(workspace.path, "qa_pairs", ("qa", "quarantine"))
