"""The offline themes generator: as many themes as asked, the same per seed, none alike."""

from __future__ import annotations

import itertools
import tempfile

import numpy as np
import pytest

from dreamframe_assets.core.ids import movie_id_for
from dreamframe_assets.core.params import EmbedderParams, QAPairsParams
from dreamframe_assets.models.embed import TextEmbedder
from dreamframe_assets.story.offline import theme_facts
from dreamframe_assets.story.themes import GOALS, PLACES, ROLES, TIMES, most_themes, offline_themes


def slots(theme: str) -> tuple[str, str, str, str]:
    """(role, goal, place, time) read back from a theme."""
    words = theme.split()
    role = next(r for r in ROLES if f" {r} " in f" {' '.join(words[:4])} ")
    found = [next(p for p in phrases if f" {p}" in theme) for phrases in (GOALS, PLACES, TIMES)]
    return role, *found


def test_count_distinct_ids_and_the_same_per_seed():
    themes = offline_themes(1000, seed=0)
    assert len(themes) == 1000 == len(set(themes)) == len({movie_id_for(t) for t in themes})
    assert offline_themes(1000, seed=0) == themes
    assert offline_themes(1200, seed=0)[:1000] == themes  # more themes add to the list
    assert len(set(offline_themes(100, seed=1)) & set(themes)) < 10


def test_no_two_themes_share_three_of_their_four_phrases():
    parts = [slots(t) for t in offline_themes(1000, seed=3)]
    for which in itertools.combinations(range(4), 3):
        keys = [tuple(p[i] for i in which) for p in parts]
        assert len(keys) == len(set(keys)), which


def test_no_two_themes_are_near_duplicates():
    """Measured with the sentence embeddings the QA gates use, against their threshold."""
    themes = offline_themes(300, seed=0)
    vectors = TextEmbedder(EmbedderParams(), tempfile.mkdtemp()).encode(themes)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1.0)
    assert sims.max() < QAPairsParams().near_duplicate_threshold


def test_the_story_writer_reads_each_themes_protagonist():
    for theme in offline_themes(50, seed=2):
        assert theme_facts(theme).role.split()[-1] == slots(theme)[0], theme  # "young librarian"


def test_more_themes_than_the_phrases_allow_is_one_clear_error():
    with pytest.raises(ValueError, match=f"count: {most_themes() + 1} themes do not fit"):
        offline_themes(most_themes() + 1)
