"""Tests for the offline story writer: the rules users of a MoviePlot rely on."""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import fields, replace

import pytest

from dreamframe_assets.core.plot import MoviePlot, field_value
from dreamframe_assets.core.vocabulary import (
    EXPRESSION_ADJ,
    ACTIONS,
    CLOTHING_COLOURS,
    EXPRESSIONS,
    LOCATION_KINDS,
    OBJECTS,
    OVERVIEW_QUESTION,
)
from dreamframe_assets.story.offline import (
    FEMALE_NAMES,
    GENRE_MIX,
    MALE_NAMES,
    OfflineStoryWriter,
    level1,
    level2,
)

DEFAULT_THEMES = (
    "A lighthouse keeper finds a message in a bottle during a winter storm",
    "Two rival bakers must cook together for a village festival",
    "A young inventor builds a robot to save her family's farm",
    "A detective investigates a theft at a midnight train station",
    "Siblings get lost in an enchanted forest on the way to their grandmother",
    "An aging pianist prepares for one last concert",
    "A desert caravan guide protects travellers from a sandstorm",
    "A shy librarian discovers a secret map inside an old book",
    "Mountain climbers are trapped by an avalanche near the summit",
    "A street musician and a painter fall in love at the market",
    "A scientist's experiment opens a door to another world",
    "A haunted manor hides the truth about a missing heir",
)
ODD_THEMES = (
    "x",
    "!!!",
    "???...",
    "Über den Wolken, ein Traum",
    "灯塔守护者的冬天",
    "cats",
    "  spaced   out   theme  ",
    'A "quoted" theme; with: punctuation -- and/or symbols & 42 numbers!',
    "the the the the",
    "a " * 60 + "very long theme",
)
L, M, N = 2, 3, 5
WRITER = OfflineStoryWriter()


def write(theme: str, seed: int = 0, l: int = L, m: int = M, n: int = N) -> MoviePlot:
    return WRITER.write(theme, "movie_0001", seed, l, m, n)


@pytest.fixture(scope="module")
def default_plots() -> list[MoviePlot]:
    return [WRITER.write(t, f"movie_{i:04d}", 0, L, M, N) for i, t in enumerate(DEFAULT_THEMES)]


def resolve(plot: MoviePlot, source: str) -> str:
    """The text value a QA's source points at (the lookup the QA writer and oracle use)."""
    table, index, field = source.split(":")
    assert table in {"movie", "substory", "tinystory", "frame"}, source
    assert (index == "") == (table == "movie"), source
    value = field_value(plot, source)
    return EXPRESSION_ADJ[value] if field == "expression" else value  # "X looks happy." for a smiling frame


def same_field_values(plot: MoviePlot, source: str) -> list[str]:
    """The same field of every other item of the same table."""
    table, index, field = source.split(":")
    items = {"substory": plot.substories, "tinystory": plot.tinystories, "frame": plot.frames}.get(table, ())
    own = resolve(plot, source)
    return [str(getattr(x, field)) for x in items if str(getattr(x, field)) != own]


def norm(text: str) -> str:
    return text.lower().strip().rstrip(".")


def near_dup_key(f) -> tuple:
    return (f.characters, f.action, f.expression, f.held_object)


def all_text(plot: MoviePlot) -> list[str]:
    """Every generated string of a plot (the theme is the user's and excluded)."""
    out: list[str] = []
    items = [plot.movie, *plot.movie.locations, *plot.movie.characters, *plot.substories,
             *plot.tinystories, *plot.frames, *plot.dialogue, *plot.qa]
    for item in items:
        for f in fields(item):
            value = getattr(item, f.name)
            if isinstance(value, str) and f.name != "theme":
                out.append(value)
    return out


def check_plot(plot: MoviePlot, l: int, m: int, n: int) -> None:
    """Every structural rule of the contract, for one plot."""
    movie = plot.movie
    loc_kind = {loc.name: loc.kind for loc in movie.locations}
    chars = {c.char_id: c for c in movie.characters}

    # Level 1
    assert movie.title and movie.genre in GENRE_MIX
    assert len(re.findall(r"[.!?](\s|$)", movie.overview)) >= 3
    assert re.fullmatch(r"[A-Z][a-z]+", movie.style_keyword)
    assert 3 <= len(re.split(r", | and ", movie.style_description)) <= 4
    assert len(movie.locations) >= 12
    assert len(loc_kind) == len(movie.locations)
    assert all(loc.kind in LOCATION_KINDS for loc in movie.locations)
    assert 1 <= len(movie.characters) <= 3
    assert [c.char_id for c in movie.characters] == [f"c{i}" for i in range(len(movie.characters))]
    assert len({c.clothing_colour for c in movie.characters}) == len(movie.characters)
    assert len({c.name for c in movie.characters}) == len(movie.characters)
    for c in movie.characters:
        assert c.clothing_colour in CLOTHING_COLOURS
        assert c.appearance.endswith(f" in {c.clothing_colour}")
        assert re.fullmatch(r"[A-Z][a-z]+", c.name)
        assert "like" not in c.appearance and "resembl" not in c.appearance
    assert len(plot.substories) == l
    for i, s in enumerate(plot.substories):
        assert s.substory_index == i and s.movie_id == movie.movie_id
        assert s.scene in loc_kind and s.title and s.content
        assert s.cause and s.outcome
        if i:
            assert s.cause == plot.substories[i - 1].outcome
    assert len({s.content for s in plot.substories}) == l

    # Level 2
    assert len(plot.tinystories) == l * m
    assert [(t.substory_index, t.tinystory_index) for t in plot.tinystories] == [
        (i, j) for i in range(l) for j in range(m)
    ]
    assert all(t.scene in loc_kind and t.title and t.content for t in plot.tinystories)
    # Titles are unique over the movie, so questions that name one are unambiguous.
    assert len({s.title for s in plot.substories}) == l
    assert len({t.title for t in plot.tinystories}) == l * m

    # Level 3 frames
    assert len(plot.frames) == l * m * n
    assert [f.frame_index for f in plot.frames] == list(range(l * m * n))
    for k, f in enumerate(plot.frames):
        tiny = plot.tinystories[k // n]
        assert (f.substory_index, f.tinystory_index) == (tiny.substory_index, tiny.tinystory_index)
        assert f.location == tiny.scene
        assert f.location_kind == loc_kind[f.location]
        assert 1 <= len(f.characters) <= 3 and len(set(f.characters)) == len(f.characters)
        assert all(c in chars for c in f.characters)
        assert f.action in ACTIONS and f.expression in EXPRESSIONS
        if f.action == "hug":
            assert len(f.characters) >= 2
        if f.action == "hold":
            assert f.held_object is not None
        assert f.held_object is None or f.held_object in OBJECTS
        assert f.prompt.startswith(f"In {f.location}, ")
        assert f.prompt.endswith(f", with a {f.expression} expression.")
        assert " is " in f.prompt if len(f.characters) == 1 else " are " in f.prompt
        for c in f.characters:
            assert chars[c].appearance in f.prompt
        for c in movie.characters:
            assert c.name.lower() not in f.prompt.lower()
        assert "looks like" not in f.prompt

    # Near-duplicates: never three in a row; a pair has a line between them.
    lines_after = {}
    for d in plot.dialogue:
        lines_after.setdefault(d.after_frame, []).append(d.text)
    for k in range(1, len(plot.frames)):
        if near_dup_key(plot.frames[k]) == near_dup_key(plot.frames[k - 1]):
            assert k < 2 or near_dup_key(plot.frames[k - 2]) != near_dup_key(plot.frames[k])
            assert k - 1 in lines_after

    # Dialogue
    assert [d.line_index for d in plot.dialogue] == list(range(len(plot.dialogue)))
    assert [d.after_frame for d in plot.dialogue] == sorted(d.after_frame for d in plot.dialogue)
    for d in plot.dialogue:
        frame = plot.frames[d.after_frame]
        assert d.speaker in frame.characters
        assert chars[d.speaker].name.lower() not in d.text.lower()
        assert d.text.strip()

    # QA
    overview = [q for q in plot.qa if q.level == "movie"]
    assert len(overview) == 1
    assert overview[0].qtype == "overview" and overview[0].question == OVERVIEW_QUESTION
    assert overview[0].answer == movie.overview
    assert overview[0].evidence_frames == tuple(range(l * m * n))
    assert overview[0].source == "movie::overview"
    by_level = Counter(q.level for q in plot.qa)
    assert by_level["level1"] == l and by_level["level2"] == l
    assert l * m <= by_level["level3"] <= 2 * l * m
    per_sub = m * n
    for q in plot.qa:
        assert q.movie_id == movie.movie_id
        if q.level != "movie":
            assert q.qtype in {"what", "why", "how", "where"}
            assert 1 <= len(re.findall(r"[.!?](\s|$)", q.answer)) <= 2, q.answer
        value = resolve(plot, q.source)
        assert norm(value) in q.answer.lower(), (q.source, value, q.answer)
        if q.level in ("level1", "level2"):
            i = int(q.source.split(":")[1].split(".")[0])
            assert q.evidence_frames == tuple(range(i * per_sub, (i + 1) * per_sub))
        if q.level == "level3":
            assert len(q.evidence_frames) == n
            first = plot.frames[q.evidence_frames[0]]
            assert all(
                (plot.frames[k].substory_index, plot.frames[k].tinystory_index)
                == (first.substory_index, first.tinystory_index)
                for k in q.evidence_frames
            )
            if q.source.startswith("frame:"):
                k = int(q.source.split(":")[1])
                assert k in q.evidence_frames
                if q.source.endswith(":held_object"):
                    # Only one object fits: the character holds nothing else in this tinystory.
                    who = plot.frames[k].characters[0]
                    held = {plot.frames[e].held_object for e in q.evidence_frames
                            if plot.frames[e].characters[0] == who and plot.frames[e].held_object}
                    assert held == {plot.frames[k].held_object}
    assert all(text.isascii() for text in all_text(plot))


def test_identity_is_stable() -> None:
    assert WRITER.name == "offline"
    assert WRITER.identity() == OfflineStoryWriter().identity()
    assert WRITER.identity().startswith("offline-story/")


def test_same_theme_and_seed_give_equal_plots() -> None:
    assert write(DEFAULT_THEMES[0], seed=3) == write(DEFAULT_THEMES[0], seed=3)


def test_plot_does_not_depend_on_python_hash_state() -> None:
    # Random global state and a fresh writer must not matter.
    random.seed(12345)
    a = OfflineStoryWriter().write(DEFAULT_THEMES[1], "m", 7, 2, 2, 3)
    random.seed(54321)
    b = OfflineStoryWriter().write(DEFAULT_THEMES[1], "m", 7, 2, 2, 3)
    assert a == b


def test_different_seed_gives_different_plot() -> None:
    a, b = write(DEFAULT_THEMES[0], seed=0), write(DEFAULT_THEMES[0], seed=1)
    assert a != b
    assert a.frames != b.frames


def test_default_themes_satisfy_every_rule(default_plots: list[MoviePlot]) -> None:
    for plot in default_plots:
        check_plot(plot, L, M, N)


@pytest.mark.parametrize("seed", range(8))
def test_rules_hold_across_seeds_and_shapes(seed: int) -> None:
    shapes = [(1, 1, 1), (1, 2, 4), (3, 2, 2), (4, 3, 6), (5, 1, 3), (2, 4, 8), (6, 2, 2), (3, 3, 3)]
    l, m, n = shapes[seed]
    for theme in DEFAULT_THEMES[seed % 4 :: 4]:
        check_plot(write(theme, seed=seed, l=l, m=m, n=n), l, m, n)


def test_paper_sized_movie() -> None:
    plot = write(DEFAULT_THEMES[4], seed=2, l=11, m=11, n=11)
    check_plot(plot, 11, 11, 11)
    assert len(plot.frames) == 1331


def test_all_eight_actions_are_used(default_plots: list[MoviePlot]) -> None:
    used = {f.action for p in default_plots for f in p.frames}
    assert used == set(ACTIONS)


def test_character_names_never_in_prompts(default_plots: list[MoviePlot]) -> None:
    for plot in default_plots:
        for f in plot.frames:
            for c in plot.movie.characters:
                assert not re.search(rf"\b{c.name}\b", f.prompt, re.IGNORECASE)


def test_no_celebrity_lookalikes(default_plots: list[MoviePlot]) -> None:
    for plot in default_plots:
        for c in plot.movie.characters:
            assert not re.search(r"look(s)? like|resembl|lookalike|look-alike", c.appearance)
        for f in plot.frames:
            assert "looks like" not in f.prompt


def test_cause_chain_starts_from_the_theme(default_plots: list[MoviePlot]) -> None:
    for plot in default_plots:
        first = plot.substories[0].cause.lower()
        assert first in plot.movie.theme.lower()
        for prev, cur in zip(plot.substories, plot.substories[1:]):
            assert cur.cause == prev.outcome
    why = next(q for q in default_plots[0].qa if q.source.endswith(":cause"))
    assert why.answer.startswith("Because ")


def test_qa_answers_contain_their_source_field_and_not_distractors(default_plots: list[MoviePlot]) -> None:
    for plot in default_plots:
        for q in plot.qa:
            assert norm(resolve(plot, q.source)) in q.answer.lower()
            if q.level == "movie":
                continue
            for other in same_field_values(plot, q.source):
                assert norm(other) not in q.answer.lower(), (q.source, other, q.answer)


def test_qtypes_are_balanced(default_plots: list[MoviePlot]) -> None:
    total: Counter[str] = Counter()
    for plot in default_plots:
        kinds = Counter(q.qtype for q in plot.qa if q.level != "movie")
        assert max(kinds.values()) <= 0.4 * sum(kinds.values()), kinds
        total += kinds
    assert set(total) == {"what", "why", "how", "where"}
    big = write(DEFAULT_THEMES[0], l=11, m=11, n=2)
    kinds = Counter(q.qtype for q in big.qa if q.level != "movie")
    assert max(kinds.values()) <= 0.3 * sum(kinds.values()), kinds


def test_overviews_share_no_sentence(default_plots: list[MoviePlot]) -> None:
    seen: dict[str, int] = {}
    for i, plot in enumerate(default_plots):
        for sentence in re.split(r"(?<=[.!?])\s+", plot.movie.overview):
            assert sentence not in seen, (sentence, seen.get(sentence), i)
            seen[sentence] = i


def test_prose_varies_within_a_movie() -> None:
    plot = write(DEFAULT_THEMES[7], l=8, m=4, n=4)
    assert len({s.content for s in plot.substories}) == 8
    assert len({s.outcome for s in plot.substories}) == 8
    assert len({s.title for s in plot.substories}) == 8
    for i in range(8):
        tinies = [t for t in plot.tinystories if t.substory_index == i]
        assert len({t.content for t in tinies}) == len(tinies)
        assert len({t.title for t in tinies}) == len(tinies)
    texts = [d.text for d in plot.dialogue]
    assert len(set(texts)) >= 0.7 * len(texts)


def test_dialogue_density(default_plots: list[MoviePlot]) -> None:
    lines = sum(len(p.dialogue) for p in default_plots)
    frames = sum(len(p.frames) for p in default_plots)
    assert 0.4 * frames <= lines <= frames


def test_genre_follows_theme_keywords() -> None:
    assert write("A haunted house on the hill").movie.genre == "Horror"
    assert write("A detective hunts a jewel thief").movie.genre in {"Mystery", "Crime"}
    assert write("A theft at the museum").movie.genre in {"Mystery", "Crime"}
    assert write("Two strangers fall in love on a train").movie.genre == "Romance"
    assert write("A robot learns to paint").movie.genre == "Sci-Fi"
    assert write("A scientist loses her notes").movie.genre == "Sci-Fi"


def test_genre_mix_when_theme_is_silent() -> None:
    genres = Counter(write("An ordinary Tuesday", seed=s, l=1, m=1, n=1).movie.genre for s in range(60))
    assert len(genres) >= 4
    assert genres.most_common(1)[0][0] == "Drama"


def test_style_fits_genre() -> None:
    movie = write(DEFAULT_THEMES[11]).movie
    assert movie.genre == "Horror"
    assert movie.style_keyword in {"Gothic", "Macabre", "Eerie"}


def test_theme_nouns_become_locations(default_plots: list[MoviePlot]) -> None:
    lighthouse = {loc.name: loc.kind for loc in default_plots[0].movie.locations}
    assert lighthouse.get("the old lighthouse") == "lighthouse"
    station = {loc.name: loc.kind for loc in default_plots[3].movie.locations}
    assert "station" in station.values()
    forest = {loc.name: loc.kind for loc in default_plots[4].movie.locations}
    assert forest.get("the enchanted forest") == "forest"
    # Names make their kind recognisable and are never contained in one another.
    for plot in default_plots:
        names = [loc.name for loc in plot.movie.locations]
        for a in names:
            assert a.startswith("the ")
            assert not any(a != b and a in b for b in names)


def test_character_name_bank_has_no_nested_names() -> None:
    names = [n.lower() for n in FEMALE_NAMES + MALE_NAMES]
    assert len(set(names)) == len(names)
    for a in names:
        assert not any(a != b and a in b for b in names)


@pytest.mark.parametrize("theme", ODD_THEMES)
def test_odd_themes_do_not_crash(theme: str) -> None:
    plot = write(theme, seed=5, l=3, m=2, n=3)
    check_plot(plot, 3, 2, 3)
    assert plot.movie.theme == theme


@pytest.mark.parametrize("theme", ["", "   ", "\n\t"])
def test_blank_theme_is_rejected(theme: str) -> None:
    with pytest.raises(ValueError, match="theme"):
        write(theme)
    with pytest.raises(ValueError, match=re.escape(repr(theme))):
        write(theme)


@pytest.mark.parametrize("bad", [0, -1])
def test_counts_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError):
        WRITER.write("A theme", "m", 0, bad, 1, 1)
    with pytest.raises(ValueError):
        WRITER.write("A theme", "m", 0, 1, 1, bad)


def test_level2_sees_only_its_substory() -> None:
    l1 = level1(DEFAULT_THEMES[2], "m", 3, ["what", "why", "how"], random.Random(1))
    altered = replace(
        l1,
        substories=(
            replace(l1.substories[0], content="Something else entirely.", outcome="nothing"),
            l1.substories[1],
            replace(l1.substories[2], title="Another title", content="Other."),
        ),
    )
    assert level2(l1, 1, 4, "where", random.Random(9)) == level2(altered, 1, 4, "where", random.Random(9))
