"""How varied the generated data is: n-gram variety and label entropy.

Near-duplicates are measured by the QA gates' one rule (``qa/gates.py``).

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

_WORD = re.compile(r"[a-z0-9']+")


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
