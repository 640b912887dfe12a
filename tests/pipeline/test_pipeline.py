"""The whole asset graph through Dagster, on tiny params in a temporary project."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from dreamframe_assets.core.cache import seal, unseal
from dreamframe_assets.core.ids import movie_id_for
from dreamframe_assets.core.vocabulary import QA_GATES
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
    assert abs(metrics["accuracy"]["random"]["overall"] - metrics["chance"]["overall"]) < 0.2  # a few dozen QA
    assert max(metrics["qtype_share"].values()) <= 0.3 + 1e-9
    assert metrics["style_consistency"]["within_movie"] > metrics["style_consistency"]["across_movies"]
    # DVC tracks a number of files proportional to movies, not frames
    assert len(list((root / "data/keyframes/shards").glob("*.tar"))) == 3
    index = pl.read_parquet(root / "data/keyframes/keyframes.parquet")
    assert index.height == 36 and set(index.columns) >= {"movie_id", "frame_index", "shard"}
    qa = pl.read_parquet(root / "data/qa_pairs/qa.parquet")
    assert {"movie_id", "qa_id", "level", "qtype", "question", "answer", "options", "answer_index", "evidence_frames"} <= set(qa.columns)
    # per-movie assets: contract and quarantine (and qa_pairs' grounding) in their step; eval_scores: two
    assert len(record["checks"]) == 11 and all(record["checks"].values())
    # each movie is a partition of each per-movie asset; each has its own files
    for stage in ["movie_plots", "style_banks", "keyframes", "qa_pairs"]:
        assert sorted(p.stem for p in (root / "data" / stage / "movies").glob("*.json")) == sorted(
            movie_id_for(t) for t in TINY_THEMES), stage
        assert record["metadata"][stage]["movies"] == {"states": {"done": 3}, "not_done": {}}, stage
    dropped = pl.read_parquet(root / "data/qa_pairs/dropped.parquet")
    assert set(dropped["gate"]) <= set(QA_GATES)
    gates = json.loads((root / "data/qa_pairs/gates.json").read_text())
    shipped = gates["shipped"]["qa_pairs"]
    assert shipped == qa.height and gates["written"]["qa_pairs"] == shipped + gates["dropped"]["qa_pairs"]
    assert gates["written"]["oracle_accuracy"] == 1.0  # what the offline writers produce, before any gate
    assert record["metadata"]["qa_pairs"]["gates"] == gates
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


def test_a_corrupted_movie_file_fails_that_movie_downstream_and_is_restored(built):
    root = built
    bad_id = movie_id_for(TINY_THEMES[1])
    path = root / "data/movie_plots/movies" / f"{bad_id}.json"
    plot = json.loads(path.read_text())
    for i in (2, 5):
        plot["frames"][i]["action"] = "fly"
    path.write_text(json.dumps(plot))
    downstream = materialize(root, ["keyframes"])  # draws the frames (style_banks never reads them)
    assert not downstream.success
    failure = str(next(e for e in downstream.all_events if e.is_step_failure).step_failure_data.error)
    assert bad_id in failure and "column 'action'" in failure and "1 of 3 movie(s) failed" in failure
    # the other movies are materialized, each as its own partition; the broken one is not
    done = {m.partition for m in downstream.asset_materializations_for_node("keyframes")}
    assert done == {movie_id_for(TINY_THEMES[0]), movie_id_for(TINY_THEMES[2])}
    # its own asset writes it back from the item cache, and then downstream goes on
    again = materialize(root, ["movie_plots", "keyframes"])
    assert again.success and json.loads(path.read_text())["frames"][2]["action"] != "fly"
    assert metadata(again, "movie_plots")["cache_misses"] == 0


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
    assert "1 of 3 movie(s) failed (the others are written)" in failure
    assert {m.partition for m in result.asset_materializations_for_node("movie_plots")} == {
        movie_id_for(TINY_THEMES[0]), movie_id_for(TINY_THEMES[2])}
    assert (project / "data/movie_plots/movies" / f"{movie_id_for(TINY_THEMES[0])}.json").exists()
    monkeypatch.setitem(backends.STORY_WRITERS, "offline", real)
    retry = materialize(project, ["movie_plots"])
    assert metadata(retry, "movie_plots")["cache_misses"] == 1  # only the failed movie is redone


def test_a_planted_wrong_answer_fails_the_gate_and_blocks_evaluation(built):
    """The grounding check re-reads what was written: a wrong answer that got past the gates
    (here: planted in the item cache, sealed as a good entry) fails it, and evaluation does not run."""
    root = built
    first = None
    for item in sorted((root / ".dreamframe/cache/qa_pairs").rglob("*")):
        if item.is_file():
            data = json.loads(unseal(item.read_bytes()))
            for qa in data["qa"][:2]:
                qa["answer_index"] = (qa["answer_index"] + 1) % len(qa["options"])
                qa["answer"] = qa["options"][qa["answer_index"]]
                first = first or qa["qa_id"]
            item.write_bytes(seal(json.dumps(data).encode()))  # whole, with a checksum: served
    result = materialize(root, ["qa_pairs", "eval_scores"])
    assert not result.success
    grounded = next(c for c in result.get_asset_check_evaluations() if c.check_name == "qa_pairs_grounded")
    assert not grounded.passed and "qa_pairs.min_oracle_accuracy" in grounded.description
    assert first in grounded.description
    assert result.asset_materializations_for_node("eval_scores") == []


def test_language_bias_above_the_limit_fails_evaluation(built):
    root = built
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["eval_scores"].update(max_language_bias_gap=0.0, max_language_bias_gap_qtype=0.0, min_probe_questions=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result = materialize(root, ["eval_scores"])
    bias = next(c for c in result.get_asset_check_evaluations() if c.check_name == "eval_scores_language_bias")
    m = json.loads((root / "data/eval_scores/metrics.json").read_text())
    # the tiny dataset is small: the limit holds beyond two standard errors of sampling noise
    spread = m["language_bias_noise_by_qtype"]
    assert 0 < m["language_bias_noise"] <= 1 and set(spread) == set(m["language_bias_by_qtype"])
    over = m["language_bias_gap"] > m["language_bias_noise"] or any(
        g > spread[q] for q, g in m["language_bias_by_qtype"].items())
    assert bias.passed is (not over) and result.success is (not over)
    assert "eval_scores.max_language_bias_gap 0.0" in bias.description


def test_metrics_layout_and_charts(built_dataset):
    root = built_dataset
    m = json.loads((root / "data/eval_scores/metrics.json").read_text())
    for name in ["random", "oracle", "blind", "pixel"]:
        assert {"overall", "by_qtype", "by_level"} <= set(m["accuracy"][name])
    pixel = m["accuracy"]["pixel"]["by_qtype"]
    assert "count" in pixel and set(pixel) <= {"count", "colour", "who"}  # three tiny movies may ask no colour
    assert all(a >= 0.95 for a in pixel.values()), pixel
    assert 0 < m["map"]["text"] <= 1
    assert {"within_movie", "across_movies", "adjacent"} <= set(m["style_consistency"])
    assert {"distinct_2", "near_duplicate_rate"} <= set(m["diversity"])
    for name in ["frequency", "length", "conversation", "trained"]:
        assert {"overall", "by_qtype", "by_level"} <= set(m["accuracy"][name])
    best = m["language_bias_probe"]
    assert best in {"blind", "frequency", "length", "conversation", "trained"}
    assert m["language_bias_gap"] == round(m["accuracy"][best]["overall"] - m["chance"]["overall"], 4)
    for name in ["qtype_mix.png", "accuracy.png", "style.png", "qtype_mix.csv", "accuracy.csv"]:
        assert (root / "data/eval_scores/plots" / name).stat().st_size > 0
    md = build_record(root)["metadata"]["eval_scores"]
    assert "data:image/png;base64," in md["chart_accuracy"]
