"""Dataset metrics: how much there is, how it is mixed, who can answer it, how it looks.

Style consistency protocol: each keyframe is described by a style descriptor
(a 4x4x4 RGB colour histogram, the mean saturation and brightness, and the
film-grain level, each block scaled to unit length); similarity is the cosine of
two descriptors. ``within_movie`` averages it over all pairs of frames of the same
movie, ``across_movies`` over pairs from different movies, ``adjacent`` over
consecutive frames of a movie. A consistent per-movie style means
within > across; ``separation`` is their difference.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

import numpy as np

from .plot import MoviePlot
from .qa import QA
from .schemas import QTYPES


def _shares(values: Iterable[str]) -> dict[str, float]:
    counts = Counter(values)
    total = sum(counts.values()) or 1
    return {k: round(v / total, 4) for k, v in sorted(counts.items())}


def accuracy(qas: list[QA], picks: list[int]) -> dict[str, Any]:
    """Overall, per qtype and per level accuracy of one answerer's picks."""
    right = [pick == qa.answer_index for qa, pick in zip(qas, picks, strict=True)]

    def mean(mask: list[bool]) -> float:
        chosen = [r for r, m in zip(right, mask) if m]
        return round(sum(chosen) / len(chosen), 4) if chosen else 0.0

    return {
        "overall": mean([True] * len(qas)),
        "by_qtype": {q: mean([qa.qtype == q for qa in qas]) for q in QTYPES if any(qa.qtype == q for qa in qas)},
        "by_level": {lv: mean([qa.level == lv for qa in qas]) for lv in sorted({qa.level for qa in qas})},
    }


def style_descriptor(image: np.ndarray) -> np.ndarray:
    """What a frame's style looks like, independent of where things are in it."""
    img = image.astype(np.float32)
    bins = (image // 64).reshape(-1, 3).astype(np.int64)
    hist = np.bincount(bins[:, 0] * 16 + bins[:, 1] * 4 + bins[:, 2], minlength=64).astype(np.float32)
    hist /= np.linalg.norm(hist) or 1.0
    mx, mn = img.max(axis=2), img.min(axis=2)
    sat = float(((mx - mn) / np.maximum(mx, 1)).mean())
    gray = img.mean(axis=2)
    grain = float(np.abs(gray[1:, 1:] - gray[:-1, 1:] - gray[1:, :-1] + gray[:-1, :-1]).mean() / 64.0)
    tone = np.array([sat, float(gray.mean() / 255.0), grain], dtype=np.float32)
    return np.concatenate([hist, tone / (np.linalg.norm(tone) or 1.0)])


def style_consistency(descriptors: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """Within-movie, across-movie and adjacent-frame similarity of style descriptors."""
    movies = [m for m in descriptors if len(descriptors[m])]
    desc = [np.asarray(x, dtype=np.float32) for m in movies for x in descriptors[m]]
    owner = np.array([i for i, m in enumerate(movies) for _ in descriptors[m]])
    if len(desc) < 2:
        return {"within_movie": 0.0, "across_movies": 0.0, "adjacent": 0.0, "separation": 0.0}
    d = np.stack(desc)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    sim = d @ d.T
    same = owner[:, None] == owner[None, :]
    off = ~np.eye(len(d), dtype=bool)
    within = float(sim[same & off].mean()) if (same & off).any() else 0.0
    across = float(sim[~same].mean()) if (~same).any() else 0.0
    adj_mask = owner[1:] == owner[:-1]
    adjacent = float(np.diagonal(sim, 1)[adj_mask].mean()) if adj_mask.any() else 0.0
    return {
        "within_movie": round(within, 4),
        "across_movies": round(across, 4),
        "adjacent": round(adjacent, 4),
        "separation": round(within - across, 4),
    }


def movie_scores(plot: MoviePlot, qas: list[QA], images: list[np.ndarray], answerers: list[Any]) -> dict[str, Any]:
    """The per-movie part of evaluation (the expensive part, cached per movie)."""
    return {
        "picks": {a.name: [int(i) for i in a.answer(plot, qas, images)] for a in answerers},
        "descriptors": [style_descriptor(img).round(5).tolist() for img in images],
    }


def summarize(plots: dict[str, MoviePlot], qas: list[QA], scores: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Dataset metrics from the per-movie scores; ``qas`` in the order of ``scores``' picks."""
    by_movie: dict[str, list[QA]] = {}
    for qa in qas:
        by_movie.setdefault(qa.movie_id, []).append(qa)
    names = list(next(iter(scores.values()))["picks"]) if scores else []
    acc = {}
    for name in names:
        ordered, picks = [], []
        for mid, movie_qas in by_movie.items():
            ordered += movie_qas
            picks += scores[mid]["picks"][name]
        acc[name] = accuracy(ordered, picks)
    return {
        "counts": {
            "movies": len(plots),
            "frames": sum(len(p.frames) for p in plots.values()),
            "keyframes": sum(len(s["descriptors"]) for s in scores.values()),
            "qa_pairs": len(qas),
            "dialogue_lines": sum(len(p.dialogue) for p in plots.values()),
        },
        "qtype_share": _shares(qa.qtype for qa in qas),
        "level_share": _shares(qa.level for qa in qas),
        "genre_share": _shares(p.movie.genre for p in plots.values()),
        "answer_position_share": _shares(str(qa.answer_index) for qa in qas),
        "accuracy": acc,
        "style_consistency": style_consistency({m: s["descriptors"] for m, s in scores.items()}),
    }


def evaluate(
    plots: dict[str, MoviePlot],
    qas: list[QA],
    keyframes: dict[str, list[np.ndarray]],
    answerers: list[Any],
) -> dict[str, Any]:
    """All metrics in one call (what ``summarize`` gives from uncached per-movie scores)."""
    by_movie: dict[str, list[QA]] = {mid: [] for mid in plots}
    for qa in qas:
        by_movie[qa.movie_id].append(qa)
    scores = {mid: movie_scores(plots[mid], by_movie[mid], keyframes[mid], answerers) for mid in plots}
    return summarize(plots, qas, scores)
