"""The `qa_pairs` asset: all QA pairs that pass the quality gates, 4 options each."""

import dagster as dg

from ..core.store import read_plots
from ..pipeline.backends import EMBED_CACHE
from ..pipeline.code import code_version
from ..pipeline.steps import read_qa, write_qa_pairs
from ..resources import Workspace
from .common import contract_check, image_md, to_result


@dg.asset(group_name="qa", deps=["movie_plots", "keyframes"], code_version=code_version("qa_pairs"), kinds={"polars"})
def qa_pairs(workspace: Workspace) -> dg.MaterializeResult:
    """The story levels' what/why/how/where/overview questions and questions grounded in the frames,
    through the gates (options, length, evidence, oracle, duplicates, qtype cap)."""
    from ..evaluate.charts import qtype_mix_png

    params = workspace.params()
    result = write_qa_pairs(workspace.path, params)
    chart = image_md("Question types", qtype_mix_png(result.extra["qtype_share"]))
    return to_result(result, workspace.path, params.qa_pairs, qtype_chart=chart)


@dg.asset_check(asset=qa_pairs, blocking=True, description="Tables of qa_pairs match their pandera schemas.")
def qa_pairs_contract(workspace: Workspace) -> dg.AssetCheckResult:
    return contract_check(workspace.path, "qa_pairs", ("qa", "quarantine", "dropped"))


@dg.asset_check(asset=qa_pairs, blocking=True)
def qa_pairs_grounded(workspace: Workspace) -> dg.AssetCheckResult:
    """The oracle answers the QAs from the frames and plot, and no QA repeats another."""
    from ..models.embed import TextEmbedder
    from ..qa.gates import verify

    p = workspace.params().qa_pairs
    embedder = TextEmbedder(p.embedder, workspace.path / EMBED_CACHE)
    found = verify(read_plots(workspace.path), read_qa(workspace.path), embedder, p.near_duplicate_threshold)
    problems = []
    if found["oracle_accuracy"] < p.min_oracle_accuracy:
        problems.append(f"oracle accuracy {found['oracle_accuracy']} < qa_pairs.min_oracle_accuracy "
                        f"{p.min_oracle_accuracy}; wrong: {found['wrong'][:10]}")
    if found["duplicate_rate"] > p.max_duplicate_rate:
        problems.append(f"duplicate rate {found['duplicate_rate']} > qa_pairs.max_duplicate_rate {p.max_duplicate_rate}")
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="\n".join(problems) or "the oracle answers every QA and none repeats another",
        metadata={"oracle_accuracy": found["oracle_accuracy"], "duplicate_rate": found["duplicate_rate"]},
    )
