"""Diversity metrics on cases small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np

from dreamframe_assets.diversity import (
    distinct_n,
    entropy,
    near_duplicate_rate,
    near_duplicates,
    normalized_entropy,
)


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


def _random_vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_planted_duplicate_is_the_only_pair_found():
    v = _random_vectors(50, 16)
    v[30] = 3.0 * v[7] + 0.01 * _random_vectors(1, 16, seed=1)[0]  # same direction, other length
    assert near_duplicates(v, 0.95) == [(7, 30)]
    assert near_duplicate_rate(v, 0.95) == 1 / 50


def test_rate_counts_each_later_copy_once():
    v = _random_vectors(10, 8)
    v[4] = v[1]
    v[9] = v[1]  # duplicates both 1 and 4, still one item
    assert near_duplicates(v, 0.99) == [(1, 4), (1, 9), (4, 9)]
    assert near_duplicate_rate(v, 0.99) == 2 / 10
    assert near_duplicate_rate(np.zeros((0, 8)), 0.95) == 0.0


def test_pairs_across_similarity_blocks():
    v = _random_vectors(2100, 32)  # more rows than one block
    v[2050] = v[5]
    v[1500] = v[1100]
    assert near_duplicates(v, 0.95) == [(5, 2050), (1100, 1500)]


def test_entropy_by_hand():
    labels = ["a", "a", "b", "c"]  # p = 1/2, 1/4, 1/4
    assert math.isclose(entropy(labels), 1.5)
    assert math.isclose(normalized_entropy(labels), 1.5 / math.log2(3))
    assert math.isclose(entropy("wxyz"), 2.0)
    assert math.isclose(normalized_entropy("wxyz"), 1.0)
    assert entropy(["a"] * 5) == 0.0
    assert normalized_entropy(["a"] * 5) == 0.0
    assert entropy([]) == 0.0
