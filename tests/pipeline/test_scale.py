"""A scaled-down paper-scale build: 40 movies from `dreamframe themes`, through every stage.

What makes paper scale fast must not change what is built: the plots of the movies a stage
computes are checked in one validation (one bad movie still fails alone), evaluation embeds
each unique text once ahead of the movies, the text retriever runs on its fixed sample, and
a second run computes and writes nothing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
import yaml

from dreamframe_assets.core.params import load_params
from dreamframe_assets.core.plot import Quarantined
from dreamframe_assets.core.cache import ItemCache
from dreamframe_assets.core.store import MOVIES as MOVIE_FILES, plot_from_json, plot_to_json, read_plots, read_table, stage_dir
from dreamframe_assets.evaluate.blind import BlindAnswerer
from dreamframe_assets.evaluate.metrics import movie_facts
from dreamframe_assets.evaluate.retrieval import retrieval_sample, text_inputs
from dreamframe_assets.pipeline.code import STAGES, code_version
from dreamframe_assets.pipeline import steps
from dreamframe_assets.pipeline.steps import STEPS, read_qa
from dreamframe_assets.story.themes import offline_themes

from ..conftest import write_project

pytestmark = pytest.mark.integration

MOVIES = 40
SAMPLE = 10


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    root = write_project(tmp_path_factory.mktemp("scale"))
    (root / "themes_40.txt").write_text("\n".join(offline_themes(MOVIES, seed=0)) + "\n")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["movie_plots"].update(themes=[], themes_file="themes_40.txt", substories=2, tinystories=2, frames=1)
    params["eval_scores"].update(retrieval_movies=SAMPLE)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    params = load_params(root)
    return root, params, {stage: STEPS[stage](root, params) for stage in STAGES}


def test_every_movie_is_built_and_every_table_keeps_its_contract(scaled):
    root, _, results = scaled
    for stage in STAGES[:-1]:
        assert len(results[stage].movies) == MOVIES
        assert {m.state for m in results[stage].movies.values()} == {"done"}, stage
    qa = read_table(stage_dir(root, "qa_pairs") / "qa.parquet", "qa")
    assert qa["movie_id"].n_unique() == MOVIES
    keyframes = read_table(stage_dir(root, "keyframes") / "keyframes.parquet", "keyframes")
    assert keyframes.group_by("movie_id").len()["len"].to_list() == [4] * MOVIES
    assert results["eval_scores"].counts["qa_pairs"] == qa.height


def test_evaluation_embeds_each_unique_text_once_and_retrieves_on_its_sample(scaled):
    root, params, _ = scaled
    plots, qas = read_plots(root), read_qa(root)
    by_movie: dict[str, list] = {}
    for qa in qas:
        by_movie.setdefault(qa.movie_id, []).append(qa)
    sample = retrieval_sample(list(plots), SAMPLE, params.eval_scores.seed)
    blind = BlindAnswerer(params.eval_scores, root / "unused", root / "unused")
    texts = {t for mid, qs in by_movie.items() for t in blind.texts(qs)}
    texts |= {t for mid in sample if by_movie.get(mid) for part in text_inputs(plots[mid], by_movie[mid]) for t in part}
    # every one of them is in the embedding cache, and the frame texts of other movies are not
    from dreamframe_assets.models.embed import TextEmbedder

    cache = TextEmbedder(params.eval_scores.embedder, root / ".dreamframe" / "embeddings")
    cache.encode(sorted(texts))
    assert cache.stats()["computed"] == 0
    others = [t for mid in set(plots) - sample if by_movie.get(mid) for t in text_inputs(plots[mid], by_movie[mid])[0]]
    assert others
    probe = TextEmbedder(params.eval_scores.embedder, root / ".dreamframe" / "embeddings")
    probe._model = lambda: (_ for _ in ()).throw(AssertionError("would embed"))  # noqa: SLF001
    with pytest.raises(AssertionError, match="would embed"):
        probe.encode(others[:1])

    metrics = json.loads((stage_dir(root, "eval_scores") / "metrics.json").read_text())
    assert metrics["map_movies"]["text"] == len(sample & set(by_movie)) <= SAMPLE
    assert 0.0 <= metrics["diversity"]["near_duplicate_rate_across_movies"] <= 1.0
    assert metrics["counts"]["movies"] == MOVIES


def test_a_second_run_computes_and_writes_nothing(scaled):
    root, params, _ = scaled
    before = {p: p.stat().st_mtime_ns for p in (root / "data").rglob("*") if p.is_file()}
    for stage in STAGES:
        result = STEPS[stage](root, params)
        assert result.misses == 0 and result.written == [], (stage, result.written)
    assert {p: p.stat().st_mtime_ns for p in (root / "data").rglob("*") if p.is_file()} == before
    assert pl.read_parquet(stage_dir(root, "qa_pairs") / "qa.parquet").height > 0


def test_one_movie_breaking_its_plot_contract_fails_alone(scaled):
    """The stage checks all its movies' plots in one validation; when that fails, it finds
    the culprit and the other movies are built as usual."""
    root, params, results = scaled
    bad = sorted(results["movie_plots"].movies)[7]
    path = stage_dir(root, "movie_plots") / "movies" / f"{bad}.json"
    original = path.read_bytes()
    plot = json.loads(original)
    plot["frames"][0]["frame_index"] = -1
    path.write_text(json.dumps(plot))
    reseeded = params.model_copy(update={"style_banks": params.style_banks.model_copy(update={"seed": 1})})
    try:
        result = STEPS["style_banks"](root, reseeded)
    finally:
        path.write_bytes(original)  # the module's project as it was, for the tests after this one
    states = {m.movie_id: m.state for m in result.movies.values()}
    assert {m for m, s in states.items() if s != "done"} == {bad} and len(states) == MOVIES
    assert "frame_index" in result.movies[bad].error and f"{bad}.json" in result.movies[bad].error


def test_one_computed_movie_breaking_its_contract_fails_alone(scaled, monkeypatch):
    """Computed movies are checked against the contract many at a time; one that breaks it
    fails alone, named with its table, neither written nor cached, and the others are
    written and cached."""
    root, params, results = scaled
    movies = sorted(results["keyframes"].movies)[:3]
    bad = movies[1]
    made = steps.FILES["keyframes"]
    checked = []

    def breaking(run, mid, data):
        files, state, counts, rows = made(run, mid, data)
        if mid == bad:
            rows = {"keyframes": [{**rows["keyframes"][0], "width": -1}, *rows["keyframes"][1:]]}
        return files, state, counts, rows

    def contract_errors(rows, where):
        if all(set(tables) == {"keyframes"} for tables in rows.values()):  # not the plots' check
            checked.append(sorted(rows))
        return steps_contract_errors(rows, where)

    steps_contract_errors = steps.contract_errors
    monkeypatch.setattr(steps, "contract_errors", contract_errors)
    monkeypatch.setattr(steps, "CHECK_EVERY", float("inf"))  # one batch for the three movies
    monkeypatch.setattr(steps, "CHECK_BYTES", float("inf"))
    monkeypatch.setitem(steps.FILES, "keyframes", breaking)
    reseeded = params.model_copy(update={"keyframes": params.keyframes.model_copy(update={"seed": 1})})
    folder = stage_dir(root, "keyframes")
    try:
        result = STEPS["keyframes"](root, reseeded, movies=movies)
        assert checked == [sorted(movies)]
        assert {m.movie_id: m.state for m in result.movies.values()} == {**dict.fromkeys(movies, "done"), bad: "failed"}
        assert f"keyframes: movie {bad!r}: keyframes" in result.movies[bad].error and "width" in result.movies[bad].error
        assert not (folder / "shards" / f"{bad}.tar").exists() and not (folder / "movies" / f"{bad}.json").exists()
        assert all((folder / "shards" / f"{m}.tar").exists() for m in movies if m != bad)
        monkeypatch.setitem(steps.FILES, "keyframes", made)
        again = STEPS["keyframes"](root, reseeded, movies=movies)  # the bad one was not cached
        assert again.misses == 1 and again.redone == [bad] and {m.state for m in again.movies.values()} == {"done"}
    finally:
        monkeypatch.setitem(steps.FILES, "keyframes", made)
        STEPS["keyframes"](root, params, movies=movies)  # the keyframes back as they were, from the cache


def test_contract_errors_name_only_the_movies_that_break_it(scaled):
    root, _, _ = scaled
    items = {p.stem: json.loads(p.read_bytes()) for p in sorted((stage_dir(root, "qa_pairs") / "movies").glob("*.json"))}
    rows = {mid: {name: item[name] for name in ("qa", "dropped", "quarantine", "flagged")} for mid, item in items.items()}
    where = lambda mid, name: f"qa_pairs: movie {mid!r}: {name}"  # noqa: E731
    assert steps.contract_errors(rows, where) == {}
    bad = sorted(rows)[5]
    rows[bad]["qa"] = [{**rows[bad]["qa"][0], "answer_index": 9}, *rows[bad]["qa"][1:]]
    errors = steps.contract_errors(rows, where)
    assert list(errors) == [bad] and f"qa_pairs: movie {bad!r}: qa" in errors[bad]


def _retitle(path):
    """A new title, and a part the model could not write (the plot's own quarantine rows)."""
    plot = plot_from_json(path.read_bytes())
    part = Quarantined(plot.movie.movie_id, "movie_plots", "level3:1.1", "[]", "", "not JSON")
    path.write_bytes(plot_to_json(replace(plot, movie=replace(plot.movie, title=plot.movie.title + " Again"),
                                          quarantine=(*plot.quarantine, part))))


def _drop_last_qa(path):
    item = json.loads(path.read_bytes())
    item["qa"] = item["qa"][:-1]
    path.write_text(json.dumps(item))


@pytest.mark.parametrize(("stage", "change", "reader"), [("movie_plots", _retitle, "plot_from_json"),
                                                         ("qa_pairs", _drop_last_qa, "_json")])
def test_tables_keep_the_rows_of_unchanged_movies_and_equal_a_full_parse(scaled, tmp_path, monkeypatch,
                                                                         stage, change, reader):
    """A stage's tables after one movie changed, then another changed and one left: each time
    only the changed movie's file is parsed again, and the bytes, counts and report are those
    of a parse of every movie."""
    root = Path(shutil.copytree(scaled[0], tmp_path / "project"))
    run = steps.Run(root, load_params(root), stage, stage_dir(root, stage), "test", {}, code_version(stage))
    order = read_table(run.folder / ("movies.parquet" if stage == "movie_plots" else "qa.parquet"),
                       "movies" if stage == "movie_plots" else "qa")["movie_id"].unique(maintain_order=True).to_list()
    parsed = []
    real = getattr(steps, reader)
    monkeypatch.setattr(steps, reader, lambda data: parsed.append(data) or real(data))
    change(run.folder / MOVIE_FILES / f"{order[3]}.json")
    for path, data in steps.ASSEMBLE[stage](run, order)[0].items():
        path.write_bytes(data)
    assert len(parsed) == 1
    change(run.folder / MOVIE_FILES / f"{order[8]}.json")
    ids = [m for m in reversed(order) if m != order[5]]  # another order than the tables on disk
    kept = steps.ASSEMBLE[stage](run, ids)
    assert len(parsed) == 2
    shutil.rmtree(ItemCache(root, "tables").dir)
    full = steps.ASSEMBLE[stage](run, ids)
    assert len(parsed) == 2 + len(ids)
    assert kept[0] == full[0]  # every table's bytes, and the gate report
    assert kept[1] == full[1] and kept[3] == full[3]
    assert kept[2].equals(full[2])
    if stage == "movie_plots":  # the parts the model could not write, of a kept movie and of a parsed one
        assert full[1]["quarantined_parts"] == 2


def test_plot_facts_are_kept_by_the_plot_bytes(scaled, tmp_path):
    """Staleness reads a plot's facts from the memo while its file is the same bytes, and the
    plot again once they change."""
    root = Path(shutil.copytree(scaled[0], tmp_path / "project"))
    run = steps.Run(root, load_params(root), "keyframes", stage_dir(root, "keyframes"), "test", {},
                    code_version("keyframes"))
    mid = sorted(p.stem for p in (stage_dir(root, "movie_plots") / MOVIE_FILES).glob("*.json"))[0]
    first = steps.plot_facts(run, mid)
    assert steps.plot_facts(run, mid) == first
    path = stage_dir(root, "movie_plots") / MOVIE_FILES / f"{mid}.json"
    plot = plot_from_json(path.read_bytes())
    frames = list(plot.frames)
    frames[0] = replace(frames[0], action=frames[0].action + " slowly")
    path.write_bytes(plot_to_json(replace(plot, frames=tuple(frames))))
    changed = steps.plot_facts(run, mid)
    assert changed["style"] == first["style"] and changed["drawn"] != first["drawn"]


def test_evaluation_reads_each_movies_facts_as_its_plot_gives_them(scaled):
    root = scaled[0]
    plots = read_plots(root)
    facts = steps.read_movie_facts(root)
    assert list(facts) == list(plots)  # the tables' movie order
    assert facts == {mid: movie_facts(plot) for mid, plot in plots.items()}
