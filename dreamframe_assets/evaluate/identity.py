"""Do characters stay themselves from frame to frame?

Protocol: within each movie, every view of one known character is embedded by CLIP's
image encoder; ``same_character`` is the mean cosine over pairs of views of the same
character, ``different_characters`` over pairs of views of two different characters of
that movie, and ``separation`` their difference. Pairs never cross movies, so the
style and places a movie shares do not count as identity. A character who looks the
same everywhere and unlike the others gives a large separation; look-alike text alone
(the same appearance words in every prompt) leaves it near zero.

A view is a frame that shows one character alone, whole. With a person detector configured
(``eval_scores.person_detector``), a view is a crop instead, squared around the person, and
frames with several characters count too: when the detector finds exactly as many people
as the frame lists, the boxes, left to right, are matched to the characters in the frame's
left-to-right order (frames where it finds another number are left out). Two views from
the same frame are never paired (they share light and background). Whole frames carry
their place too: consecutive frames of one character often share it, which raises
``same_character`` with or without consistent faces; crops measure the person more than
the place.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..core.plot import MoviePlot

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


def character_views(plot: MoviePlot, images: Sequence[np.ndarray], detector: Any = None
                    ) -> list[tuple[str, int, Box | None]]:
    """(char_id, frame index, box or None for the whole frame) of every view of a character.

    ``detector``: has ``people(images) -> list of boxes per image``, left to right."""
    if detector is None:
        return [(frame.characters[0], k, None) for k, frame in enumerate(plot.frames) if len(frame.characters) == 1]
    shown = [k for k, frame in enumerate(plot.frames) if frame.characters]
    views: list[tuple[str, int, Box | None]] = []
    for k, boxes in zip(shown, detector.people([images[k] for k in shown]) if shown else []):
        if len(boxes) == len(plot.frames[k].characters):
            views += [(c, k, box) for c, box in zip(plot.frames[k].characters, boxes)]
    return views


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The box's pixels, widened to a square around its centre where the image allows (CLIP
    centre-crops to a square: a tall person box would lose head and feet), at least one pixel."""
    h, w = image.shape[:2]
    side = max(box[2] - box[0], box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = min(max(int(cx - side / 2), 0), w - 1), min(max(int(cy - side / 2), 0), h - 1)
    x1, y1 = max(min(int(round(cx + side / 2)), w), x0 + 1), max(min(int(round(cy + side / 2)), h), y0 + 1)
    return image[y0:y1, x0:x1]


def identity_pairs(characters: Sequence[str], vectors: np.ndarray, frames: Sequence[int] | None = None
                   ) -> dict[str, list[float]]:
    """Sums and counts of the cosines over pairs of views: same character, different characters.
    ``vectors``: one unit-length row per view; ``frames``: each view's frame (pairs within a
    frame are skipped). Sums, so movies add up to the dataset's means."""
    if len(characters) < 2:
        return {"same": [0.0, 0], "different": [0.0, 0]}
    sims = np.asarray(vectors, dtype=np.float64) @ np.asarray(vectors, dtype=np.float64).T
    owner = np.array(characters)
    where = np.arange(len(characters)) if frames is None else np.asarray(frames)
    same = owner[:, None] == owner[None, :]
    pairs = np.triu(np.ones_like(same), k=1) & (where[:, None] != where[None, :])
    return {"same": [round(float(sims[same & pairs].sum()), 6), int((same & pairs).sum())],
            "different": [round(float(sims[~same & pairs].sum()), 6), int((~same & pairs).sum())]}


def movie_identity(plot: MoviePlot, images: Sequence[np.ndarray], frame_vectors: np.ndarray, clip: Any,
                   detector: Any = None) -> dict[str, list[float]]:
    """``identity_pairs`` of one movie: whole frames reuse their CLIP vectors, crops are embedded."""
    views = character_views(plot, images, detector)
    if len(views) < 2:
        return identity_pairs([], np.zeros((0, 1)))
    crops = [crop(images[k], box) for _, k, box in views if box is not None]
    cropped = iter(np.asarray(clip.images(crops), dtype=np.float32) if crops else [])
    vectors = [frame_vectors[k] if box is None else next(cropped) for _, k, box in views]
    return identity_pairs([c for c, _, _ in views], np.stack(vectors), [k for _, k, _ in views])


def identity_consistency(per_movie: Iterable[dict[str, list[float]]]) -> dict[str, float]:
    """Dataset means over all pairs of all movies; separation = same - different."""
    total = {"same": [0.0, 0], "different": [0.0, 0]}
    for pairs in per_movie:
        for kind in total:
            total[kind][0] += pairs[kind][0]
            total[kind][1] += pairs[kind][1]
    same, different = (total[k][0] / total[k][1] if total[k][1] else 0.0 for k in ("same", "different"))
    return {"same_character": round(same, 4), "different_characters": round(different, 4),
            "separation": round(same - different, 4) if total["same"][1] and total["different"][1] else 0.0,
            "same_pairs": int(total["same"][1]), "different_pairs": int(total["different"][1])}
