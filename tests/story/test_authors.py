"""Import of the paper authors' story files, and export of ours to their format."""

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from dreamframe_assets.core.schemas import validate
from dreamframe_assets.core.store import plot_rows, rows_table
from dreamframe_assets.qa.offline import OfflineQAWriter
from dreamframe_assets.qa.oracle import OracleAnswerer
from dreamframe_assets.story.authors import (
    StoryFormatError,
    export_story,
    import_story,
    read_story,
)
from dreamframe_assets.story.offline import OfflineStoryWriter

FIXTURE = Path(__file__).parents[1] / "fixtures" / "dreamframe_story_info_0.json"


@pytest.fixture(scope="module")
def imported():
    return read_story(FIXTURE, "story-crucible")


def test_the_authors_story_becomes_a_structured_movie(imported):
    p = imported
    assert (len(p.frames), len(p.substories), len(p.tinystories), len(p.qa)) == (1331, 11, 121, 144)
    for table, rows in plot_rows(p).items():
        validate(table, rows_table(table, rows))
    assert p.movie.title == "The Crucible of Fate" and p.movie.style_keyword == "Dramatic"
    first = p.frames[0]
    assert (first.location, first.location_kind, first.characters, first.action) == (
        "the blacksmith's shop", "shop", ("c0",), "stand")
    assert first.prompt.startswith("In the blacksmith's shop, a man in brown is standing")
    assert {f.substory_index for f in p.frames} == set(range(11))


def test_lookalikes_become_appearance_and_names_stay_out_of_prompts(imported):
    cast = {c.name: c for c in imported.movie.characters}
    assert cast["Eleanor"].appearance == "a woman in royal blue" and cast["Eleanor"].clothing_colour == "blue"
    assert cast["Baron Rigby"].clothing_colour == "green"
    for f in imported.frames:
        assert "looks like" not in f.prompt.lower()
        assert not any(name in f.prompt for name in cast)


def test_qas_get_their_parts_frames_and_dialogue_a_present_speaker(imported):
    p = imported
    overview, level1, level3 = p.qa[0], p.qa[1], p.qa[-1]
    assert overview.qtype == "overview" and len(overview.evidence_frames) == 1331
    assert level1.level == "level1" and level1.evidence_frames == tuple(range(121))
    assert level3.level == "level3" and level3.evidence_frames == tuple(range(1320, 1331))
    assert [q.qtype for q in p.qa].count("why") == 98
    for line in p.dialogue:
        assert line.speaker in p.frames[line.after_frame].characters


def test_imported_movie_gets_checked_multiple_choice_qa(imported):
    qas = list(OfflineQAWriter().write(imported, 1.0, 0.3, 0).qas)
    picks = OracleAnswerer().answer(imported, qas)
    assert all(pick == qa.answer_index for pick, qa in zip(picks, qas))
    why = next(q for q in qas if q.qtype == "why")
    assert all(o.strip() for o in why.options) and len(set(why.options)) == 4


def test_export_then_import_keeps_frames_dialogue_and_qa():
    plot = OfflineStoryWriter().write("A lighthouse keeper finds a message in a bottle", "m1", 0, 2, 2, 3)
    data = export_story(plot)
    assert set(data) == {"overview", "character", "img_diag", "QA"}
    assert data["img_diag"][0][1].startswith(f"generate an image in {plot.movie.style_keyword} style: In ")
    back = import_story(json.loads(json.dumps(data)), "m1")
    assert [f.prompt for f in back.frames] == [f.prompt for f in plot.frames]
    assert [f.location for f in back.frames] == [f.location for f in plot.frames]
    assert [d.text for d in back.dialogue] == [d.text for d in plot.dialogue]
    assert [q.question for q in back.qa] == [q.question for q in plot.qa]


def test_a_broken_file_names_itself_and_the_field(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text(json.dumps({"overview": "x", "character": {"A": "a man in red"}, "img_diag": "nope", "QA": []}))
    with pytest.raises(StoryFormatError, match=r"broken.json: field 'img_diag'"):
        read_story(bad, "m")
    bad.write_text("{not json")
    with pytest.raises(StoryFormatError, match="broken.json: not a readable JSON story"):
        read_story(bad, "m")


@pytest.mark.integration
def test_a_story_file_goes_through_the_whole_graph(built_project, monkeypatch):
    from ..conftest import materialize, metadata

    project = built_project  # the tiny themes are built; the story is the new movie
    monkeypatch.setenv("DREAMFRAME_ROOT", str(project))
    (project / "stories").mkdir()
    shutil.copy(FIXTURE, project / "stories" / "crucible.json")
    result = materialize(project)
    assert result.success
    md = metadata(result, "movie_plots")
    assert md["count_movies"] == 4 and md["cache_misses"] == 1
    index = pl.read_parquet(project / "data/keyframes/keyframes.parquet")
    story_id = next(m for m in index["movie_id"].unique() if m.startswith("story-"))
    assert index.filter(pl.col("movie_id") == story_id).height == 1331
    metrics = json.loads((project / "data/eval_scores/metrics.json").read_text())
    assert metrics["accuracy"]["oracle"]["overall"] == 1.0
