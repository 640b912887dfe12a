"""The default dataset's QA, probed the way a skeptical researcher would: nothing a model
can answer without looking.

The QA are those ``dvc repro`` ships for this repository's params.yaml (its themes and
story files, its shape, seeds and gates), written and gated in process without drawing
the keyframes, which QA never reads.
"""

import re
from collections import Counter
from pathlib import Path

import pytest

from dreamframe_assets.core.ids import attempt_seed
from dreamframe_assets.core.params import load_params
from dreamframe_assets.core.store import plot_from_json
from dreamframe_assets.models.embed import TextEmbedder
from dreamframe_assets.pipeline import steps
from dreamframe_assets.pipeline.movies import movie_sources
from dreamframe_assets.qa.gates import apply_gates, reveal_pairs
from dreamframe_assets.qa.offline import OfflineQAWriter
from dreamframe_assets.story.offline import OfflineStoryWriter

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default_dataset(tmp_path_factory):
    """(plots by movie, shipped QAs) of the default dataset."""
    params = load_params(REPO)
    p = params.qa_pairs
    embedder = TextEmbedder(p.embedder, tmp_path_factory.mktemp("embeddings"))
    plots, qas = {}, []
    for mid, (kind, source) in movie_sources(REPO, params).items():
        data = steps._plots_compute(OfflineStoryWriter(), params, REPO, kind, source, mid,
                                    attempt_seed(params.movie_plots.seed, 0))
        plot = plots[mid] = plot_from_json(data)
        written = OfflineQAWriter().write(plot, p.grounded_per_frame, p.max_qtype_share, attempt_seed(p.seed, 0))
        kept, _, _ = apply_gates(plot, list(written.qas), len(plot.frames), embedder, **steps._qa_gate_params(params))
        qas += kept
    return plots, qas


def test_no_question_reveals_another_answer(default_dataset):
    plots, qas = default_dataset
    assert len(plots) >= 12 and len(qas) > 25 * len(plots)
    for mid in plots:
        mine = [qa for qa in qas if qa.movie_id == mid]
        assert reveal_pairs(mine) == [], mid


def test_no_question_names_a_look_a_colour_or_a_keyframes_place(default_dataset):
    """People are named by position, by their look without its colour (as options) or by
    name (never an answer); a keyframe's place is only ever an answer."""
    plots, qas = default_dataset
    for qa in qas:
        plot = plots[qa.movie_id]
        question = re.sub(r'"[^"]*"', "", qa.question)  # quoted titles and lines say what the movie says
        for c in plot.movie.characters:
            assert c.look not in question and not re.search(rf"\b{c.clothing_colour}\b", question), qa
        assert not any(f.location in question for f in plot.frames), qa
        names = {c.name for c in plot.movie.characters}
        assert not any(o in names for o in qa.options), qa


def test_an_options_frequency_in_its_movie_says_nothing(default_dataset):
    """Across a movie's QA the right option is no more frequent than the wrong ones: the
    share of questions where the most frequent option is right is about chance."""
    _, qas = default_dataset
    by_movie: dict[str, Counter] = {}
    for qa in qas:
        by_movie.setdefault(qa.movie_id, Counter()).update(qa.options)
    right = chance = 0.0
    for qa in qas:
        seen = by_movie[qa.movie_id]
        counts = [seen[o] - 1 for o in qa.options]  # the movie's other questions
        best = [i for i, c in enumerate(counts) if c == max(counts)]
        right += (qa.answer_index in best) / len(best)
        chance += 1 / len(qa.options)
    assert right / len(qas) <= chance / len(qas) + 0.05
