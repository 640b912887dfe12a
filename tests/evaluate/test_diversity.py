"""Diversity metrics on cases small enough to work out by hand."""

from __future__ import annotations

import math

from dreamframe_assets.evaluate.diversity import distinct_n, entropy, normalized_entropy


def test_distinct_2_by_hand():
    # bigrams: (the cat) (cat sat) | (the cat) (cat ran): 3 distinct of 4
    assert distinct_n(["The cat sat", "the CAT ran."], n=2) == 3 / 4
    # unigrams: the cat sat ran = 4 distinct of 6
    assert distinct_n(["The cat sat", "the CAT ran."], n=1) == 4 / 6


def test_distinct_n_does_not_cross_texts_and_handles_no_ngrams():
    # one word per text: no bigram at all (none across the boundary)
    assert distinct_n(["hello", "world"], n=2) == 0.0
    assert distinct_n([], n=2) == 0.0
    assert distinct_n(["a b a b"], n=2) == 2 / 3  # (a b) (b a) (a b)


def test_entropy_by_hand():
    labels = ["a", "a", "b", "c"]  # p = 1/2, 1/4, 1/4
    assert math.isclose(entropy(labels), 1.5)
    assert math.isclose(normalized_entropy(labels), 1.5 / math.log2(3))
    assert math.isclose(entropy("wxyz"), 2.0)
    assert math.isclose(normalized_entropy("wxyz"), 1.0)
    assert entropy(["a"] * 5) == 0.0
    assert normalized_entropy(["a"] * 5) == 0.0
    assert entropy([]) == 0.0
