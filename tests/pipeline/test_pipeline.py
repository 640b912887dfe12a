"""The whole asset graph through Dagster, on tiny params in a temporary project."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest
import yaml

from dreamframe_assets.core.ids import movie_id_for
from dreamframe_assets.definitions import defs
from dreamframe_assets.pipeline import backends

from ..conftest import STAGES, TINY_THEMES, build_record, materialize, metadata


def output_files(root):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((root / "data").rglob("*")) if p.is_file()}


pytestmark = pytest.mark.integration


@pytest.fixture
def built(built_project, monkeypatch):
    """A copy of the session's built project, to change."""
    monkeypatch.setenv("DREAMFRAME_ROOT", str(built_project))
    return built_project


def test_graph_builds_a_complete_dataset(built_dataset):
    root, record = built_dataset, build_record(built_dataset)
    metrics = json.loads((root / "data/eval_scores/metrics.json").read_text())
    assert metrics["counts"]["movies"] == 3
    assert metrics["counts"]["frames"] == metrics["counts"]["keyframes"] == 3 * 2 * 2 * 3
    assert metrics["accuracy"]["oracle"]["overall"] == 1.0
    assert 0.1 < metrics["accuracy"]["random"]["overall"] < 0.45
    assert max(metrics["qtype_share"].values()) <= 0.3 + 1e-9
    assert metrics["style_consistency"]["within_movie"] > metrics["style_consistency"]["across_movies"]
    # DVC tracks a number of files proportional to movies, not frames
    assert len(list((root / "data/keyframes/shards").glob("*.tar"))) == 3
    index = pl.read_parquet(root / "data/keyframes/keyframes.parquet")
    assert index.height == 36 and set(index.columns) >= {"movie_id", "frame_index", "shard"}
    qa = pl.read_parquet(root / "data/qa_pairs/qa.parquet")
    assert {"movie_id", "qa_id", "level", "qtype", "question", "answer", "options", "answer_index", "evidence_frames"} <= set(qa.columns)
    assert len(record["checks"]) == 7 and all(record["checks"].values())
    dropped = pl.read_parquet(root / "data/qa_pairs/dropped.parquet")
    assert set(dropped["gate"]) <= {"options", "length", "evidence", "oracle", "duplicate", "qtype_cap"}
    md = record["metadata"]["movie_plots"]
    assert md["cache_misses"] == 3 and md["count_movies"] == 3 and "preview" in md


def test_unchanged_project_is_a_no_op_that_rewrites_nothing(built):
    root = built
    before = output_files(root)
    again = materialize(root)
    assert again.success
    for stage in STAGES:
        md = metadata(again, stage)
        assert md["no_op"] is True, stage
        assert md["cache_misses"] == 0 and md["files_written"] == [], stage
    assert output_files(root) == before


def test_changing_one_theme_redoes_exactly_that_movie(built):
    root = built
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["movie_plots"]["themes"][1] = "A retired sailor teaches his granddaughter to fish"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result = materialize(root)
    assert result.success
    new_id = movie_id_for(params["movie_plots"]["themes"][1])
    for stage in ["movie_plots", "style_banks", "keyframes", "qa_pairs"]:
        md = metadata(result, stage)
        assert (md["cache_misses"], md["cache_hits"], md["redone"]) == (1, 2, [new_id]), stage
    shards = sorted(p.stem for p in (root / "data/keyframes/shards").glob("*.tar"))
    assert shards == sorted(movie_id_for(t) for t in params["movie_plots"]["themes"])


def test_data_version_follows_content(built_dataset, built):
    root = built
    again = materialize(root, ["movie_plots"])
    v1 = build_record(built_dataset)["data_versions"]["movie_plots"]  # the first build's
    v2 = again.asset_materializations_for_node("movie_plots")[0].tags["dagster/data_version"]
    assert v1 == v2
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["movie_plots"]["seed"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    third = materialize(root, ["movie_plots"])
    assert third.asset_materializations_for_node("movie_plots")[0].tags["dagster/data_version"] != v1


def test_corrupted_table_fails_its_check_and_stops_downstream(built):
    root = built
    path = root / "data/movie_plots/frames.parquet"
    frames = pl.read_parquet(path)
    bad = frames.with_columns(
        action=pl.when(pl.int_range(pl.len()).is_in([2, 5])).then(pl.lit("fly")).otherwise(pl.col("action"))
    )
    bad.write_parquet(path)
    checked = materialize(root, ["movie_plots"], checks_only=True)
    [evaluation] = checked.get_asset_check_evaluations()
    assert not evaluation.passed
    assert "table 'frames'" in evaluation.description and "column 'action'" in evaluation.description
    assert "[2, 5]" in evaluation.description
    downstream = materialize(root, ["style_banks"])
    assert not downstream.success
    failure = next(e for e in downstream.all_events if e.is_step_failure)
    assert "column 'action'" in str(failure.step_failure_data.error)


def test_a_failing_item_names_its_theme_and_keeps_the_others(project, monkeypatch):
    monkeypatch.setenv("DREAMFRAME_ROOT", str(project))
    real = backends.STORY_WRITERS["offline"]

    class Flaky:
        def __init__(self, params, root):
            self.inner = real(params, root)
            self.name = "offline"

        def identity(self):
            return self.inner.identity()

        def write(self, theme, *args):
            if "bakers" in theme:
                raise RuntimeError("the model returned nothing")
            return self.inner.write(theme, *args)

    monkeypatch.setitem(backends.STORY_WRITERS, "offline", Flaky)
    result = materialize(project, ["movie_plots"])
    assert not result.success
    failure = str(next(e for e in result.all_events if e.is_step_failure).step_failure_data.error)
    assert movie_id_for(TINY_THEMES[1]) in failure and "the model returned nothing" in failure
    assert "2 done and cached" in failure
    monkeypatch.setitem(backends.STORY_WRITERS, "offline", real)
    retry = materialize(project, ["movie_plots"])
    assert metadata(retry, "movie_plots")["cache_misses"] == 1  # only the failed movie is redone


def test_a_planted_wrong_answer_fails_the_gate_and_blocks_evaluation(built):
    root = built
    path = root / "data/qa_pairs/qa.parquet"
    qa = pl.read_parquet(path)
    wrong = pl.int_range(pl.len()) < 5
    bad = qa.with_columns(answer_index=pl.when(wrong).then((pl.col("answer_index") + 1) % 4).otherwise(pl.col("answer_index")))
    bad.with_columns(answer=pl.col("options").list.get(pl.col("answer_index"))).write_parquet(path)
    selection = dg.AssetSelection.checks_for_assets("qa_pairs") | dg.AssetSelection.assets("eval_scores")
    result = dg.materialize([*defs.assets, *defs.asset_checks], selection=selection,
                            instance=dg.DagsterInstance.ephemeral(), resources={"workspace": defs.resources["workspace"]},
                            raise_on_error=False)
    assert not result.success
    grounded = next(c for c in result.get_asset_check_evaluations() if c.check_name == "qa_pairs_grounded")
    assert not grounded.passed and "qa_pairs.min_oracle_accuracy" in grounded.description
    assert qa["qa_id"][0] in grounded.description
    assert result.asset_materializations_for_node("eval_scores") == []


def test_blind_accuracy_above_the_limit_fails_evaluation(built):
    root = built
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["eval_scores"]["max_blind_accuracy"] = 0.05
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result = materialize(root, ["eval_scores"])
    assert not result.success
    blind = next(c for c in result.get_asset_check_evaluations() if c.check_name == "eval_scores_blind")
    assert not blind.passed and "max_blind_accuracy 0.05" in blind.description


def test_metrics_layout_and_charts(built_dataset):
    root = built_dataset
    m = json.loads((root / "data/eval_scores/metrics.json").read_text())
    for name in ["random", "oracle", "blind", "pixel"]:
        assert {"overall", "by_qtype", "by_level"} <= set(m["accuracy"][name])
    assert set(m["accuracy"]["pixel"]["by_qtype"]) == {"count", "colour", "who"}
    assert m["accuracy"]["pixel"]["by_qtype"]["count"] >= 0.95 and m["accuracy"]["pixel"]["by_qtype"]["colour"] >= 0.95
    assert 0 < m["map"]["text"] <= 1
    assert {"within_movie", "across_movies", "adjacent"} <= set(m["style_consistency"])
    assert {"distinct_2", "near_duplicate_rate"} <= set(m["diversity"])
    assert m["language_bias_gap"] == round(m["accuracy"]["blind"]["overall"] - m["accuracy"]["random"]["overall"], 4)
    for name in ["qtype_mix.png", "accuracy.png", "style.png", "qtype_mix.csv", "accuracy.csv"]:
        assert (root / "data/eval_scores/plots" / name).stat().st_size > 0
    md = build_record(root)["metadata"]["eval_scores"]
    assert "data:image/png;base64," in md["chart_accuracy"]
