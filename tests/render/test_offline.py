"""The offline renderer draws what a frame says, readably from pixels."""

import dataclasses
import itertools

import numpy as np
import pytest

from dreamframe_assets.core.plot import Character, Frame, Movie, MoviePlot
from dreamframe_assets.core.vocabulary import (
    ACTIONS,
    CLOTHING_COLOURS,
    EXPRESSIONS,
    LOCATION_KINDS,
    OBJECTS,
)
from dreamframe_assets.render.offline import (
    HAIR_COLOURS,
    INK,
    MOUTH,
    OBJECT_COLOURS,
    SKIN_TONES,
    STOOL,
    TEAR,
    OfflineRenderer,
    render_frame,
)
from dreamframe_assets.style.offline import style_spec

CHARS = {
    "c0": Character("c0", "Ana", "a tall woman with short grey hair in red", "red"),
    "c1": Character("c1", "Bo", "a young man with black hair in blue", "blue"),
    "c2": Character("c2", "Cy", "a girl with blonde hair in yellow", "yellow"),
}
STYLE = style_spec("a warm painterly look", "Painterly", 1)
DARK = style_spec("dark gothic noir, gloomy", "Gothic", 2)
BRIGHT = style_spec("whimsical bright cheerful colours", "Whimsical", 3)
TOL = 30.0  # RGB distance that still counts as "that colour"


def frame(kind="room", chars=("c0",), action="stand", expression="calm", obj=None, index=0, place=None):
    return Frame("m1", index, 0, 0, place or f"the {kind}", kind, tuple(chars), action, expression, obj, "")


def colour_count(img: np.ndarray, rgb) -> int:
    d = np.linalg.norm(img.astype(float) - np.array(rgb, float), axis=2)
    return int((d < TOL).sum())


def clothing_present(img: np.ndarray, min_pixels: int) -> set[str]:
    return {name for name, rgb in CLOTHING_COLOURS.items() if colour_count(img, rgb) >= min_pixels}


def test_shape_dtype_and_determinism():
    f = frame("forest", ("c0", "c1"), "walk", "smiling")
    a = render_frame(f, CHARS, STYLE, 96, 64, seed=5)
    b = render_frame(f, CHARS, STYLE, 96, 64, seed=5)
    assert a.shape == (64, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render_frame(f, CHARS, STYLE, 96, 64, seed=6))  # grain follows the seed


@pytest.mark.parametrize("w,h", [(64, 64), (128, 80), (80, 128), (300, 200)])
def test_sizes(w, h):
    img = render_frame(frame("street", ("c0", "c1", "c2"), "hold", "smiling", "sword"), CHARS, STYLE, w, h, 0)
    assert img.shape == (h, w, 3)
    assert clothing_present(img, 5) == {"red", "blue", "yellow"}


@pytest.mark.parametrize("kind,action", list(zip(LOCATION_KINDS, itertools.cycle(ACTIONS))))
def test_clothing_colours_identify_the_cast(kind, action):
    """Each present character's colour is there as a solid region; no other clothing colour is."""
    for cast in (("c1",), ("c0", "c2"), ("c2", "c1", "c0")):
        img = render_frame(frame(kind, cast, action, "worried", "basket"), CHARS, DARK, 128, 128, 3)
        assert clothing_present(img, 1) == {CHARS[c].clothing_colour for c in cast}
        for c in cast:
            assert colour_count(img, CLOTHING_COLOURS[CHARS[c].clothing_colour]) > 150


def test_every_clothing_colour_survives_every_style():
    for name in CLOTHING_COLOURS:
        chars = {"c0": Character("c0", "X", "someone", name)}
        for style in (STYLE, DARK, BRIGHT):
            for kind in ("snowfield", "forest", "desert", "library"):
                img = render_frame(frame(kind, ("c0",), "stand"), chars, style, 96, 96, 1)
                assert clothing_present(img, 1) == {name}, (name, kind)


def test_figures_are_left_to_right_in_cast_order():
    img = render_frame(frame("hall", ("c2", "c0", "c1")), CHARS, STYLE, 160, 96, 0)

    def mean_x(name):
        d = np.linalg.norm(img.astype(float) - np.array(CLOTHING_COLOURS[name], float), axis=2)
        return np.nonzero(d < TOL)[1].mean()

    assert mean_x("yellow") < mean_x("red") < mean_x("blue")


def test_figures_do_not_overlap_except_hugs():
    """Columns holding one figure's clothing hold no other's (so figures can be counted)."""
    for action in ACTIONS:
        if action == "hug":
            continue
        img = render_frame(frame("market", ("c0", "c1", "c2"), action, obj="umbrella"), CHARS, STYLE, 128, 96, 0)
        cols = []
        for name in ("red", "blue", "yellow"):
            d = np.linalg.norm(img.astype(float) - np.array(CLOTHING_COLOURS[name], float), axis=2)
            xs = np.nonzero((d < TOL).any(axis=0))[0]
            cols.append((xs.min(), xs.max()))
        assert cols[0][1] < cols[1][0] and cols[1][1] < cols[2][0], action


def test_hug_figures_touch():
    img = render_frame(frame("garden", ("c0", "c1"), "hug", "smiling"), CHARS, STYLE, 128, 128, 0)
    red = np.linalg.norm(img.astype(float) - np.array(CLOTHING_COLOURS["red"], float), axis=2) < TOL
    blue = np.linalg.norm(img.astype(float) - np.array(CLOTHING_COLOURS["blue"], float), axis=2) < TOL
    near_red = red | np.roll(red, 1, 1) | np.roll(red, -1, 1) | np.roll(red, 1, 0) | np.roll(red, -1, 0)
    # arms around each other: each colour reaches over the other's body
    assert (near_red & blue).any()
    rx, bx = np.nonzero(red)[1], np.nonzero(blue)[1]
    assert rx.max() > bx.min() and bx.min() < rx.max()


def test_location_kinds_look_different():
    imgs = {k: render_frame(frame(k, ()), CHARS, STYLE, 64, 64, 0).astype(float) for k in LOCATION_KINDS}
    for a, b in itertools.combinations(LOCATION_KINDS, 2):
        assert np.abs(imgs[a] - imgs[b]).mean() > 12, (a, b)


def test_same_place_same_background_across_frames():
    still = dataclasses.replace(STYLE, grain=0.0)
    a = render_frame(frame("harbor", (), index=0, place="the old pier"), CHARS, still, 96, 96, 1)
    b = render_frame(frame("harbor", (), index=7, place="the old pier"), CHARS, still, 96, 96, 2)
    c = render_frame(frame("harbor", (), index=0, place="the north dock"), CHARS, still, 96, 96, 1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_actions_and_expressions_change_the_figure():
    base = render_frame(frame("room", ("c0",), "stand", "calm"), CHARS, STYLE, 128, 128, 0)
    for action in ACTIONS[1:]:
        img = render_frame(frame("room", ("c0",), action, "calm"), CHARS, STYLE, 128, 128, 0)
        assert np.abs(img.astype(float) - base).mean() > 0.3, action
    faces = [render_frame(frame("room", ("c0",), "stand", e), CHARS, STYLE, 256, 256, 0) for e in EXPRESSIONS]
    for a, b in itertools.combinations(range(len(faces)), 2):
        assert not np.array_equal(faces[a], faces[b]), (EXPRESSIONS[a], EXPRESSIONS[b])


def test_objects_are_drawn_and_distinct():
    none = render_frame(frame("room", ("c0",), "hold"), CHARS, STYLE, 128, 128, 0)
    imgs = [render_frame(frame("room", ("c0",), "hold", obj=o), CHARS, STYLE, 128, 128, 0) for o in OBJECTS]
    for o, img in zip(OBJECTS, imgs):
        assert (np.abs(img.astype(int) - none).sum(axis=2) > 30).sum() > 20, o
    for a, b in itertools.combinations(range(len(OBJECTS)), 2):
        assert not np.array_equal(imgs[a], imgs[b]), (OBJECTS[a], OBJECTS[b])


def test_figure_colours_stay_clear_of_clothing():
    """Skin, hair, ink, objects etc. must never read as a clothing colour."""
    others = [INK, MOUTH, STOOL, TEAR, *SKIN_TONES, *HAIR_COLOURS.values()]
    others += [c for pair in OBJECT_COLOURS.values() for c in pair]
    for rgb in others:
        for name, cloth in CLOTHING_COLOURS.items():
            assert np.linalg.norm(np.subtract(rgb, cloth)) >= 45, (rgb, name)


def grain_level(img: np.ndarray) -> float:
    """Robust spread of the fine detail in a channel difference: film grain, not edges."""
    d = img[:, :, 0].astype(float) - img[:, :, 1]
    lap = d[1:-1, 1:-1] - 0.25 * (d[:-2, 1:-1] + d[2:, 1:-1] + d[1:-1, :-2] + d[1:-1, 2:])
    return float(np.median(np.abs(lap)))


def chroma(img: np.ndarray) -> float:
    f = img.astype(float)
    return float((f.max(axis=2) - f.min(axis=2)).mean())


def test_frames_of_a_movie_share_its_style():
    """Across different places, a movie's frames keep its grain and colourfulness, and
    those separate it from a movie in another style."""
    noir = style_spec("noir, gritty", "Noir", 1)
    kinds = ("forest", "street", "room", "beach", "market", "snowfield")
    for stat in (grain_level, chroma):
        a = [stat(render_frame(frame(k, ("c0",), index=i), CHARS, noir, 128, 128, i)) for i, k in enumerate(kinds)]
        b = [stat(render_frame(frame(k, ("c0",), index=i), CHARS, BRIGHT, 128, 128, i)) for i, k in enumerate(kinds)]
        assert max(a) < min(b) or max(b) < min(a), stat.__name__


def test_offline_renderer_renders_every_frame_in_order():
    movie = Movie("m1", "t", "T", "Drama", "o", "warm", "Warm", (), tuple(CHARS.values()))
    frames = tuple(frame(k, ("c0", "c1"), a, index=i) for i, (k, a) in enumerate(zip(LOCATION_KINDS[:4], ACTIONS)))
    plot = MoviePlot(movie, (), (), frames, ())
    r = OfflineRenderer()
    assert r.name == "offline" and r.identity()
    out = r.render(plot, STYLE, 80, 64, seed=10)
    assert len(out) == len(frames)
    for f, img in zip(frames, out):
        assert np.array_equal(img, render_frame(f, CHARS, STYLE, 80, 64, 10 + f.frame_index))
