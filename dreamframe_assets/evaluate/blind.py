"""The blind answerer: answers from the question and options alone, never the frames.

Multiple-choice data often leaks its answers through language: the correct option
repeats the question's words, is the longest, or is the "central" one that the
distractors were made by editing. A model can then score well without watching
anything, and the benchmark measures text priors instead of video understanding.
Blind accuracy minus chance is one measure of that language bias; ``probes.py`` has
stronger text-only probes, and the blocking check ``eval_scores_language_bias`` fails a
dataset where the best of them (this answerer included) beats chance by too much.

``answer`` reads only ``qa.question``, ``qa.options`` and ``qa.qa_id`` (for seeding);
it never looks at the plot or the images.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from ..core.cache import digest
from ..core.params import EvalScoresParams
from ..core.plot import QA
from ..models.embed import TextEmbedder
from .choice import LETTERS, parse_choice

SCHEMA = {
    "title": "blind_answer",
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": list(LETTERS[:4])}},
    "required": ["answer"],
}


def embedding_picks(question_vecs: np.ndarray, option_vecs: np.ndarray) -> np.ndarray:
    """Per question, the score of each option: cosine to the question plus its mean cosine
    to the other options (distractors made by editing the answer sit around it).

    ``question_vecs`` is n x d, ``option_vecs`` n x k x d, both unit rows; returns n x k.
    """
    to_question = np.einsum("nkd,nd->nk", option_vecs, question_vecs)
    pairwise = np.einsum("nkd,njd->nkj", option_vecs, option_vecs)
    k = option_vecs.shape[1]
    centrality = (pairwise.sum(axis=2) - np.einsum("nkk->nk", pairwise)) / max(k - 1, 1)
    return to_question + centrality


def _tie_break(scores: np.ndarray, seed: Any) -> int:
    """The best option; a seeded choice among exact ties, so no position is favoured."""
    best = np.flatnonzero(scores >= scores.max() - 1e-6)
    return int(best[0]) if len(best) == 1 else int(random.Random(digest(seed)).choice(best.tolist()))


class BlindAnswerer:
    """Text-only guesser: ``embedding`` (sentence embeddings, deterministic) or ``llm``."""

    name = "blind"

    def __init__(self, params: EvalScoresParams, cache_dir: Path, llm_cache_dir: Path):
        self.params = params
        self.backend = params.blind.backend
        self.embedder = TextEmbedder(params.embedder, cache_dir)
        self.llm_cache_dir = Path(llm_cache_dir)
        self._chat = None

    def identity(self) -> str:
        """Names all that shapes the picks, for cache keys of evaluation results."""
        if self.backend == "llm":
            from ..models.llm import load_prompt

            return f"blind|llm|{self.chat.identity()}|{digest(self.chat.sampling())}|{load_prompt('blind').tag}"
        return f"blind|embedding|{self.embedder.identity()}|seed={self.params.seed}"

    @property
    def chat(self):
        if self._chat is None:
            from ..models.llm import CachedChat, make_client

            self._chat = CachedChat(make_client(self.params.blind.llm, "eval_scores.blind.llm"), self.llm_cache_dir)
        return self._chat

    def answer(self, plot: Any, qas: list[QA], images: Any = None) -> list[int]:
        """Per QA, the option index it guesses (-1: the LLM named none). ``plot`` and ``images`` are unused."""
        if not qas:
            return []
        if self.backend == "llm":
            return self._answer_llm(qas)
        return self._answer_embedding(qas)

    def texts(self, qas: list[QA]) -> list[str]:
        """What the embedding backend embeds for ``qas`` (none for the LLM backend)."""
        return [t for qa in qas for t in (qa.question, *qa.options)] if self.backend == "embedding" else []

    def _answer_embedding(self, qas: list[QA]) -> list[int]:
        vectors = self.embedder.encode(self.texts(qas))
        picks, start = [], 0
        for qa in qas:  # per QA: option counts may differ
            k = len(qa.options)
            q, opts = vectors[start], vectors[start + 1 : start + 1 + k]
            start += 1 + k
            scores = embedding_picks(q[None], opts[None])[0]
            picks.append(_tie_break(scores, ("blind", self.params.seed, qa.qa_id)))
        return picks

    def _answer_llm(self, qas: list[QA]) -> list[int]:
        from ..models.llm import load_prompt

        prompt = load_prompt("blind")
        requests = []
        for qa in qas:
            letters = LETTERS[: len(qa.options)]
            options = "\n".join(f"{letter}. {option}" for letter, option in zip(letters, qa.options))
            text = prompt.render(question=qa.question, options=options, letters=", ".join(letters))
            requests.append([{"role": "user", "content": text}])
        replies = self.chat.complete(requests, SCHEMA, prompt.tag)
        return [parse_choice(r.text, qa.options) for r, qa in zip(replies, qas)]
