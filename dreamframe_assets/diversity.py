"""How varied the generated data is: n-gram variety, near-duplicates, label entropy.

Template-driven generators (offline or an LLM at low temperature) tend to repeat
themselves; a dataset of near-identical questions inflates its size without adding
anything to learn from, and a skewed label mix (the paper's data is 68% "why")
teaches the mix. These are pure functions on lists and arrays.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Hashable, Iterable

import numpy as np

_WORD = re.compile(r"[a-z0-9']+")
_BLOCK = 1024  # rows per block of the similarity matrix: 1024 x n floats at a time


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinct_n(texts: Iterable[str], n: int = 2) -> float:
    """Distinct n-grams / all n-grams over lower-cased word tokens (0 when there are none).

    n-grams do not cross text boundaries.
    """
    grams: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        tokens = words(text)
        grams.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def _unit(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"expected an n x d array, got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def near_duplicates(vectors: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, whose cosine similarity is >= ``threshold``, sorted.

    All pairs, block by block, so memory stays at one block of rows (fine for 10^4 items).
    """
    v = _unit(vectors)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(v), _BLOCK):
        sim = v[start : start + _BLOCK] @ v.T
        rows, cols = np.nonzero(sim >= threshold)
        rows = rows + start
        keep = cols > rows
        pairs += zip(rows[keep].tolist(), cols[keep].tolist())
    return sorted(pairs)


def near_duplicate_rate(vectors: np.ndarray, threshold: float) -> float:
    """Share of items that near-duplicate an earlier item (what dropping duplicates would remove)."""
    n = len(vectors)
    if n == 0:
        return 0.0
    duplicates = {j for _, j in near_duplicates(vectors, threshold)}
    return len(duplicates) / n


def entropy(labels: Iterable[Hashable]) -> float:
    """Shannon entropy of the label distribution, in bits (0 for no labels)."""
    counts = Counter(labels)
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


def normalized_entropy(labels: Iterable[Hashable]) -> float:
    """Entropy / log2(number of distinct labels): 1 is a perfectly even mix (0 for one label)."""
    labels = list(labels)
    k = len(set(labels))
    return entropy(labels) / math.log2(k) if k > 1 else 0.0
