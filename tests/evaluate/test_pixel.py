"""The pixel answerer reads count, clothing colour and who from frames the real renderer draws."""

from __future__ import annotations

import numpy as np
import pytest

from dreamframe_assets.core.plot import QA, Character, Frame, Location, Movie, MoviePlot
from dreamframe_assets.evaluate.pixel import PixelAnswerer, find_figures, option_colour
from dreamframe_assets.qa.offline import NUMBER_WORDS, POSITIONS
from dreamframe_assets.render.offline import render_frame
from dreamframe_assets.style.offline import style_spec

MID = "pixel-movie"
CAST = (
    Character("c0", "Ada", "a tall woman with short grey hair in red", "red"),
    Character("c1", "Ben", "a young man with curly black hair in teal", "teal"),
    Character("c2", "Cy", "an old man with white hair in black", "black"),
    Character("c3", "Di", "a girl with blonde hair in white", "white"),
)
CHARS = {c.char_id: c for c in CAST}
# A plot with the cast but NO frames: the answerer must get everything from pixels.
PLOT = MoviePlot(
    Movie(MID, "theme", "Title", "Drama", "An overview.", "dark gothic noir", "Gothic",
          (Location("the old hall", "hall"),), CAST),
    substories=(), tinystories=(), frames=(), dialogue=(),
)
STYLES = (style_spec("dark gothic noir, gloomy", "Gothic", 2), style_spec("whimsical bright cheerful colours", "Whimsical", 3))
# (location kind, characters left to right, action, held object)
SCENES = [
    ("forest", ("c0",), "stand", None),
    ("snowfield", ("c3",), "hold", "umbrella"),
    ("room", ("c2", "c1"), "hug", None),
    ("market", ("c1", "c0"), "talk", "lantern"),
    ("beach", ("c0", "c3", "c2"), "sit", "book"),
    ("station", ("c3", "c2", "c1"), "hug", "flower"),
    ("library", ("c2", "c0", "c1"), "walk", "sword"),
]
PERSON = {"only": "the only person", "left": "the person on the left", "middle": "the person in the middle",
          "right": "the person on the right"}


def _frames(size: int) -> list[np.ndarray]:
    out = []
    for i, (kind, cast, action, held) in enumerate(SCENES):
        frame = Frame(MID, i, 0, 0, f"the {kind}", kind, cast, action, "smiling", held, "a prompt")
        out.append(render_frame(frame, CHARS, STYLES[i % len(STYLES)], size, size, seed=i))
    return out


def _qa(n: int, qtype: str, question: str, options: tuple[str, ...], answer: str, k: int) -> QA:
    return QA(MID, f"{MID}-q{n:04d}", "grounded", qtype, question, answer, options, options.index(answer), (k,), None,
              f"frame:{k}:{qtype}")


def _questions() -> list[QA]:
    """count, colour at every position, and who, for every scene; answers rotate through the slots."""
    qas: list[QA] = []
    for k, (_, cast, _, _) in enumerate(SCENES):
        where = f"keyframe {k + 1}"
        count = NUMBER_WORDS[len(cast) - 1]
        options = tuple(NUMBER_WORDS[:4]) if len(cast) == 3 else ("four", count, "three", "six")
        qas.append(_qa(len(qas), "count", f"How many people are in {where}?", options, count, k))
        for slot, position in enumerate(POSITIONS[len(cast)]):
            colour = CHARS[cast[slot]].clothing_colour
            others = [c for c in ("red", "teal", "black", "white", "blue", "pink") if c != colour][:3]
            options = tuple(others[:slot % 4] + [colour] + others[slot % 4:])
            qas.append(_qa(len(qas), "colour", f"What colour is {PERSON[position]} wearing in {where}?",
                           options, colour, k))
        present = CHARS[cast[-1]].appearance
        absent = [c.appearance for c in CAST if c.char_id not in cast]
        absent += ["a tall woman with short grey hair in green", "a young man with curly black hair in purple"]
        options = tuple([present] + absent[:3]) if k % 2 else tuple(absent[:3] + [present])
        qas.append(_qa(len(qas), "who", f"Which of these people can be seen in {where}?", options, present, k))
    return qas


@pytest.mark.parametrize("size", [64, 128, 256])
def test_reads_count_colour_and_who_from_pixels(size):
    images = _frames(size)
    qas = _questions()
    picks = PixelAnswerer().answer(PLOT, qas, images)
    wrong = [(qa.question, qa.options, qa.answer, p) for qa, p in zip(qas, picks) if p != qa.answer_index]
    assert not wrong
    assert {qa.qtype for qa in qas} == PixelAnswerer().answers()


@pytest.mark.parametrize("size", [64, 256])
def test_figures_are_found_left_to_right(size):
    for image, (_, cast, _, _) in zip(_frames(size), SCENES):
        assert [f.colour for f in find_figures(image)] == [CHARS[c].clothing_colour for c in cast]


def test_non_square_frames():
    frame = Frame(MID, 0, 0, 0, "the hall", "hall", ("c1", "c2", "c0"), "hold", "calm", "camera", "a prompt")
    for w, h in ((96, 64), (64, 128), (300, 120)):
        image = render_frame(frame, CHARS, STYLES[0], w, h, seed=1)
        assert [f.colour for f in find_figures(image)] == ["teal", "black", "red"]


def test_abstains_on_what_pixels_cannot_show():
    images = _frames(64)
    others = [
        _qa(0, "action", "What is a tall woman in red doing in keyframe 1?", ("standing", "sitting", "hugging", "walking"), "standing", 0),
        _qa(1, "location", "Where does keyframe 1 take place?", ("the forest", "the hall", "the beach", "the shop"), "the forest", 0),
        _qa(2, "speaker", 'Who says "Hello"?', tuple(c.appearance for c in CAST), CAST[0].appearance, 0),
        _qa(3, "why", "Why does it rain?", ("Because a.", "Because b.", "Because c.", "Because d."), "Because a.", 0),
    ]
    assert PixelAnswerer().answer(PLOT, others, images) == [-1] * len(others)


def test_abstains_without_images_or_evidence():
    qas = _questions()[:3]
    assert PixelAnswerer().answer(PLOT, qas, None) == [-1] * 3
    stray = [QA(**{**qa.__dict__, "evidence_frames": (99,)}) for qa in qas]
    assert PixelAnswerer().answer(PLOT, stray, _frames(64)) == [-1] * 3


def test_a_frame_without_clothing_colours_has_no_one():
    blank = np.full((64, 64, 3), (90, 110, 60), np.uint8)
    assert find_figures(blank) == []
    qa = _qa(0, "count", "How many people are in keyframe 1?", ("one", "two", "three", "four"), "one", 0)
    assert PixelAnswerer().answer(PLOT, [qa], [blank]) == [-1]


def test_option_colour_is_the_last_colour_word():
    assert option_colour("a tall woman with short grey hair in red") == "red"
    assert option_colour("Grey") == "grey"
    assert option_colour("a man in a hat") is None
