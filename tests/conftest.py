"""Shared test fixtures: a hand-made plot, and a tiny project folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from dreamframe_assets.core.plot import (
    Character,
    DialogueLine,
    Frame,
    Location,
    Movie,
    MoviePlot,
    PlotQA,
    Substory,
    Tinystory,
)

REPO = Path(__file__).resolve().parents[1]

TINY_THEMES = [
    "A lighthouse keeper finds a message in a bottle during a winter storm",
    "Two rival bakers must cook together for a village festival",
    "A haunted manor hides the truth about a missing heir",
]


def tiny_params(themes=TINY_THEMES) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["movie_plots"].update(themes=list(themes), substories=2, tinystories=2, frames=3)
    params["style_banks"].update(references=2, size=64)
    params["keyframes"].update(width=96, height=64)
    return params


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with tiny params (3 movies, 12 frames each)."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    shutil.copy(REPO / "themes.txt", tmp_path / "themes.txt")
    return tmp_path


def make_plot() -> MoviePlot:
    """A small plot written by hand, so QA and answerer tests know every answer."""
    mid = "test-movie"
    kinds = ["lighthouse", "beach", "room", "harbor", "forest", "street", "shop", "hall",
             "mountain", "garden", "library", "market"]
    locations = tuple(Location(f"the {k} place", k) for k in kinds)
    cast = (
        Character("c0", "Mara", "a tall woman with short grey hair in red", "red"),
        Character("c1", "Tomas", "a young man with curly black hair in blue", "blue"),
    )
    movie = Movie(mid, "a test theme", "The Test", "Drama", "Mara keeps the lighthouse place. Tomas arrives by boat.",
                  "moody, misty, muted", "Dramatic", locations, cast)
    subs = (
        Substory(mid, 0, "The Storm", "the lighthouse place", "Mara sees a light at sea.",
                 "a storm blew in from the north", "a boat ran aground on the rocks"),
        Substory(mid, 1, "The Rescue", "the harbor place", "Mara and Tomas mend the boat.",
                 "a boat ran aground on the rocks", "the village learned of the wreck"),
    )
    tinys = (
        Tinystory(mid, 0, 0, "Watch", "the lighthouse place", "Mara watches the sea."),
        Tinystory(mid, 1, 0, "Mend", "the harbor place", "They mend the hull."),
    )
    frames = []
    specs = [
        (0, "the lighthouse place", "lighthouse", ("c0",), "look", "worried", None),
        (0, "the lighthouse place", "lighthouse", ("c0",), "hold", "determined", "lantern"),
        (0, "the lighthouse place", "lighthouse", ("c0", "c1"), "talk", "surprised", None),
        (1, "the harbor place", "harbor", ("c0", "c1"), "hug", "smiling", None),
        (1, "the harbor place", "harbor", ("c1",), "squat", "calm", None),
        (1, "the harbor place", "harbor", ("c1", "c0"), "walk", "laughing", None),
    ]
    for i, (s, loc, kind, chars, action, expr, obj) in enumerate(specs):
        frames.append(Frame(mid, i, s, 0, loc, kind, chars, action, expr, obj, f"In {loc}, someone is {action}."))
    dialogue = (
        DialogueLine(mid, 0, 0, "c0", "Something is out there."),
        DialogueLine(mid, 1, 2, "c1", "My boat is on the rocks!"),
        DialogueLine(mid, 2, 3, "c0", "You are safe now."),
    )
    qa = (
        PlotQA(mid, "movie", "overview", "Describe in detail the events that occur in this movie.",
               movie.overview, tuple(range(6)), "movie::overview"),
        PlotQA(mid, "level1", "why", "Why does the boat run aground?",
               "Because a storm blew in from the north.", (0, 1, 2), "substory:0:cause"),
        PlotQA(mid, "level1", "what", "What happens after the rescue?",
               "The village learned of the wreck.", (3, 4, 5), "substory:1:outcome"),
        PlotQA(mid, "level3", "where", "Where do they mend the boat?",
               "They mend it at the harbor place.", (3, 4, 5), "tinystory:1.0:scene"),
    )
    return MoviePlot(movie, subs, tinys, tuple(frames), dialogue, qa)


@pytest.fixture
def plot() -> MoviePlot:
    return make_plot()
