"""The pixel answerer: reads people and clothing colours straight off the keyframes.

The offline renderer paints clothing in the exact CLOTHING_COLOURS and keeps
everything else (background, skin, hair, objects, outline ink) at least ~45 RGB
away from them, so the pixels within a small distance of a clothing colour are
that colour's wearer. Cast members wear distinct colours, so one clothing colour
with enough pixels is one person, and its x centroid places them left to right.
That makes ``count``, ``colour`` and ``who`` checkable from pixels alone: this
answerer is evidence that those questions are answerable from what is drawn, not
only from the plot. It never reads ``plot.frames``; other qtypes get -1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..core.plot import QA, MoviePlot
from ..core.vocabulary import CLOTHING_COLOURS
from ..qa.offline import NUMBER_WORDS

# A pixel belongs to a clothing colour when every channel is this close to it.
# Background and non-clothing figure colours are >= 45 away in RGB distance,
# so >= 26 on some channel; 12 leaves room for light compression noise.
TOLERANCE = 12
# A colour counts as a person when it covers at least this share of the image
# (a figure's clothing is ~5% of it; stray matches are single pixels) ...
MIN_SHARE = 0.002
# ... and at least this share of the largest clothing area in the frame
# (figures of one frame are drawn at one scale).
MIN_OF_LARGEST = 0.2

_COLOUR_NAMES = sorted(CLOTHING_COLOURS, key=len, reverse=True)
_COLOUR_WORD = re.compile(r"\b(" + "|".join(_COLOUR_NAMES) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class Figure:
    """One person found in a frame: the colour they wear and where."""

    colour: str
    pixels: int
    x: float  # x centroid of the clothing pixels, in pixels


@lru_cache(maxsize=1)
def _colour_lut() -> np.ndarray:
    """256^3 table: 1 + the index of the clothing colour an RGB value is within
    TOLERANCE of, 0 for none. One lookup per pixel instead of a pass per colour."""
    lut = np.zeros((256, 256, 256), np.uint8)
    for i, rgb in enumerate(CLOTHING_COLOURS.values()):
        lo = [max(0, c - TOLERANCE) for c in rgb]
        hi = [min(255, c + TOLERANCE) + 1 for c in rgb]
        lut[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = i + 1
    return lut


def find_figures(image: np.ndarray) -> list[Figure]:
    """The people in a keyframe (HxWx3 uint8), left to right: one per clothing colour
    painted on enough pixels."""
    img = np.asarray(image)[..., :3].astype(np.uint8, copy=False)
    h, w = img.shape[:2]
    labels = _colour_lut()[img[..., 0], img[..., 1], img[..., 2]]
    bins = len(CLOTHING_COLOURS) + 1
    counts = np.bincount(labels.ravel(), minlength=bins)
    xs = np.broadcast_to(np.arange(w, dtype=np.float64), (h, w))
    x_sums = np.bincount(labels.ravel(), weights=xs.ravel(), minlength=bins)
    found: list[Figure] = []
    for i, name in enumerate(CLOTHING_COLOURS, start=1):
        if counts[i] >= max(1.0, MIN_SHARE * h * w):
            found.append(Figure(name, int(counts[i]), float(x_sums[i] / counts[i])))
    if not found:
        return []
    largest = max(f.pixels for f in found)
    return sorted((f for f in found if f.pixels >= MIN_OF_LARGEST * largest), key=lambda f: f.x)


def option_colour(option: str) -> str | None:
    """The clothing colour an option names: its last colour word ("... grey hair in red" -> red)."""
    words = _COLOUR_WORD.findall(option)
    return words[-1].lower() if words else None


def _position(question: str) -> str | None:
    q = question.lower()
    for word, position in (("only person", "only"), ("on the left", "left"), ("in the middle", "middle"),
                           ("on the right", "right")):
        if word in q:
            return position
    return None


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
            picks.append(self.answer_one(qa, figures[k]))
        return picks

    def answer_one(self, qa: QA, figures: list[Figure]) -> int:
        """The option the figures found in the evidence frame support (-1: none, or several)."""
        options = [o.strip().rstrip(".").lower() for o in qa.options]
        if not figures:
            return -1
        if qa.qtype == "count":
            n = len(figures)
            return _unique([i for i, o in enumerate(options) if n <= len(NUMBER_WORDS) and o == NUMBER_WORDS[n - 1]])
        if qa.qtype == "colour":
            position = _position(qa.question)
            if position is None:
                return -1
            if position == "only":
                person = max(figures, key=lambda f: f.pixels)
            else:
                person = figures[{"left": 0, "middle": len(figures) // 2, "right": -1}[position]]
            return _unique([i for i, o in enumerate(options) if o == person.colour])
        if qa.qtype == "who":
            present = {f.colour for f in figures}
            return _unique([i for i, o in enumerate(qa.options) if option_colour(o) in present])
        return -1
