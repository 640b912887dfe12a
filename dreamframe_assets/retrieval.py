"""Evidence-frame retrieval: can a question find the frames that show its answer?

Every QA names its ``evidence_frames``. If a retriever that knows only the
question ranks those frames first, the evidence links are consistent with what
the frames show (text retriever: their descriptions and dialogue; clip retriever:
the drawn keyframes); a low mean average precision flags evidence that points at
the wrong frames, or keyframes that do not show what the plot says.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from .plot import Frame, MoviePlot
from .qa import QA, describe_frame


class Embedder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


def average_precision(ranking: Sequence[int], relevant: set[int]) -> float:
    """Mean of precision@k over the ranks k of the relevant items (0 if none are relevant).

    A relevant item missing from ``ranking`` counts as never retrieved (precision 0).
    """
    if not relevant:
        return 0.0
    found, total = 0, 0.0
    for k, item in enumerate(ranking, start=1):
        if item in relevant:
            found += 1
            total += found / k
    return total / len(relevant)


def rank_frames(question_vec: np.ndarray, frame_vecs: np.ndarray) -> list[int]:
    """Frame indices by descending cosine similarity to the question (ties: lower index first)."""
    frames = np.asarray(frame_vecs, dtype=np.float32)
    q = np.asarray(question_vec, dtype=np.float32).reshape(-1)
    sims = frames @ q / (np.linalg.norm(frames, axis=1) * (np.linalg.norm(q) or 1.0) + 1e-12)
    return np.argsort(-sims, kind="stable").tolist()


def scored(qa: QA, frame_count: int) -> bool:
    """Whether a QA poses a retrieval problem: some frames are evidence, but not all of them
    (an overview's evidence is the whole movie, which any ranking retrieves perfectly)."""
    evidence = {i for i in qa.evidence_frames if 0 <= i < frame_count}
    return 0 < len(evidence) < frame_count


def mean_average_precision(
    qas: Sequence[QA], frame_vectors_by_movie: dict[str, np.ndarray], question_vectors: np.ndarray | Sequence[np.ndarray],
) -> float:
    """Mean AP of ranking each movie's frames for each question (``question_vectors`` in ``qas`` order).

    QAs whose evidence is empty or every frame of the movie are left out; 0 if none is left.
    """
    aps = []
    for qa, q in zip(qas, question_vectors, strict=True):
        frames = frame_vectors_by_movie[qa.movie_id]
        if scored(qa, len(frames)):
            aps.append(average_precision(rank_frames(q, frames), set(qa.evidence_frames)))
    return float(np.mean(aps)) if aps else 0.0


def frame_text(plot: MoviePlot, frame: Frame) -> str:
    """What a text retriever knows of a frame: its number (questions name keyframes by it),
    its description and the lines spoken after it."""
    lines = [f'"{line.text}"' for line in plot.dialogue if line.after_frame == frame.frame_index]
    return " ".join([f"Keyframe {frame.frame_index + 1}: {describe_frame(plot, frame)}."] + lines)


def text_map(plots: dict[str, MoviePlot], qas: Sequence[QA], embedder: Embedder) -> float:
    """mAP of the text retriever: question embedding vs frame-text embeddings (one encode each)."""
    wanted = {qa.movie_id for qa in qas}
    movies = [mid for mid in plots if mid in wanted]
    texts = [frame_text(plots[mid], f) for mid in movies for f in plots[mid].frames]
    vectors = embedder.encode(texts)
    by_movie, start = {}, 0
    for mid in movies:
        count = len(plots[mid].frames)
        by_movie[mid] = vectors[start : start + count]
        start += count
    return mean_average_precision(qas, by_movie, embedder.encode([qa.question for qa in qas]))


def clip_map(plots: dict[str, MoviePlot], qas: Sequence[QA], keyframes: dict[str, list[np.ndarray]], clip_embedder: Any) -> float:
    """mAP of the CLIP retriever: question text vs the drawn keyframes.

    ``clip_embedder`` has ``images(list of HxWx3 arrays)`` and ``texts(list of str)``,
    both returning L2-normalised rows (``clip.ClipEmbedder``).
    """
    wanted = {qa.movie_id for qa in qas}
    by_movie = {mid: np.asarray(clip_embedder.images(list(keyframes[mid])), dtype=np.float32) for mid in plots if mid in wanted}
    questions = np.asarray(clip_embedder.texts([qa.question for qa in qas]), dtype=np.float32)
    return mean_average_precision(qas, by_movie, questions)
