"""The `eval_scores` asset: dataset metrics and charts, registered as DVC metrics and plots."""

import json

import dagster as dg

from ..core.store import stage_dir
from ..core.vocabulary import GROUNDED_QTYPES
from ..pipeline.code import code_version
from ..pipeline.steps import evaluate_dataset
from ..resources import Workspace
from .common import image_md, to_result

CHARTS = {"qtype_mix": "Question types", "accuracy": "Accuracy per question type", "style": "Style consistency"}


@dg.asset(group_name="evaluate", deps=["movie_plots", "keyframes", "qa_pairs"], code_version=code_version("eval_scores"),
          kinds={"json"})
def eval_scores(workspace: Workspace) -> dg.MaterializeResult:
    """Accuracy per answerer (random, oracle, blind, pixel, vlm), evidence retrieval mAP, style
    consistency, diversity and the language-bias gap: data/eval_scores/metrics.json and plots/."""
    root = workspace.path
    params = workspace.params()
    result = evaluate_dataset(root, params)
    folder = stage_dir(root, "eval_scores") / "plots"
    charts = {f"chart_{name}": image_md(title, (folder / f"{name}.png").read_bytes()) for name, title in CHARTS.items()}
    return to_result(result, root, params.eval_scores, **charts)


def _metrics(workspace: Workspace) -> dict:
    return json.loads((stage_dir(workspace.path, "eval_scores") / "metrics.json").read_text())


@dg.asset_check(asset=eval_scores, blocking=True)
def eval_scores_oracle_grounded(workspace: Workspace) -> dg.AssetCheckResult:
    """The oracle answers every grounded question: anything less is a QA bug."""
    metrics = _metrics(workspace)
    by_qtype = metrics["accuracy"].get("oracle", {}).get("by_qtype", {})
    failing = {q: a for q, a in by_qtype.items() if q in GROUNDED_QTYPES and a < 1.0}
    return dg.AssetCheckResult(
        passed="oracle" in metrics["accuracy"] and not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"oracle below 1.0 on: {failing}" if failing else "oracle answers every grounded QA",
        metadata={"oracle_by_qtype": dg.MetadataValue.json(by_qtype)},
    )


@dg.asset_check(asset=eval_scores, blocking=True)
def eval_scores_blind(workspace: Workspace) -> dg.AssetCheckResult:
    """Questions a text-only answerer gets right without looking are a defect of video QA data."""
    limit = workspace.params().eval_scores.max_blind_accuracy
    blind = _metrics(workspace)["accuracy"].get("blind")
    if blind is None:
        return dg.AssetCheckResult(passed=True, description="no blind answerer configured (eval_scores.answerers)")
    return dg.AssetCheckResult(
        passed=blind["overall"] <= limit,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"blind accuracy {blind['overall']} (limit eval_scores.max_blind_accuracy {limit})",
        metadata={"blind_by_qtype": dg.MetadataValue.json(blind["by_qtype"])},
    )
