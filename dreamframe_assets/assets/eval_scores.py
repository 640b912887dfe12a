"""The `eval_scores` asset: dataset metrics, registered as DVC metrics."""

import json

import dagster as dg

from ..resources import Workspace
from ..schemas import GROUNDED_QTYPES
from ..steps import evaluate_dataset
from ..store import stage_dir
from .common import code_version, to_result


@dg.asset(group_name="evaluate", deps=["movie_plots", "keyframes", "qa_pairs"], code_version=code_version("eval_scores"), kinds={"json"})
def eval_scores(workspace: Workspace) -> dg.MaterializeResult:
    """Counts, qtype mix, random and oracle accuracy, style consistency: data/eval_scores/metrics.json."""
    return to_result(evaluate_dataset(workspace.path, workspace.params()), workspace.path)


@dg.asset_check(asset=eval_scores, blocking=True)
def eval_scores_oracle_grounded(workspace: Workspace) -> dg.AssetCheckResult:
    """The oracle answers every grounded question: anything less is a QA bug."""
    metrics = json.loads((stage_dir(workspace.path, "eval_scores") / "metrics.json").read_text())
    by_qtype = metrics["accuracy"].get("oracle", {}).get("by_qtype", {})
    failing = {q: a for q, a in by_qtype.items() if q in GROUNDED_QTYPES and a < 1.0}
    return dg.AssetCheckResult(
        passed="oracle" in metrics["accuracy"] and not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"oracle below 1.0 on: {failing}" if failing else "oracle answers every grounded QA",
        metadata={"oracle_by_qtype": dg.MetadataValue.json(by_qtype)},
    )
