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

from ..core.cache import digest
from ..core.plot import QA, Frame, MoviePlot
from ..core.vocabulary import doing_phrase


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


def frame_text(plot: MoviePlot, frame: Frame) -> str:
    """What a text retriever knows of a frame: its number (questions name keyframes by it),
    its description and the lines spoken after it."""
    lines = [f'"{line.text}"' for line in plot.dialogue if line.after_frame == frame.frame_index]
    people = " and ".join(f"{plot.character(c).name}, {plot.character(c).appearance}," for c in frame.characters)
    shows = f"{people} {doing_phrase(frame.action, frame.held_object)} in {frame.location}"
    return " ".join([f"Keyframe {frame.frame_index + 1}: {shows}."] + lines)


def retrieval_aps(qas: Sequence[QA], frame_vectors: np.ndarray, question_vectors: np.ndarray) -> list[float | None]:
    """Per QA, the AP of ranking the movie's frames by the question (None: nothing to retrieve)."""
    out: list[float | None] = []
    for qa, q in zip(qas, question_vectors, strict=True):
        if scored(qa, len(frame_vectors)):
            out.append(average_precision(rank_frames(q, frame_vectors), set(qa.evidence_frames)))
        else:
            out.append(None)
    return out


def text_inputs(plot: MoviePlot, qas: Sequence[QA]) -> tuple[list[str], list[str]]:
    """What the text retriever embeds for one movie: the frames' text and the questions."""
    return [frame_text(plot, f) for f in plot.frames], [qa.question for qa in qas]


def text_aps(plot: MoviePlot, qas: Sequence[QA], embedder: Embedder) -> list[float | None]:
    """The text retriever on one movie: question embeddings vs the frames' text (``frame_text``)."""
    frames, questions = text_inputs(plot, qas)
    return retrieval_aps(qas, embedder.encode(frames), embedder.encode(questions))


def clip_aps(images: Sequence[np.ndarray], qas: Sequence[QA], clip: Any) -> tuple[list[float | None], np.ndarray]:
    """The CLIP retriever on one movie: question text vs the drawn keyframes; also the image embeddings.

    ``clip`` has ``images(list of HxWx3 arrays)`` and ``texts(list of str)``, both returning
    L2-normalised rows (``models.clip.ClipEmbedder``).
    """
    frames = np.asarray(clip.images(list(images)), dtype=np.float32)
    questions = np.asarray(clip.texts([qa.question for qa in qas]), dtype=np.float32)
    return retrieval_aps(qas, frames, questions), frames


def mean_ap(aps: Sequence[float | None]) -> float:
    """Mean average precision over the QAs that pose a retrieval problem (0 when none does)."""
    scored_aps = [a for a in aps if a is not None]
    return float(np.mean(scored_aps)) if scored_aps else 0.0


def retrieval_sample(movie_ids: list[str], limit: int, seed: int) -> set[str]:
    """The movies the text retriever runs on: all, or ``limit`` of them chosen by a hash of
    their ids (the same movies whatever order they come in). Its frame texts are most of
    what evaluation embeds, and the mean AP of a few hundred movies is already precise."""
    if not limit or len(movie_ids) <= limit:
        return set(movie_ids)
    return set(sorted(movie_ids, key=lambda mid: digest("retrieval-sample", seed, mid))[:limit])
