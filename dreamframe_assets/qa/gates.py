"""Quality gates: what a QA must pass to ship, and a record of everything that did not.

Generated data is only worth tuning on if each QA is well formed, grounded in frames
that exist, answered by the oracle from those frames, and not a repeat. A QA that
fails a gate is dropped into ``qa_pairs/dropped.parquet`` with the gate and the
reason, and counted in metadata: nothing is silently lost.

Reveals: a QA whose question or answer states the answer of another QA of the same
movie about the same thing (the right option's distinguishing words, and none of the
wrong options') gives that answer away to a model shown the movie's QA together, as
trainers that pack a video's QA into one conversation do; the revealing QA is dropped
(``reveal_pairs``), and so is a question that echoes its own answer.

Near-duplicates: two QAs of a movie whose question and answer embeddings (summed,
``dedup_vectors``) have a cosine of at least the threshold AND the same evidence frames ask the same thing
about the same moment; the later one is dropped. (Template questions about
different frames, "How many people are in keyframe 5?" / "... keyframe 6?", are
alike as text but not duplicates.)
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Protocol

import numpy as np

from ..core.plot import QA, MoviePlot
from ..core.vocabulary import MAX_OPTIONS, MIN_OPTIONS, QA_GATES
from ..models.embed import normalize
from .offline import cap_qtypes
from .oracle import OracleAnswerer

GATES = QA_GATES


class Embedder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


def option_problem(qa: QA) -> str | None:
    """Three or four distinct options, exactly one of them the answer, at ``answer_index``."""
    options = [o.strip().lower() for o in qa.options]
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        return f"{len(options)} options, not {MIN_OPTIONS} to {MAX_OPTIONS}"
    if len(set(options)) != len(options):
        return "options are not distinct"
    if not 0 <= qa.answer_index < len(options) or qa.options[qa.answer_index] != qa.answer:
        return "the answer is not the option at answer_index"
    if options.count(qa.answer.strip().lower()) != 1:
        return "the answer appears more than once among the options"
    return None


def length_problem(qa: QA, min_words: int, max_words: int) -> str | None:
    words = len(qa.answer.split())
    if words < min_words:
        return f"answer has {words} words (< {min_words})"
    if words > max_words:
        return f"answer has {words} words (> {max_words})"
    return None


def evidence_problem(qa: QA, drawn_frames: int) -> str | None:
    missing = [f for f in qa.evidence_frames if not 0 <= f < drawn_frames]
    if not qa.evidence_frames:
        return "no evidence frames"
    return f"evidence frames {missing} have no keyframe" if missing else None


_BLOCK = 1024  # rows per block of the similarity matrix: 1024 x n floats at a time


def similar_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, whose cosine similarity is >= ``threshold``, sorted.

    All pairs, block by block, so memory stays at one block of rows (fine for 10^4 items).
    """
    if np.ndim(vectors) != 2:
        raise ValueError(f"expected an n x d array, got shape {np.shape(vectors)}")
    v = normalize(vectors)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(v), _BLOCK):
        rows, cols = np.nonzero(v[start : start + _BLOCK] @ v.T >= threshold)
        rows = rows + start
        keep = cols > rows
        pairs += zip(rows[keep].tolist(), cols[keep].tolist())
    return sorted(pairs)


def duplicate_pairs(qas: list[QA], vectors: np.ndarray, threshold: float) -> dict[int, int]:
    """Later QA index -> the earlier QA it duplicates: the near-duplicate rule, the one the gate,
    the blocking check and the diversity metric all use. Two QAs are duplicates when they are
    of the same movie, about the same evidence frames, and their question-and-answer
    vectors (``dedup_vectors``) have cosine >= ``threshold``; a QA that is itself a duplicate is not an original."""
    earlier: dict[int, list[int]] = {}
    for j, i in similar_pairs(vectors, threshold) if len(qas) > 1 else []:
        earlier.setdefault(i, []).append(j)
    out: dict[int, int] = {}
    for i in sorted(earlier):
        a = qas[i]
        for j in earlier[i]:
            b = qas[j]
            if a.movie_id == b.movie_id and set(a.evidence_frames) == set(b.evidence_frames) and j not in out:
                out[i] = j
                break
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def option_phrases(options: tuple[str, ...]) -> list[str]:
    """What tells each option apart: its words without those every option starts or ends with
    ("Zoltan looks sad." -> "sad")."""
    words = [_words(o) for o in options]
    shortest = min((len(w) for w in words), default=0)
    head = 0
    while head < shortest and len({tuple(w[: head + 1]) for w in words}) == 1:
        head += 1
    tail = 0
    while tail < shortest - head and len({tuple(w[len(w) - tail - 1:]) for w in words}) == 1:
        tail += 1
    return [" ".join(_trim(w[head: len(w) - tail])) for w in words]


_EDGES = frozenset({"a", "an", "the", "in", "on", "at", "to", "into", "of", "by", "is", "are", "and"})


def _trim(words: list[str]) -> list[str]:
    """A phrase without the little words at its ends ("on the rocky shore" -> "rocky shore"), so
    that another sentence saying it with other words ("steps onto the rocky shore") is found."""
    while words and words[0] in _EDGES:
        words = words[1:]
    while words and words[-1] in _EDGES:
        words = words[:-1]
    return words


_QUOTED = re.compile(r'"[^"]+"')
_KEYFRAMES = re.compile(r"\bkeyframes? (\d+)(?: to (\d+))?\b")


def referents(question: str) -> set[str]:
    """What a question is about: the titles and lines it quotes and each keyframe it names
    ("keyframes 5 to 8" names 5, 6, 7 and 8)."""
    found = set(_QUOTED.findall(question))
    for first, last in _KEYFRAMES.findall(question):
        found |= {f"keyframe {k}" for k in range(int(first), int(last or first) + 1)}
    return found


def reveal_pairs(qas: list[QA]) -> list[tuple[int, int]]:
    """(j, i): QA j (its question, or its answer, which a conversation of the movie's QA
    shows too) states the answer of QA i and none of i's wrong options, about the same
    thing (a title, line or keyframe both name); or j is i: a question that echoes its own
    answer. Same movie only."""
    phrases = [option_phrases(qa.options) for qa in qas]
    every = sorted({p for ps in phrases for p in ps if p}, key=len, reverse=True)
    if not every:
        return []
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in every) + r")\b")
    asked = [set(pattern.findall(" ".join(_words(qa.question)))) for qa in qas]
    shown = [asked[j] | set(pattern.findall(" ".join(_words(qa.answer)))) for j, qa in enumerate(qas)]
    about = [referents(qa.question) for qa in qas]
    out = []
    for i, qa in enumerate(qas):
        right = phrases[i][qa.answer_index]
        wrong = {p for k, p in enumerate(phrases[i]) if k != qa.answer_index}
        if not right:
            continue
        for j in range(len(qas)):
            said = asked[j] if j == i else shown[j]
            if (right in said and not (wrong & said) and qas[j].movie_id == qa.movie_id
                    and (j == i or about[i] & about[j])):
                out.append((j, i))
    return out


def dedup_texts(qa: QA) -> tuple[str, str]:
    """What the near-duplicate rule embeds of a QA: its question and its answer, apart. They are
    texts evaluation embeds anyway (the blind answerer reads the question and every option), so
    the embedding cache computes each once for both stages."""
    return qa.question, qa.answer


def dedup_vectors(qas: list[QA], embedder: Embedder) -> np.ndarray:
    """The vectors the near-duplicate rule compares, one row per QA: the question's and the
    answer's embeddings summed and scaled to unit length, so question and answer weigh alike.

    Only QAs that share their movie and evidence frames with another QA can be duplicates
    (``duplicate_pairs``), so only those are embedded; the others get a zero row, which
    matches nothing. At one grounded question per keyframe that is a small share of the QAs.
    """
    groups: dict[tuple, list[int]] = {}
    for i, qa in enumerate(qas):
        groups.setdefault((qa.movie_id, frozenset(qa.evidence_frames)), []).append(i)
    shared = sorted(i for members in groups.values() if len(members) > 1 for i in members)
    if not shared:
        return np.zeros((len(qas), 1), dtype=np.float32)
    found = embedder.encode([text for i in shared for text in dedup_texts(qas[i])])
    vectors = np.zeros((len(qas), found.shape[1]), dtype=np.float32)
    vectors[shared] = normalize(found[0::2] + found[1::2])
    return vectors


def gate_row(qa: QA, gate: str, reason: str) -> dict[str, Any]:
    """A QA held back by ``gate`` (a row of dropped.parquet, or of flagged.parquet)."""
    return {"movie_id": qa.movie_id, "qa_id": qa.qa_id, "gate": gate, "reason": reason,
            "level": qa.level, "qtype": qa.qtype, "question": qa.question, "answer": qa.answer}


def flagged_rows(kept: list[QA], unfaithful: dict[str, str]) -> list[dict[str, Any]]:
    """The shipped QAs a faithfulness verifier doubts, kept with its reason (``action: flag``)."""
    return [gate_row(qa, "faithfulness", unfaithful[qa.qa_id]) for qa in kept if qa.qa_id in unfaithful]


def apply_gates(
    plot: MoviePlot,
    qas: list[QA],
    drawn_frames: int,
    embedder: Embedder,
    *,
    min_answer_words: int,
    max_answer_words: int,
    near_duplicate_threshold: float,
    max_qtype_share: float,
    unfaithful: dict[str, str] | None = None,
    flag_unfaithful: bool = False,
) -> tuple[list[QA], list[dict[str, Any]], dict[str, Any]]:
    """One movie's QAs through every gate; returns (kept, dropped rows, what the writer
    produced: QAs per qtype, oracle misses per qtype and near-duplicates, before any gate).

    ``unfaithful``: qa_id -> why its frame does not show it (``faithfulness.check``); such a
    QA is dropped, or with ``flag_unfaithful`` kept (``flagged_rows`` lists those that ship)."""
    oracle = OracleAnswerer()
    dropped: list[dict[str, Any]] = []
    unfaithful = unfaithful or {}

    def drop(qa: QA, gate: str, reason: str) -> None:
        dropped.append(gate_row(qa, gate, reason))

    kept: list[QA] = []
    oracle_wrong: Counter = Counter()
    for qa in qas:
        problem = option_problem(qa)
        if problem:
            drop(qa, "options", problem)
            oracle_wrong[qa.qtype] += 1
            continue
        pick = oracle.answer_one(plot, qa)
        if pick != qa.answer_index:
            oracle_wrong[qa.qtype] += 1
        problem = length_problem(qa, min_answer_words, max_answer_words)
        if problem:
            drop(qa, "length", problem)
            continue
        problem = evidence_problem(qa, drawn_frames)
        if problem:
            drop(qa, "evidence", problem)
            continue
        if pick != qa.answer_index:
            said = qa.options[pick] if pick >= 0 else "no option"
            drop(qa, "oracle", f"the oracle, reading the frames and plot, picks {said!r}")
            continue
        if qa.qa_id in unfaithful and not flag_unfaithful:
            drop(qa, "faithfulness", unfaithful[qa.qa_id])
            continue
        kept.append(qa)

    written_dupes = 0
    if qas:
        vectors = dedup_vectors(list(qas), embedder)
        written_dupes = len(duplicate_pairs(list(qas), vectors, near_duplicate_threshold))
        index = {qa.qa_id: k for k, qa in enumerate(qas)}
        kept_vectors = vectors[[index[qa.qa_id] for qa in kept]] if kept else vectors[:0]
        dupes = duplicate_pairs(kept, kept_vectors, near_duplicate_threshold) if kept else {}
        for i, j in dupes.items():
            drop(kept[i], "duplicate", f"repeats {kept[j].qa_id} ({kept[j].question!r})")
        kept = [qa for i, qa in enumerate(kept) if i not in dupes]

    revealing: dict[int, int] = {}
    pairs = reveal_pairs(kept)
    for j, i in sorted(pairs, key=lambda p: p[0] != p[1]):  # echoes first
        if j not in revealing and i not in revealing:  # once one of two is dropped, the other reveals nothing
            revealing[j] = i
    for j, i in revealing.items():
        drop(kept[j], "reveal", "the question states its own answer" if i == j else
             f"it states the answer of {kept[i].qa_id} ({kept[i].question!r})")
    kept = [qa for j, qa in enumerate(kept) if j not in revealing]

    capped_ids = {r["qa_id"] for r in cap_qtypes([{**qa.__dict__} for qa in kept], max_qtype_share)}
    for qa in kept:
        if qa.qa_id not in capped_ids:
            drop(qa, "qtype_cap", f"{qa.qtype} above {max_qtype_share:.0%} of the movie's QAs")
    kept = [qa for qa in kept if qa.qa_id in capped_ids]
    report = {"written": dict(Counter(qa.qtype for qa in qas)), "oracle_wrong": dict(oracle_wrong),
              "duplicates": written_dupes}
    return kept, dropped, report


def duplicate_rate(qas: list[QA], vectors: np.ndarray, threshold: float) -> float:
    """Share of QAs that duplicate an earlier one of their movie (the rule ``apply_gates`` enforces)."""
    by_movie: dict[str, list[int]] = {}
    for i, qa in enumerate(qas):
        by_movie.setdefault(qa.movie_id, []).append(i)
    found = sum(len(duplicate_pairs([qas[i] for i in idx], vectors[idx], threshold)) for idx in by_movie.values())
    return found / len(qas) if qas else 0.0


def across_movies_duplicate_rate(qas: list[QA], question_vectors: np.ndarray, threshold: float) -> float:
    """Share of QAs that another movie's QA repeats: the same answer (case aside) to a question
    whose embedding has a cosine of at least ``threshold``. Reported, not gated: across movies
    a template question with the same answer ("How many people are in keyframe 3?" "Two.")
    teaches the model nothing new, however many movies it comes from.

    Only QAs with the same answer are compared, block by block, so the whole dataset fits.
    """
    by_answer: dict[str, list[int]] = {}
    for i, qa in enumerate(qas):
        by_answer.setdefault(qa.answer.strip().lower(), []).append(i)
    v = normalize(question_vectors) if len(qas) else question_vectors
    repeated = 0
    for members in by_answer.values():
        movies = np.array([qas[i].movie_id for i in members])
        if len(set(movies.tolist())) < 2:
            continue
        group = v[members]
        for start in range(0, len(members), _BLOCK):
            close = group[start : start + _BLOCK] @ group.T >= threshold
            close &= movies[start : start + _BLOCK, None] != movies[None, :]
            repeated += int(close.any(axis=1).sum())
    return repeated / len(qas) if qas else 0.0


def verify(plots: dict[str, MoviePlot], qas: list[QA], embedder: Embedder, threshold: float) -> dict[str, Any]:
    """Re-check a written QA table: does the oracle answer every QA, and is nothing repeated?"""
    oracle = OracleAnswerer()
    wrong = [qa.qa_id for qa in qas if qa.movie_id not in plots or oracle.answer_one(plots[qa.movie_id], qa) != qa.answer_index]
    vectors = dedup_vectors(qas, embedder)
    return {
        "oracle_accuracy": round(1 - len(wrong) / len(qas), 4) if qas else 1.0,
        "wrong": wrong,
        "duplicate_rate": round(duplicate_rate(qas, vectors, threshold), 4),
    }
