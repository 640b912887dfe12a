"""The pixel answerer reads count, clothing colour and who from frames the real renderer draws,
as drawn and re-encoded (half size, JPEG quality 75), in the old and the new question forms."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from dreamframe_assets.core.plot import QA, Character, Frame, Location, Movie, MoviePlot
from dreamframe_assets.core.vocabulary import CLOTHING_COLOURS, NUMBER_WORDS
from dreamframe_assets.evaluate.pixel import (
    COLOUR_NAMES,
    MAX_DISTANCE,
    PixelAnswerer,
    colour_name,
    find_figures,
    name_colours,
    nearest_colours,
    option_colour,
)
from dreamframe_assets.render.offline import OfflineRenderer, render_frame
from dreamframe_assets.story.offline import OfflineStoryWriter
from dreamframe_assets.style.offline import OfflineStyleLearner, style_spec

REPO = Path(__file__).resolve().parents[2]
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
# The old question forms name a person by slot; the new ones by side ("furthest to the left").
OLD_POSITIONS = {1: ("only",), 2: ("left", "right"), 3: ("left", "middle", "right")}
PERSON = {"only": "the only person", "left": "the person on the left", "middle": "the person in the middle",
          "right": "the person on the right"}
QTYPES = ("count", "colour", "who")


def reencode(image: np.ndarray, quality: int = 75) -> np.ndarray:
    """A keyframe as it comes back from a video site: resized by half, saved as JPEG, decoded."""
    pil = Image.fromarray(image)
    pil = pil.resize((pil.width // 2, pil.height // 2))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _frames(size: int) -> list[np.ndarray]:
    out = []
    for i, (kind, cast, action, held) in enumerate(SCENES):
        frame = Frame(MID, i, 0, 0, f"the {kind}", kind, cast, action, "smiling", held, "a prompt")
        out.append(render_frame(frame, CHARS, STYLES[i % len(STYLES)], size, size, seed=i))
    return out


def _qa(mid: str, n: int, qtype: str, question: str, options, answer: str, k: int) -> QA:
    options = tuple(options)
    return QA(mid, f"{mid}-q{n:04d}", "grounded", qtype, question, answer, options, options.index(answer), (k,), None,
              f"frame:{k}:{qtype}")


def _rotate(answer: str, wrong: list[str], slot: int) -> list[str]:
    """The answer among the wrong options at position ``slot`` (mod their count)."""
    slot %= len(wrong) + 1
    return wrong[:slot] + [answer] + wrong[slot:]


def old_form_questions(plot: MoviePlot) -> list[QA]:
    """The old forms, for every frame of ``plot``: count with 4 options, colour of "the only person" /
    "the person on the left" / "in the middle" / "on the right", and "Which of these people can be
    seen" with appearances that end in a colour."""
    chars = {c.char_id: c for c in plot.movie.characters}
    mid = plot.movie.movie_id
    qas: list[QA] = []
    for frame in plot.frames:
        k, cast = frame.frame_index, frame.characters
        where = f"keyframe {k + 1}"
        count = NUMBER_WORDS[len(cast) - 1]
        wrong = [w for w in NUMBER_WORDS[:4] if w != count][:3]
        qas.append(_qa(mid, len(qas), "count", f"How many people are in {where}?", _rotate(count, wrong, k), count, k))
        for slot, position in enumerate(OLD_POSITIONS.get(len(cast), ())):
            colour = chars[cast[slot]].clothing_colour
            wrong = [c for c in ("red", "teal", "black", "white", "blue", "pink", "green") if c != colour][:3]
            qas.append(_qa(mid, len(qas), "colour", f"What colour is {PERSON[position]} wearing in {where}?",
                           _rotate(colour, wrong, k + slot), colour, k))
        present = chars[cast[-1]].appearance
        worn = {chars[c].clothing_colour for c in cast}
        absent = [c.appearance for c in plot.movie.characters if c.char_id not in cast]
        absent += [f"{chars[cast[0]].look} in {c}" for c in COLOUR_NAMES if c not in worn]
        qas.append(_qa(mid, len(qas), "who", f"Which of these people can be seen in {where}?",
                       _rotate(present, absent[:3], k), present, k))
    return qas


def new_form_questions(plot: MoviePlot) -> list[QA]:
    """The new forms, built from the plot's frames (``frame.characters`` is the left-to-right
    drawing order): count with 3 options; the colour worn by the person furthest to the left /
    right; who is furthest to the left / right, the options being the cast's looks (no colour)."""
    cast_sheet = plot.movie.characters
    chars = {c.char_id: c for c in cast_sheet}
    colours = list(dict.fromkeys([c.clothing_colour for c in cast_sheet] + list(COLOUR_NAMES)))
    looks = [c.look for c in cast_sheet] + ["a stout man with a bushy beard", "a small girl with long red hair"]
    mid = plot.movie.movie_id
    qas: list[QA] = []
    for frame in plot.frames:
        k = frame.frame_index
        where = f"keyframe {k + 1}"
        count = NUMBER_WORDS[len(frame.characters) - 1]
        wrong = [w for w in NUMBER_WORDS if w != count][:2]
        qas.append(_qa(mid, len(qas), "count", f"How many people are in {where}?", _rotate(count, wrong, k), count, k))
        for i, side in enumerate(("left", "right")):
            person = chars[frame.characters[0 if side == "left" else -1]]
            wrong = [c for c in colours if c != person.clothing_colour][:3]
            qas.append(_qa(mid, len(qas), "colour", f"What colour is the person furthest to the {side} wearing in {where}?",
                           _rotate(person.clothing_colour, wrong, k + i), person.clothing_colour, k))
            wrong = [look for look in looks if look != person.look][:3]
            qas.append(_qa(mid, len(qas), "who", f"Who is furthest to the {side} in {where}?",
                           _rotate(person.look, wrong, k + i), person.look, k))
    return qas


# ---------------------------------------------------------------- hand-made scenes
def _hand_plot() -> MoviePlot:
    """PLOT with the frames of SCENES, to build questions from (the answerer never sees them)."""
    frames = tuple(Frame(MID, i, 0, 0, f"the {kind}", kind, cast, action, "smiling", held, "a prompt")
                   for i, (kind, cast, action, held) in enumerate(SCENES))
    return replace(PLOT, frames=frames)


def _questions() -> list[QA]:
    return old_form_questions(_hand_plot()) + new_form_questions(_hand_plot())


@pytest.mark.parametrize("size", [64, 128, 256])
def test_reads_count_colour_and_who_from_pixels(size):
    images = _frames(size)
    qas = _questions()
    picks = PixelAnswerer().answer(PLOT, qas, images)
    wrong = [(qa.question, qa.options, qa.answer, p) for qa, p in zip(qas, picks) if p != qa.answer_index]
    assert not wrong
    assert {qa.qtype for qa in qas} == PixelAnswerer().answers()


@pytest.mark.parametrize("size", [256, 512])
def test_reads_hand_scenes_re_encoded(size):
    images = [reencode(im) for im in _frames(size)]
    qas = _questions()
    picks = PixelAnswerer().answer(PLOT, qas, images)
    assert [(qa.question, p) for qa, p in zip(qas, picks) if p != qa.answer_index] == []


@pytest.mark.parametrize("size", [64, 256])
def test_figures_are_found_left_to_right(size):
    for image, (_, cast, _, _) in zip(_frames(size), SCENES):
        assert [f.colour for f in find_figures(image)] == [CHARS[c].clothing_colour for c in cast]


def test_figures_are_found_left_to_right_re_encoded():
    for image, (_, cast, _, _) in zip(_frames(256), SCENES):
        assert [f.colour for f in find_figures(reencode(image))] == [CHARS[c].clothing_colour for c in cast]


def test_non_square_frames():
    frame = Frame(MID, 0, 0, 0, "the hall", "hall", ("c1", "c2", "c0"), "hold", "calm", "camera", "a prompt")
    for w, h in ((96, 64), (64, 128), (300, 120)):
        image = render_frame(frame, CHARS, STYLES[0], w, h, seed=1)
        assert [f.colour for f in find_figures(image)] == ["teal", "black", "red"]
    image = render_frame(frame, CHARS, STYLES[1], 384, 256, seed=1)
    assert [f.colour for f in find_figures(reencode(image))] == ["teal", "black", "red"]


def test_abstains_on_what_pixels_cannot_show():
    images = _frames(64)
    others = [
        _qa(MID, 0, "action", "What is a tall woman in red doing in keyframe 1?", ("standing", "sitting", "hugging", "walking"), "standing", 0),
        _qa(MID, 1, "location", "Where does keyframe 1 take place?", ("the forest", "the hall", "the beach", "the shop"), "the forest", 0),
        _qa(MID, 2, "speaker", 'Who says "Hello"?', tuple(c.appearance for c in CAST), CAST[0].appearance, 0),
        _qa(MID, 3, "why", "Why does it rain?", ("Because a.", "Because b.", "Because c.", "Because d."), "Because a.", 0),
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
    qa = _qa(MID, 0, "count", "How many people are in keyframe 1?", ("one", "two", "three", "four"), "one", 0)
    assert PixelAnswerer().answer(PLOT, [qa], [blank]) == [-1]


def test_who_needs_one_consistent_option():
    """New who form: an option is the look of a cast member, who wears what the cast sheet says;
    a look that is no one's can't be right, and two options for the colour seen leave it open."""
    images = _frames(128)
    k = 2  # c2 (black) hugs c1 (teal)
    stranger = "a stout man with a bushy beard"
    options = (CHARS["c1"].look, CHARS["c2"].look, stranger)
    left = _qa(MID, 0, "who", "Who is furthest to the left in keyframe 3?", options, CHARS["c2"].look, k)
    right = _qa(MID, 1, "who", "Who is furthest to the right in keyframe 3?", options, CHARS["c1"].look, k)
    assert PixelAnswerer().answer(PLOT, [left, right], images) == [1, 0]
    nobody = replace(left, options=(CHARS["c0"].look, CHARS["c3"].look, stranger), answer_index=0)
    assert PixelAnswerer().answer(PLOT, [nobody], images) == [-1]
    twins = replace(PLOT, movie=replace(PLOT.movie, characters=(*CAST, Character("c4", "Ed", "a boy in black", "black"))))
    both = replace(left, options=(CHARS["c2"].look, "a boy", CHARS["c0"].look), answer_index=0)
    assert PixelAnswerer().answer(PLOT, [both], images) == [0]
    assert PixelAnswerer().answer(twins, [both], images) == [-1]


# ---------------------------------------------------------------- colour by name
def test_exact_clothing_colours_name_themselves():
    swatch = np.array([list(CLOTHING_COLOURS.values())], np.uint8)
    index, dist = nearest_colours(swatch)
    assert [COLOUR_NAMES[i] for i in index[0]] == list(CLOTHING_COLOURS)
    assert float(dist.max()) < 1.5


@pytest.mark.parametrize("shift", [-20, 20])
def test_a_shifted_shade_reads_as_its_colour(shift):
    """Red (200, 30, 30) darkened or lightened by ~20 and JPEG-noised is still read as red: by
    the nearest named colour, pixel by pixel, and as a person when it is a solid patch."""
    shade = np.clip(np.array(CLOTHING_COLOURS["red"]) + shift, 0, 255)
    assert colour_name(tuple(shade)) == "red"
    rng = np.random.default_rng(0)
    image = np.empty((96, 96, 3), np.float64)
    image[:] = (90, 110, 60)  # grass: no named colour
    image[20:80, 30:60] = shade  # a figure-sized patch of the shade
    image += rng.normal(0, 4, image.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=75)
    noisy = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    names = name_colours(noisy)
    patch = names[24:76, 34:56]
    assert np.mean(patch == COLOUR_NAMES.index("red")) > 0.95
    assert np.mean(names[:, :20] == -1) > 0.95  # the background is no colour
    assert [f.colour for f in find_figures(noisy)] == ["red"]


def test_a_background_at_the_renderers_clearance_is_no_one():
    """The renderer keeps backgrounds >= 52 RGB from every clothing colour: a frame filled with
    such colours, grain and JPEG included, holds no person."""
    rng = np.random.default_rng(1)
    for name, rgb in CLOTHING_COLOURS.items():
        direction = rng.normal(size=3)
        far = np.clip(np.array(rgb) + 56 * direction / np.linalg.norm(direction), 0, 255)
        image = np.clip(far + rng.normal(0, 3, (64, 64, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=75)
        noisy = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        assert name not in {f.colour for f in find_figures(noisy)}, (name, far)


def test_far_colours_are_no_colour():
    assert colour_name((90, 110, 60)) is None  # grass green is far from every clothing colour
    assert colour_name((200, 30, 30)) == "red"
    assert MAX_DISTANCE > 10  # a ~20 RGB shade (~7-10 delta E) stays named


def test_option_colour_is_the_last_colour_word():
    assert option_colour("a tall woman with short grey hair in red") == "red"
    assert option_colour("Grey") == "grey"
    assert option_colour("a man in a hat") is None


# ---------------------------------------------------------------- default movies
DEFAULT_MOVIES = 6  # of the default themes: 180 keyframes at the default size


@pytest.fixture(scope="module")
def default_movies() -> list[tuple[MoviePlot, list[np.ndarray]]]:
    """Movies as ``params.yaml`` builds them (default themes, story shape, style bank and
    keyframe size), through the real offline story writer, style learner and renderer."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    mp, sb, kf = params["movie_plots"], params["style_banks"], params["keyframes"]
    out = []
    for i, theme in enumerate(mp["themes"][:DEFAULT_MOVIES]):
        plot = OfflineStoryWriter().write(theme, f"movie-{i}", mp["seed"], mp["substories"], mp["tinystories"],
                                          mp["frames"])
        _, style = OfflineStyleLearner().learn(plot.movie, sb["references"], sb["size"], sb["seed"])
        out.append((plot, OfflineRenderer().render(plot, style, kf["width"], kf["height"], kf["seed"])))
    return out


def _pooled(default_movies, questions, encode) -> dict[str, float]:
    right: dict[str, list[float]] = {}
    for plot, images in default_movies:
        qas = questions(plot)
        images = [encode(im) for im in images]
        picks = PixelAnswerer().answer(replace(plot, frames=()), qas, images)
        for qa, p in zip(qas, picks):
            right.setdefault(qa.qtype, []).append(p == qa.answer_index)
    return {q: float(np.mean(v)) for q, v in right.items()}


ENCODINGS = {"drawn": lambda im: im, "re-encoded": reencode}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("form", ["new", "old"])
def test_default_movies_are_read_as_drawn_and_re_encoded(default_movies, encoding, form):
    questions = new_form_questions if form == "new" else old_form_questions
    acc = _pooled(default_movies, questions, ENCODINGS[encoding])
    assert set(acc) == set(QTYPES)
    assert all(a >= 0.95 for a in acc.values()), acc


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_default_movies_written_qa(default_movies, encoding):
    """The QA the offline writer ships for these movies (whatever its forms), answered from pixels."""
    from dreamframe_assets.qa.offline import OfflineQAWriter

    params = yaml.safe_load((REPO / "params.yaml").read_text())["qa_pairs"]

    def written(plot: MoviePlot) -> list[QA]:
        batch = OfflineQAWriter().write(plot, params["grounded_per_frame"], params["max_qtype_share"], params["seed"])
        return [qa for qa in batch.qas if qa.qtype in QTYPES]

    acc = _pooled(default_movies, written, ENCODINGS[encoding])
    assert acc and all(a >= 0.95 for a in acc.values()), acc
