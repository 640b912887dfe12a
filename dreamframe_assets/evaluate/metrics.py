"""Dataset metrics: how much there is, how it is mixed, who can answer it, how it looks.

Style consistency protocol: each keyframe is described by a style descriptor
(a 4x4x4 RGB colour histogram, the mean saturation and brightness, and the
film-grain level, each block scaled to unit length); similarity is the cosine of
two descriptors. ``within_movie`` averages it over all pairs of frames of the same
movie, ``across_movies`` over pairs from different movies, ``adjacent`` over
consecutive frames of a movie. A consistent per-movie style means
within > across; ``separation`` is their difference. With a CLIP model configured,
``style_consistency_clip`` is the same protocol on CLIP image embeddings (the
paper's CLIP-score between frames).

Language bias: text-only probes (``probes.py``, and the ``blind`` answerer when configured)
answer from the QA text alone; ``accuracy.<probe>`` like any answerer, ``chance`` the
expected accuracy of a uniform pick (mean of 1 / options), ``language_bias_gap`` the best
probe's overall accuracy minus chance (``language_bias_probe`` names it), and
``language_bias_by_qtype`` per qtype the best probe's accuracy minus chance there.

Evidence retrieval: for each question whose evidence is some (not all) frames of
its movie, the movie's frames are ranked by similarity to the question (text: the
frames' descriptions and dialogue; clip: the keyframe images); ``map.<retriever>``
is the mean average precision against the evidence frames.

Character identity (``identity.py``), with a CLIP model configured:
``identity_consistency_clip`` compares views of the same character with views of
different characters of the same movie.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from ..core.plot import QA, MoviePlot
from ..core.vocabulary import QTYPES
from ..qa.gates import across_movies_duplicate_rate, duplicate_rate
from .diversity import distinct_n, normalized_entropy
from .identity import identity_consistency, movie_identity
from .probes import ABSTAIN, PROBES, chance, run_probes
from .retrieval import clip_aps, mean_ap, text_aps

TEXT_ONLY = ("blind", *PROBES)  # answerers that never see a frame; ties go to the first


def _shares(values: Iterable[str]) -> dict[str, float]:
    counts = Counter(values)
    total = sum(counts.values()) or 1
    return {k: round(v / total, 4) for k, v in sorted(counts.items())}


def accuracy(qas: list[QA], picks: list[int]) -> dict[str, Any]:
    """Overall, per qtype and per level accuracy of one answerer's picks."""
    right = [pick == qa.answer_index for qa, pick in zip(qas, picks, strict=True)]
    by_qtype: dict[str, list[bool]] = {}
    by_level: dict[str, list[bool]] = {}
    for qa, r in zip(qas, right):
        by_qtype.setdefault(qa.qtype, []).append(r)
        by_level.setdefault(qa.level, []).append(r)

    def mean(chosen: list[bool]) -> float:
        return round(sum(chosen) / len(chosen), 4) if chosen else 0.0

    return {
        "overall": mean(right),
        "by_qtype": {q: mean(by_qtype[q]) for q in QTYPES if q in by_qtype},
        "by_level": {lv: mean(by_level[lv]) for lv in sorted(by_level)},
    }


def style_descriptor(image: np.ndarray) -> np.ndarray:
    """What a frame's style looks like, independent of where things are in it.

    image: HxWx3 uint8. Works on the three channel planes in integers (max, min and
    sums are exact there) rather than reducing a float copy over its short last axis,
    which is several times slower."""
    r, g, b = (np.asarray(image)[..., c] for c in range(3))
    hist = np.bincount((r // 64 * 16 + g // 64 * 4 + b // 64).ravel(), minlength=64).astype(np.float32)
    hist /= np.linalg.norm(hist) or 1.0
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    sat = float(((mx - mn) / np.maximum(mx, 1).astype(np.float32)).mean())
    total = r.astype(np.int32) + g + b  # 3 x grey, exact
    grain = float(np.abs(total[1:, 1:] - total[:-1, 1:] - total[1:, :-1] + total[:-1, :-1]).mean() / (3 * 64.0))
    tone = np.array([sat, float(total.mean() / (3 * 255.0)), grain], dtype=np.float32)
    return np.concatenate([hist, tone / (np.linalg.norm(tone) or 1.0)])


MAX_STYLE_FRAMES = 3000  # pairwise similarity is quadratic: beyond this, a fixed sample of frames


def style_similarities(descriptors: dict[str, list]) -> dict[str, np.ndarray]:
    """All within-movie, across-movie and adjacent-frame cosines of the style descriptors."""
    movies = [m for m in descriptors if len(descriptors[m])]
    rows = [np.asarray(x, dtype=np.float32) for m in movies for x in descriptors[m]]
    owner = np.array([i for i, m in enumerate(movies) for _ in descriptors[m]])
    if len(rows) < 2:
        return {"within": np.zeros(0), "across": np.zeros(0), "adjacent": np.zeros(0)}
    d = np.stack(rows)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-12
    adjacent = np.einsum("ij,ij->i", d[1:], d[:-1])[owner[1:] == owner[:-1]]
    if len(d) > MAX_STYLE_FRAMES:
        keep = np.sort(np.random.default_rng(0).choice(len(d), MAX_STYLE_FRAMES, replace=False))
        d, owner = d[keep], owner[keep]
    sim = d @ d.T
    same = owner[:, None] == owner[None, :]
    upper = np.triu(np.ones_like(same), k=1)
    return {"within": sim[same & upper], "across": sim[~same & upper], "adjacent": adjacent}


def style_consistency(descriptors: dict[str, list]) -> dict[str, float]:
    """Mean within-movie, across-movie and adjacent-frame similarity; separation = within - across."""
    sims = style_similarities(descriptors)
    within, across, adjacent = (float(sims[k].mean()) if len(sims[k]) else 0.0 for k in ("within", "across", "adjacent"))
    return {
        "within_movie": round(within, 4),
        "across_movies": round(across, 4),
        "adjacent": round(adjacent, 4),
        "separation": round(within - across, 4),
    }


def movie_scores(plot: MoviePlot, qas: list[QA], images: list[np.ndarray], answerers: list[Any],
                 text_embedder: Any = None, clip: Any = None, detector: Any = None) -> dict[str, Any]:
    """The per-movie part of evaluation (the expensive part, cached per movie)."""
    scores: dict[str, Any] = {
        "picks": {a.name: [int(i) for i in a.answer(plot, qas, images)] for a in answerers},
        "descriptors": [style_descriptor(img).round(5).tolist() for img in images],
        "ap": {},
    }
    if text_embedder is not None and qas:
        scores["ap"]["text"] = text_aps(plot, qas, text_embedder)
    if clip is not None and images:
        if qas:
            scores["ap"]["clip"], frames = clip_aps(images, qas, clip)
        else:
            frames = np.asarray(clip.images(list(images)), dtype=np.float32)
        scores["clip_images"] = frames.round(5).tolist()
        scores["identity"] = movie_identity(plot, images, frames, clip, detector)
    return scores


@dataclass(frozen=True)
class MovieFacts:
    """What the dataset metrics read of a movie's plot: a reader need not build every plot."""

    genre: str
    frames: int
    dialogue_lines: int


def movie_facts(plot: MoviePlot) -> MovieFacts:
    return MovieFacts(plot.movie.genre, len(plot.frames), len(plot.dialogue))


def diversity(movies: dict[str, MovieFacts], qas: list[QA], dedup_vectors: np.ndarray | None, threshold: float,
              question_vectors: np.ndarray | None = None) -> dict[str, float]:
    out = {
        "distinct_2": round(distinct_n([qa.question for qa in qas], 2), 4),
        "distinct_2_answers": round(distinct_n([qa.answer for qa in qas], 2), 4),
        "qtype_entropy": round(normalized_entropy(qa.qtype for qa in qas), 4),
        "genre_entropy": round(normalized_entropy(m.genre for m in movies.values()), 4),
    }
    if dedup_vectors is not None:
        out["near_duplicate_rate"] = round(duplicate_rate(qas, dedup_vectors, threshold), 4)
    if question_vectors is not None:
        out["near_duplicate_rate_across_movies"] = round(across_movies_duplicate_rate(qas, question_vectors, threshold), 4)
    return out


def language_bias(acc: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """How far the best text-only answerer gets above chance, overall and per qtype (per qtype
    the best there, which may be another probe: each shortcut is a defect wherever it works)."""
    probes = [n for n in TEXT_ONLY if n in acc]
    if not probes:
        return {}
    best = max(probes, key=lambda n: (acc[n]["overall"], -probes.index(n)))
    by_qtype, probe_by_qtype = {}, {}
    for q in floor["by_qtype"]:
        scored = [(acc[n]["by_qtype"][q], -i, n) for i, n in enumerate(probes) if q in acc[n]["by_qtype"]]
        if scored:
            top, _, name = max(scored)
            by_qtype[q] = round(top - floor["by_qtype"][q], 4)
            probe_by_qtype[q] = name
    return {"language_bias_probe": best, "language_bias_gap": round(acc[best]["overall"] - floor["overall"], 4),
            "language_bias_by_qtype": by_qtype, "language_bias_probe_by_qtype": probe_by_qtype}


MIN_CLUSTERS = 5  # movies needed before a language-bias gap means anything


def clustered_noise(qas: list[QA], right: np.ndarray) -> float:
    """Two standard errors of an accuracy-minus-chance, clustered by movie: a probe tends to
    pick alike for all of a movie's questions (they share their options), so a movie, not
    a question, is one draw. Small datasets get a wide margin, large ones a narrow one."""
    if not len(qas):
        return 1.0
    diff: dict[str, list[float]] = {}
    for qa, r in zip(qas, right):
        diff.setdefault(qa.movie_id, []).append(float(r) - 1 / len(qa.options))
    m = len(diff)
    if m < MIN_CLUSTERS:
        return 1.0  # too few movies for a standard error: nothing can be told
    gap = sum(sum(d) for d in diff.values()) / len(qas)
    resid = np.array([sum(d) - len(d) * gap for d in diff.values()])
    return round(float(2 * np.sqrt(m / (m - 1) * (resid ** 2).sum()) / len(qas)), 4)


def bias_noise(qas: list[QA], picks: dict[str, list[int]], bias: dict[str, Any]) -> dict[str, Any]:
    """``clustered_noise`` of the best probe overall and of each qtype's best probe."""
    if "language_bias_probe" not in bias:
        return {}
    right = {n: np.array([p == qa.answer_index for qa, p in zip(qas, picks[n])]) for n in picks}
    by_qtype = {}
    for q, name in bias["language_bias_probe_by_qtype"].items():
        rows = [i for i, qa in enumerate(qas) if qa.qtype == q]
        by_qtype[q] = clustered_noise([qas[i] for i in rows], right[name][rows])
    return {"language_bias_noise": clustered_noise(qas, right[bias["language_bias_probe"]]),
            "language_bias_noise_by_qtype": by_qtype}


def summarize(movies: dict[str, MovieFacts], qas: list[QA], scores: dict[str, dict[str, Any]],
              covered: dict[str, set[str]] | None = None, dedup_vectors: np.ndarray | None = None,
              threshold: float = 0.95, question_vectors: np.ndarray | None = None,
              fits: Any = None) -> dict[str, Any]:
    """Dataset metrics from the per-movie scores; ``qas`` in the order of ``scores``' picks;
    ``fits``: where the trained probe keeps its fitted weights (``probes.run_probes``).

    ``covered``: for an answerer that only answers some qtypes (the pixel reader), those
    qtypes; its accuracy is measured on them alone.
    """
    by_movie: dict[str, list[QA]] = {}
    for qa in qas:
        by_movie.setdefault(qa.movie_id, []).append(qa)
    names = list(next(iter(scores.values()))["picks"]) if scores else []
    acc = {}
    for name in names:
        ordered, picks = [], []
        for mid, movie_qas in by_movie.items():
            for qa, pick in zip(movie_qas, scores[mid]["picks"][name], strict=True):
                if covered is None or name not in covered or qa.qtype in covered[name]:
                    ordered.append(qa)
                    picks.append(pick)
        acc[name] = accuracy(ordered, picks)
    abstained = []
    text_picks: dict[str, list[int]] = {}
    if "blind" in names:
        blind = {qa.qa_id: p for mid, mine in by_movie.items() for qa, p in zip(mine, scores[mid]["picks"]["blind"])}
        text_picks["blind"] = [blind[qa.qa_id] for qa in qas]
    for name, picks in run_probes(qas, fits).items():
        if qas and all(p == ABSTAIN for p in picks):
            abstained.append(name)  # the trained probe with a single movie: nothing to train on
        else:
            acc[name] = accuracy(qas, picks)
            text_picks[name] = picks
    metrics: dict[str, Any] = {
        "counts": {
            "movies": len(movies),
            "frames": sum(m.frames for m in movies.values()),
            "keyframes": sum(len(s["descriptors"]) for s in scores.values()),
            "qa_pairs": len(qas),
            "dialogue_lines": sum(m.dialogue_lines for m in movies.values()),
        },
        "qtype_share": _shares(qa.qtype for qa in qas),
        "qtype_count": dict(sorted(Counter(qa.qtype for qa in qas).items())),
        "level_share": _shares(qa.level for qa in qas),
        "genre_share": _shares(m.genre for m in movies.values()),
        "answer_position_share": _shares(str(qa.answer_index) for qa in qas),
        "accuracy": acc,
        "style_consistency": style_consistency({m: s["descriptors"] for m, s in scores.items()}),
        "diversity": diversity(movies, qas, dedup_vectors, threshold, question_vectors),
    }
    retrievers = sorted({r for s in scores.values() for r in s.get("ap", {})})
    metrics["map"] = {r: round(mean_ap([a for s in scores.values() for a in s["ap"].get(r, [])]), 4) for r in retrievers}
    metrics["map_movies"] = {r: sum(r in s.get("ap", {}) for s in scores.values()) for r in retrievers}
    if any("clip_images" in s for s in scores.values()):
        metrics["style_consistency_clip"] = style_consistency({m: s.get("clip_images", []) for m, s in scores.items()})
    if any("identity" in s for s in scores.values()):
        metrics["identity_consistency_clip"] = identity_consistency(s["identity"] for s in scores.values() if "identity" in s)
    metrics["chance"] = chance(qas)
    metrics.update(language_bias(acc, metrics["chance"]))
    metrics.update(bias_noise(qas, text_picks, metrics))
    if abstained:
        metrics["probes_abstained"] = abstained
    return metrics
