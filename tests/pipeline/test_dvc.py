"""DVC on a temporary git repo holding the project: repro, no-op repro, params, experiments."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dreamframe_assets.core.ids import movie_id_for

from ..conftest import REPO, tiny_params

BIN = Path(sys.executable).parent


def sh(root: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DAGSTER_HOME": str(root / ".dagster"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("DREAMFRAME_ROOT", None)
    run = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"{' '.join(cmd)} failed:\n{run.stdout}\n{run.stderr}"
    return run.stdout + run.stderr


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo(tmp_path_factory, built_dataset) -> Path:
    """The tiny project in a fresh git + DVC repo. Its item cache (outside git and DVC) is the
    session build's, so a stage that runs takes unchanged movies from it, as after a first build."""
    root = tmp_path_factory.mktemp("dvcrepo")
    shutil.copytree(built_dataset / ".dreamframe", root / ".dreamframe")
    shutil.copytree(REPO / "stories", root / "stories")
    for name in ["dvc.yaml", "themes.txt", "retries.yaml", "workspace.yaml", ".gitignore"]:
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "dreamframe_assets", root / "dreamframe_assets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    sh(root, "git", "init", "-q")
    sh(root, str(BIN / "dvc"), "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "project")
    return root


def set_param(root: Path, stage: str, key: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[stage][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_repro_runs_every_stage_then_nothing(repo):
    dvc = str(BIN / "dvc")
    first = sh(repo, dvc, "repro")
    assert ran(first) == {"movie_plots", "style_banks", "keyframes", "qa_pairs", "eval_scores"}
    metrics = json.loads((repo / "data/eval_scores/metrics.json").read_text())
    assert metrics["counts"]["movies"] == 3
    # each stage was one Dagster run over every movie partition, recorded in the project's instance
    import dagster as dg

    from dreamframe_assets.core.ids import movie_id_for

    instance = dg.DagsterInstance.from_config(str(repo / ".dagster"))
    movies = {movie_id_for(t) for t in tiny_params()["movie_plots"]["themes"]}
    for stage in ["movie_plots", "style_banks", "keyframes", "qa_pairs"]:
        assert instance.get_materialized_partitions(dg.AssetKey(stage)) == movies, stage
        records = instance.fetch_materializations(dg.AssetKey(stage), limit=100).records
        assert len(records) == 3 and len({r.run_id for r in records}) == 1, stage  # one run for all the movies
    second = sh(repo, dvc, "repro")
    assert ran(second) == set()
    status = sh(repo, dvc, "status")
    assert "up to date" in status
    # the stages' materializations are in the project's Dagster instance, which the UI reads
    from dagster import AssetKey, DagsterInstance

    instance = DagsterInstance.from_config(str(repo / ".dagster"))
    for stage in ["movie_plots", "eval_scores"]:
        assert instance.get_latest_materialization_event(AssetKey(stage)) is not None


def test_a_param_change_reruns_only_the_stages_that_read_it(repo):
    dvc = str(BIN / "dvc")
    sh(repo, dvc, "repro")
    set_param(repo, "qa_pairs", "seed", 5)
    out = sh(repo, dvc, "repro")
    assert ran(out) == {"qa_pairs", "eval_scores"}
    set_param(repo, "eval_scores", "seed", 3)
    assert ran(sh(repo, dvc, "repro")) == {"eval_scores"}
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "v2")


def latest(root: Path, stage: str) -> dict:
    from dagster import AssetKey, DagsterInstance

    instance = DagsterInstance.from_config(str(root / ".dagster"))
    event = instance.get_latest_materialization_event(AssetKey(stage))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_changing_one_theme_redoes_one_movie_per_stage(repo):
    dvc = str(BIN / "dvc")
    sh(repo, dvc, "repro")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # the other movies' files stay as they are (the outputs persist): not even rewritten
    others = {p: p.stat().st_mtime_ns for stage in ["movie_plots", "style_banks", "keyframes", "qa_pairs"]
              for p in (repo / "data" / stage).glob("*/*")
              if p.is_file() and p.name.split(".")[0] != movie_id_for(params["movie_plots"]["themes"][2])}
    params["movie_plots"]["themes"][2] = "A kite maker races the autumn wind"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh(repo, dvc, "repro")
    assert ran(out) == {"movie_plots", "style_banks", "keyframes", "qa_pairs", "eval_scores"}
    assert {p.parent.parent.name for p in others} == {"movie_plots", "style_banks", "keyframes", "qa_pairs"}
    assert len({p.name.split(".")[0] for p in others}) == 2  # the two movies whose theme stayed
    assert {p: p.stat().st_mtime_ns for p in others} == others
    # each per-movie stage runs (and records) the one stale movie; evaluation reads all three
    for stage in ["movie_plots", "style_banks", "keyframes", "qa_pairs"]:
        md = latest(repo, stage)
        assert (md["cache_misses"], md["cache_hits"], md["count_movies"]) == (1, 0, 3), stage
    md = latest(repo, "eval_scores")
    assert (md["cache_misses"], md["cache_hits"]) == (1, 2)
    again = sh(repo, dvc, "repro")
    assert ran(again) == set()
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "new theme")


def test_experiments_and_metrics(repo):
    dvc = str(BIN / "dvc")
    sh(repo, dvc, "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "built", "--allow-empty")
    out = sh(repo, dvc, "exp", "run", "-S", "qa_pairs.max_qtype_share=0.25")
    assert "qa_pairs" in ran(out) and "movie_plots" not in ran(out)
    shown = sh(repo, dvc, "exp", "show", "--no-pager", "--csv")
    assert "counts.qa_pairs" in shown and "qa_pairs.max_qtype_share" in shown
    assert "counts.movies" in sh(repo, dvc, "metrics", "show")


def test_dagster_cli_selection_works_beside_dvc(repo):
    """dvc's hydra pins an antlr runtime dagster's selection parser cannot use; both must work."""
    from dreamframe_assets.core.ids import movie_id_for

    movie = movie_id_for(tiny_params()["movie_plots"]["themes"][0])  # its partition: added by the DVC runs
    out = sh(repo, str(BIN / "dagster"), "asset", "materialize", "-m", "dreamframe_assets.definitions",
             "--select", "movie_plots", "--partition", movie)
    assert "RUN_SUCCESS" in out or "Finished execution" in out or "success" in out.lower()
