"""The `eval_scores` asset: dataset metrics and charts, registered as DVC metrics and plots."""

import json

import dagster as dg

from ..core.store import stage_dir
from ..core.vocabulary import GROUNDED_QTYPES
from ..evaluate.metrics import TEXT_ONLY
from ..pipeline.code import code_version
from ..pipeline.steps import evaluate_dataset
from ..resources import Workspace
from .common import image_md, to_result

CHARTS = {"qtype_mix": "Question types", "accuracy": "Accuracy per question type", "style": "Style consistency"}


@dg.asset(group_name="evaluate", deps=["movie_plots", "keyframes", "qa_pairs"], code_version=code_version("eval_scores"),
          kinds={"json"})
def eval_scores(workspace: Workspace) -> dg.MaterializeResult:
    """Accuracy per answerer (random, oracle, blind, pixel, vlm) and per text-only probe (frequency,
    length, conversation, trained), evidence retrieval mAP, style consistency, diversity and the
    language-bias gap over chance: data/eval_scores/metrics.json and plots/."""
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
def eval_scores_language_bias(workspace: Workspace) -> dg.AssetCheckResult:
    """Questions a text-only probe answers without looking are a defect of video QA data: a model
    tuned on them learns to ignore the video. The best probe may beat chance by at most
    ``max_language_bias_gap`` overall, and by ``max_language_bias_gap_qtype`` on any qtype with
    at least ``min_probe_questions`` QAs (smaller qtypes are reported, not held to it), each
    beyond two standard errors of sampling noise."""
    p = workspace.params().eval_scores
    metrics = _metrics(workspace)
    if "language_bias_noise" not in metrics:  # no QA, or a metrics.json from before the probes
        empty = metrics.get("counts", {}).get("qa_pairs", 0) == 0
        return dg.AssetCheckResult(passed=empty, severity=dg.AssetCheckSeverity.ERROR, description="no QA to probe"
                                   if empty else "metrics.json has no text-only probes: materialize eval_scores again")
    acc, chance = metrics["accuracy"], metrics["chance"]
    best, gap = metrics["language_bias_probe"], metrics["language_bias_gap"]
    counts = metrics.get("qtype_count", {})
    by_probe = metrics.get("language_bias_probe_by_qtype", {})
    gaps = metrics["language_bias_by_qtype"]
    spread = metrics["language_bias_noise_by_qtype"]  # two standard errors, clustered by movie
    over = {q: g for q, g in sorted(gaps.items()) if g > p.max_language_bias_gap_qtype}
    failing = {q: f"{by_probe.get(q, '?')} +{g:.3f}" for q, g in over.items() if counts.get(q, 0) >= p.min_probe_questions
               and g > p.max_language_bias_gap_qtype + spread[q]}
    margin = metrics["language_bias_noise"]
    noisy = [q for q in over if q not in failing]
    text = (f"best text-only probe {best}: accuracy {acc[best]['overall']:.3f} vs chance {chance['overall']:.3f} "
            f"(gap {gap:+.3f}, limit eval_scores.max_language_bias_gap {p.max_language_bias_gap} "
            f"+ sampling noise {margin:.3f}); "
            f"qtypes over eval_scores.max_language_bias_gap_qtype {p.max_language_bias_gap_qtype} "
            f"(with >= {p.min_probe_questions} QAs): {failing or 'none'}")
    if noisy:
        text += f"; over it within sampling noise or on fewer QAs (not held to it): {', '.join(noisy)}"
    probes = {n: acc[n]["by_qtype"] for n in TEXT_ONLY if n in acc}
    return dg.AssetCheckResult(
        passed=gap <= p.max_language_bias_gap + margin and not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=text,
        metadata={
            "probe": best,
            "probe_accuracy": acc[best]["overall"],
            "chance": chance["overall"],
            "gap": gap,
            "max_language_bias_gap": p.max_language_bias_gap,
            "max_language_bias_gap_qtype": p.max_language_bias_gap_qtype,
            "min_probe_questions": p.min_probe_questions,
            "sampling_noise": round(margin, 4),
            "probes_by_qtype": dg.MetadataValue.json(probes),
            "chance_by_qtype": dg.MetadataValue.json(chance["by_qtype"]),
            "gap_by_qtype": dg.MetadataValue.json(gaps),
            "probe_by_qtype": dg.MetadataValue.json(by_probe),
            "qtype_count": dg.MetadataValue.json(counts),
            "failing_qtypes": dg.MetadataValue.json(failing),
        },
    )
