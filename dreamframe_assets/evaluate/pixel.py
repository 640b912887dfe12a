"""The pixel answerer: reads people and clothing colours straight off the keyframes.

What it relies on is how the offline renderer draws (``render/offline.py``): every
person's clothing is one flat patch of their CLOTHING_COLOURS colour (torso, arms,
legs, each outlined in ink), cast members wear distinct colours, and everything else
(background, skin, hair, objects, ink) is kept >= 45-52 RGB away from every clothing
colour. It does not rely on those colours surviving to the byte: a keyframe that was
resized and saved as JPEG has its clothing shifted by several units and smeared at
its edges, and its textured backgrounds averaged, so that some background pixels come
closer to a clothing colour than the renderer left them. So it reads in two steps.

1. **Nearest named colour.** Every pixel is named by the nearest CLOTHING_COLOURS
   colour in CIELAB, where distance follows what the eye sees (a darker or lighter
   red is still nearer red than anything else), or by none when the nearest is more
   than MAX_DISTANCE away (most of a background). One lookup in a 128^3 table.
2. **Solid patches, not pixels.** A background pixel that drifted towards a colour
   does so alone, or in a speckle where texture and grain were averaged; clothing is
   a solid patch. A pixel is a *core* pixel of a colour when it is within
   CORE_DISTANCE of it and so are most of its 3x3 neighbours. Compression moves
   a patch's inside little, so a figure keeps a core of a few percent of the image,
   while a background nearly never has one: the renderer's clearance holds on
   average, and what drifted into a colour is too speckled to make a core.

A colour with enough core pixels (MIN_SHARE of the image, and MIN_OF_LARGEST of
the frame's largest, as figures of one frame are drawn at one scale) is one person,
and the x centroid of its core places them left to right. That makes ``count``,
``colour`` and ``who`` checkable from pixels alone, on frames as drawn and on frames
re-encoded (half size and JPEG quality 75): evidence that those questions are
answerable from what is drawn, not only from the plot. On the default movies (four
seeds, 1,440 keyframes at 256 px) it reads every one right either way; the tests
ask >= 0.95 per qtype. Past that it degrades gently (JPEG quality 50 at half size:
~0.98; a quarter of the size, where limbs are 1-2 px: ~0.85-0.9).

It never reads ``plot.frames``. For ``who`` it reads the cast sheet
(``plot.movie.characters``): an option names a person by their look ("a tall woman
with short grey hair"), and the cast sheet says what that person wears; the old
form's options name the colour themselves ("... in red"). Other qtypes get -1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..core.plot import QA, MoviePlot
from ..core.vocabulary import CLOTHING_COLOURS, NUMBER_WORDS

COLOUR_NAMES: tuple[str, ...] = tuple(CLOTHING_COLOURS)
# CIELAB distance (CIE76 delta E) beyond which a pixel is no named colour at all.
# Clothing shifted by ~20 RGB (a darker or lighter shade) is ~7-10 away; JPEG moves a
# patch's edge pixels further.
MAX_DISTANCE = 20.0
# A core pixel is this close to its colour ... The renderer keeps backgrounds >= 52 RGB
# from every clothing colour, which is >= 7-14 delta E depending on the colour; compression
# moves the inside of a clothing patch by a median of ~5-7.
CORE_DISTANCE = 8.0
# ... and so are at least this many of the 9 pixels of its 3x3 neighbourhood (itself included).
CORE_NEIGHBOURS = 7
# A colour is a person when its core covers at least this share of the image (a figure's
# clothing is ~3-6% of a drawn frame, and keeps a core of >= ~0.6% when re-encoded at half
# size; backgrounds leave cores of < 0.3%) ...
MIN_SHARE = 0.004
# ... and at least this share of the largest core in the frame (figures of one frame
# are drawn at one scale).
MIN_OF_LARGEST = 0.2
LUT_BITS = 7  # RGB is looked up at 7 bits a channel: <= 1 unit off, well under a delta E

_COLOUR_WORD = re.compile(r"\b(" + "|".join(sorted(COLOUR_NAMES, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_WORN = re.compile(r"\b(?:in|wearing)\s+(" + "|".join(sorted(COLOUR_NAMES, key=len, reverse=True)) + r")\W*$",
                   re.IGNORECASE)


@dataclass(frozen=True)
class Figure:
    """One person found in a frame: the colour they wear and where."""

    colour: str
    pixels: int  # core pixels of their clothing
    x: float  # x centroid of those pixels, in pixels


# ---------------------------------------------------------------- colour
def srgb_to_lab(rgb) -> np.ndarray:
    """sRGB (0..255, any shape ending in 3) to CIELAB (D65), float32."""
    c = np.asarray(rgb, np.float32) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]], np.float32)
    xyz = (c @ m.T) / np.array([0.95047, 1.0, 1.08883], np.float32)
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(np.maximum(xyz, eps)), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
                    axis=-1).astype(np.float32)


PALETTE_LAB = srgb_to_lab(np.array([CLOTHING_COLOURS[n] for n in COLOUR_NAMES]))


@lru_cache(maxsize=1)
def _nearest_lut() -> tuple[np.ndarray, np.ndarray]:
    """Per 7-bit RGB cell: the index of the nearest named colour in CIELAB, and the distance
    to it (float16). Built once (~0.4 s); after that, naming a frame is one lookup a pixel."""
    step = 1 << (8 - LUT_BITS)
    centre = np.arange(0, 256, step, dtype=np.float32) + (step - 1) / 2
    grid = np.stack(np.meshgrid(centre, centre, centre, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = srgb_to_lab(grid)
    best = np.full(len(lab), np.inf, np.float32)
    index = np.zeros(len(lab), np.uint8)
    for i, ref in enumerate(PALETTE_LAB):  # squared distances; one square root at the end
        d = lab - ref
        d = np.einsum("ij,ij->i", d, d)
        closer = d < best
        best[closer] = d[closer]
        index[closer] = i
    return index, np.sqrt(best).astype(np.float16)


def _as_rgb(image) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img


def nearest_colours(image) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of an HxWx3 image: the index into COLOUR_NAMES of the nearest named
    colour in CIELAB (int16), and its distance (float32)."""
    img = _as_rgb(image)
    index, dist = _nearest_lut()
    shift = 8 - LUT_BITS
    cell = ((img[..., 0].astype(np.int32) >> shift) << (2 * LUT_BITS)) | \
           ((img[..., 1].astype(np.int32) >> shift) << LUT_BITS) | (img[..., 2].astype(np.int32) >> shift)
    return index[cell].astype(np.int16), dist[cell].astype(np.float32)


def name_colours(image, max_distance: float = MAX_DISTANCE) -> np.ndarray:
    """Per pixel, the index into COLOUR_NAMES of its nearest named colour, or -1 where
    that is more than ``max_distance`` (delta E) away."""
    index, dist = nearest_colours(image)
    return np.where(dist <= max_distance, index, -1).astype(np.int16)


def colour_name(rgb, max_distance: float = MAX_DISTANCE) -> str | None:
    """The named colour an RGB value reads as ((180, 20, 25) -> "red"), or None."""
    i = int(name_colours(np.asarray(rgb, np.uint8).reshape(1, 1, 3), max_distance)[0, 0])
    return COLOUR_NAMES[i] if i >= 0 else None


def _same_neighbours(labels: np.ndarray) -> np.ndarray:
    """How many of each pixel's 3x3 neighbourhood (itself included) have its label."""
    h, w = labels.shape
    padded = np.full((h + 2, w + 2), -2, labels.dtype)
    padded[1:-1, 1:-1] = labels
    same = np.zeros((h, w), np.uint8)
    for dy in range(3):
        for dx in range(3):
            same += padded[dy:dy + h, dx:dx + w] == labels
    return same


def find_figures(image) -> list[Figure]:
    """The people in a keyframe (HxWx3), left to right: one per clothing colour that has
    a solid core of enough pixels."""
    index, dist = nearest_colours(image)
    h, w = index.shape
    core = np.where(dist <= CORE_DISTANCE, index, -1)
    core = np.where(_same_neighbours(core) >= CORE_NEIGHBOURS, core, -1)
    kept = core >= 0
    bins = len(COLOUR_NAMES)
    labels = core[kept]
    counts = np.bincount(labels, minlength=bins)
    x_sums = np.bincount(labels, weights=np.nonzero(kept)[1].astype(np.float64), minlength=bins)
    found = [Figure(name, int(counts[i]), float(x_sums[i] / counts[i]))
             for i, name in enumerate(COLOUR_NAMES) if counts[i] >= max(1.0, MIN_SHARE * h * w)]
    if not found:
        return []
    largest = max(f.pixels for f in found)
    return sorted((f for f in found if f.pixels >= MIN_OF_LARGEST * largest), key=lambda f: f.x)


# ---------------------------------------------------------------- questions
def option_colour(option: str) -> str | None:
    """The clothing colour an option names: its last colour word ("... grey hair in red" -> red)."""
    words = _COLOUR_WORD.findall(option)
    return words[-1].lower() if words else None


def _norm(text: str) -> str:
    return " ".join(text.strip().rstrip(".").lower().split())


def _position(question: str) -> str | None:
    """Which figure a question asks about: "only", "left", "middle" or "right"."""
    q = _norm(question)
    for words, position in (("furthest to the left", "left"), ("furthest to the right", "right"),
                            ("farthest to the left", "left"), ("farthest to the right", "right"),
                            ("only person", "only"), ("on the left", "left"), ("in the middle", "middle"),
                            ("on the right", "right")):
        if words in q:
            return position
    return None


def _at(figures: list[Figure], position: str) -> Figure | None:
    if position == "only":
        return max(figures, key=lambda f: f.pixels)
    if position == "middle":
        return figures[len(figures) // 2] if len(figures) % 2 else None
    return figures[0 if position == "left" else -1]


def _worn(plot: MoviePlot | None, option: str) -> set[str]:
    """The clothing colours a who-option may stand for: through the cast sheet (the option is
    a cast member's look or appearance), else the colour it names as worn ("... in red")."""
    text = _norm(option)
    cast = plot.movie.characters if plot is not None else ()
    by_sheet = {c.clothing_colour for c in cast if text in (_norm(c.appearance), _norm(c.look))}
    if by_sheet:
        return by_sheet
    worn = _WORN.search(text)
    return {worn.group(1).lower()} if worn else set()


def _unique(hits: list[int]) -> int:
    return hits[0] if len(hits) == 1 else -1


class PixelAnswerer:
    """Answers count / colour / who from the evidence keyframe's pixels; abstains on the rest."""

    name = "pixel"

    def answers(self) -> set[str]:
        """The qtypes it attempts (the rest are -1), so accuracy can be reported on those."""
        return {"count", "colour", "who"}

    def answer(self, plot: MoviePlot, qas: list[QA], images=None) -> list[int]:
        figures: dict[int, list[Figure]] = {}
        picks = []
        for qa in qas:
            k = qa.evidence_frames[0] if qa.evidence_frames else -1
            if qa.qtype not in self.answers() or images is None or not 0 <= k < len(images):
                picks.append(-1)
                continue
            if k not in figures:
                figures[k] = find_figures(images[k])
            picks.append(self.answer_one(qa, figures[k], plot))
        return picks

    def answer_one(self, qa: QA, figures: list[Figure], plot: MoviePlot | None = None) -> int:
        """The option the figures found in the evidence frame support (-1: none, or several)."""
        options = [_norm(o) for o in qa.options]
        if not figures:
            return -1
        if qa.qtype == "count":
            n = len(figures)
            return _unique([i for i, o in enumerate(options) if n <= len(NUMBER_WORDS) and o == NUMBER_WORDS[n - 1]])
        position = _position(qa.question)
        if qa.qtype == "colour":
            person = _at(figures, position) if position else None
            return -1 if person is None else _unique([i for i, o in enumerate(options) if o == person.colour])
        if qa.qtype == "who":
            if position is None:  # "Which of these people can be seen in keyframe 3?"
                present = {f.colour for f in figures}
                return _unique([i for i, o in enumerate(qa.options) if _worn(plot, o) & present])
            person = _at(figures, position)
            return -1 if person is None else _unique(
                [i for i, o in enumerate(qa.options) if person.colour in _worn(plot, o)])
        return -1
