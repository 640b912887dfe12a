"""The movie plot and its QA pairs: what every backend reads and writes.

A plot is the output of the three-level story expansion. Its pieces are plain
dataclasses so that a story writer (offline or LLM) and everything downstream
(style, render, qa, evaluate) agree on one shape, and each piece maps onto one table
under ``data/movie_plots/`` (see ``schemas.py``); the words they use are in
``vocabulary.py``. A ``QA`` is one multiple-choice question of ``data/qa_pairs/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, is_dataclass


@dataclass(frozen=True)
class Character:
    char_id: str  # stable within a movie: "c0", "c1", "c2"
    name: str  # used in dialogue and QA, never in frame prompts
    appearance: str  # e.g. "a tall woman with short grey hair in red"
    clothing_colour: str  # a key of CLOTHING_COLOURS

    @property
    def look(self) -> str:
        """The appearance without its clothing colour ("a tall woman with short grey hair"):
        how questions and options name a person, so that naming someone never answers a
        question about the colour they wear."""
        clause = re.search(rf"(?:,? (?:in|wearing|dressed in) [\w' -]*?\b{re.escape(self.clothing_colour)}\b[\w' -]*)$",
                           self.appearance)  # "... in red", "... in royal blue", "... wearing a green coat"
        return self.appearance[: clause.start()] if clause and clause.start() > 0 else self.appearance


@dataclass(frozen=True)
class Location:
    name: str  # e.g. "the old lighthouse"
    kind: str  # a member of LOCATION_KINDS


@dataclass(frozen=True)
class Movie:
    movie_id: str
    theme: str
    title: str
    genre: str
    overview: str
    style_description: str  # tone and look adjectives
    style_keyword: str  # one word, e.g. "Gothic"
    locations: tuple[Location, ...]
    characters: tuple[Character, ...]


@dataclass(frozen=True)
class Substory:
    """Level 1 unit. ``cause`` is why it happens: the previous substory's outcome."""

    movie_id: str
    substory_index: int
    title: str
    scene: str  # a location name of the movie
    content: str
    cause: str  # true answer to "why" questions about this substory
    outcome: str  # what it leads to; the next substory's cause


@dataclass(frozen=True)
class Tinystory:
    """Level 2 unit, a beat inside one substory."""

    movie_id: str
    substory_index: int
    tinystory_index: int  # within its substory
    title: str
    scene: str  # a location name of the movie; every frame of it is there
    content: str


@dataclass(frozen=True)
class Frame:
    """Level 3 unit: one keyframe, structured and as a text prompt."""

    movie_id: str
    frame_index: int  # 0-based, over the whole movie, in story order
    substory_index: int
    tinystory_index: int
    location: str  # == the tinystory's scene
    location_kind: str
    characters: tuple[str, ...]  # char_ids present, in drawing order (left to right)
    action: str  # one of ACTIONS
    expression: str  # one of EXPRESSIONS
    held_object: str | None  # one of OBJECTS, held by the first character
    prompt: str  # "In <place>, <appearance> is <action>..., with <expression>."


@dataclass(frozen=True)
class DialogueLine:
    movie_id: str
    line_index: int  # 0-based over the movie
    after_frame: int  # the frame this line follows
    speaker: str  # char_id, present in ``after_frame``
    text: str


@dataclass(frozen=True)
class PlotQA:
    """A QA pair written by the story levels (what / why / how / where / overview)."""

    movie_id: str
    level: str  # "movie", "level1", "level2", "level3"
    qtype: str  # "overview", "what", "why", "how", "where"
    question: str
    answer: str
    evidence_frames: tuple[int, ...]
    source: str  # where the answer lives in the plot, e.g. "substory:2:cause"


@dataclass(frozen=True)
class Quarantined:
    """A model answer that could not be used: kept with its prompt and the reason, never dropped."""

    movie_id: str
    stage: str  # "movie_plots" or "qa_pairs"
    step: str  # where in the stage, e.g. "level1", "level3:1.2", "qa:0.1"
    prompt: str  # the request's messages, as JSON
    response: str  # the raw text the model returned ("" if none)
    reason: str  # why it was not used


@dataclass(frozen=True)
class MoviePlot:
    movie: Movie
    substories: tuple[Substory, ...]
    tinystories: tuple[Tinystory, ...]
    frames: tuple[Frame, ...]
    dialogue: tuple[DialogueLine, ...]
    qa: tuple[PlotQA, ...] = field(default=())
    quarantine: tuple[Quarantined, ...] = field(default=())  # parts a model failed to write

    def character(self, char_id: str) -> Character:
        for c in self.movie.characters:
            if c.char_id == char_id:
                return c
        raise KeyError(f"{self.movie.movie_id}: no character {char_id!r}")


_FIELDS: dict[type, tuple[str, ...]] = {}
_SCALARS = (str, int, float, bool, type(None))


def plain(value):
    """Dataclasses as dicts, tuples as lists, all the way down: what ``dataclasses.asdict``
    gives, without its deep copy of every value (a whole dataset's plots are converted
    on every run of a stage)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind in (tuple, list):
        return [plain(v) for v in value]
    if kind is dict:
        return {k: plain(v) for k, v in value.items()}
    names = _FIELDS.get(kind)
    if names is None:
        if not (is_dataclass(value) and not isinstance(value, type)):
            return value
        names = _FIELDS[kind] = tuple(f.name for f in fields(value))
    return {name: plain(getattr(value, name)) for name in names}


def as_row(item) -> dict:
    """A dataclass as a table row (tuples become lists)."""
    return plain(item)


# ---------------------------------------------------------------- QA pairs
@dataclass(frozen=True)
class QA:
    movie_id: str
    qa_id: str
    level: str
    qtype: str
    question: str
    answer: str
    options: tuple[str, ...]
    answer_index: int
    evidence_frames: tuple[int, ...]
    subject: str | None
    source: str


@dataclass(frozen=True)
class QABatch:
    """A QA writer's output for one movie, with whatever a model failed to write."""

    qas: tuple[QA, ...]
    quarantine: tuple[Quarantined, ...] = ()


def number_qas(movie_id: str, rows: list[dict]) -> tuple[QA, ...]:
    return tuple(QA(movie_id=movie_id, qa_id=f"{movie_id}-q{i:04d}", **row) for i, row in enumerate(rows))


def field_value(plot: MoviePlot, source: str) -> str:
    """The text a ``source`` ("table:index:field") points at in the plot."""
    table, index, name = source.split(":", 2)
    if table == "movie":
        item = plot.movie
    elif table == "substory":
        item = plot.substories[int(index)]
    elif table == "tinystory":
        s, t = (int(x) for x in index.split("."))
        item = next(x for x in plot.tinystories if (x.substory_index, x.tinystory_index) == (s, t))
    elif table == "frame":
        item = plot.frames[int(index)]
    elif table == "qa":  # an imported QA whose answer lives only in the QA itself
        item = plot.qa[int(index)]
    else:
        raise ValueError(f"unknown QA source table {table!r} in {source!r}")
    return str(getattr(item, name))


def answer_key(text: str) -> str:
    """How answers and options are compared everywhere: stripped, no final period, lower case."""
    return text.strip().rstrip(".").lower()
