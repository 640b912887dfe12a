"""The `qa_pairs` asset: all QA pairs that pass the quality gates, 3 or 4 options each."""

from pathlib import Path

import dagster as dg

from ..core.params import Params
from ..pipeline.backends import EMBED_CACHE
from ..pipeline.steps import StepResult, read_plot, read_qa
from ..resources import Workspace
from .common import image_md, movie_asset, run_movies


@movie_asset("qa_pairs", "qa", "The story levels' what/why/how/where/overview questions and questions grounded "
             "in the frames, through the gates (options, length, evidence, oracle, duplicates, qtype cap).",
             deps=["movie_plots", "keyframes"], extra_checks=("qa_pairs_grounded",))
def qa_pairs(context: dg.AssetExecutionContext, workspace: Workspace):
    from ..evaluate.charts import qtype_mix_png

    root, params = workspace.path, workspace.params()

    def grounded(result: StepResult) -> dg.AssetCheckResult:
        return grounded_check(root, params, [m for m, s in result.movies.items() if s.state in ("done", "quarantined")])

    yield from run_movies(context, root, params, "qa_pairs", checks=(grounded,),
                          details=lambda r: {"qtype_chart": image_md("Question types", qtype_mix_png(r.extra["qtype_share"]))})


def grounded_check(root: Path, params: Params, movies: list[str]) -> dg.AssetCheckResult:
    """The oracle answers the movies' QAs from the frames and plot, and no QA repeats another."""
    from ..models.embed import TextEmbedder
    from ..qa.gates import verify

    p = params.qa_pairs
    embedder = TextEmbedder(p.embedder, root / EMBED_CACHE)
    qas = read_qa(root, movies)
    found = verify({m: read_plot(root, m, check=False) for m in movies}, qas, embedder, p.near_duplicate_threshold)
    problems = []
    if found["oracle_accuracy"] < p.min_oracle_accuracy:
        problems.append(f"oracle accuracy {found['oracle_accuracy']} < qa_pairs.min_oracle_accuracy "
                        f"{p.min_oracle_accuracy}; wrong: {found['wrong'][:10]}")
    if found["duplicate_rate"] > p.max_duplicate_rate:
        problems.append(f"duplicate rate {found['duplicate_rate']} > qa_pairs.max_duplicate_rate {p.max_duplicate_rate}")
    return dg.AssetCheckResult(
        check_name="qa_pairs_grounded",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="\n".join(problems) or "the oracle answers every QA and none repeats another",
        metadata={"oracle_accuracy": found["oracle_accuracy"], "duplicate_rate": found["duplicate_rate"]},
    )
