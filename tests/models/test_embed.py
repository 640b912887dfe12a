"""The embedding cache: every unique text embedded once, across calls, instances and processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from dreamframe_assets.core.cache import digest
from dreamframe_assets.core.params import EmbedderParams
from dreamframe_assets.models import device, embed
from dreamframe_assets.models.embed import TextEmbedder
from dreamframe_assets.qa.gates import similar_pairs


class FakeModel:
    """Deterministic vectors from a text's digest; records what it was asked to embed."""

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts, **kwargs):
        self.seen += texts
        return np.stack([
            np.random.default_rng(int(digest(t)[:8], 16)).standard_normal(8) * 5 for t in texts
        ]).astype(np.float32)


@pytest.fixture
def loads(monkeypatch):
    """Count model loads (a fresh process: no model loaded yet)."""
    calls: list[tuple[str, str]] = []
    model = FakeModel()

    def fake_load(name: str, device: str):
        calls.append((name, device))
        return model

    monkeypatch.setattr(embed, "load_model", fake_load)
    monkeypatch.setattr(device, "_LOADED", {})
    return calls, model


def test_vectors_are_unit_rows_in_order_and_duplicates_embedded_once(tmp_path, loads):
    calls, model = loads
    e = TextEmbedder(EmbedderParams(), tmp_path)
    v = e.encode(["b", "a", "b", "c", "a"])
    assert v.shape == (5, 8) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(v[0], v[2]) and np.array_equal(v[1], v[4])
    assert model.seen == ["b", "a", "c"]
    assert e.stats() == {"unique_texts": 3, "cache_hits": 0, "computed": 3}
    assert calls == [("minilm", "cpu")]
    assert e.encode([]).shape[0] == 0


def test_second_encode_computes_nothing_and_never_loads_the_model(tmp_path, loads, monkeypatch):
    calls, model = loads
    texts = ["a question?", "an option", "a frame description", "an option"]
    first = TextEmbedder(EmbedderParams(), tmp_path).encode(texts)
    assert len(calls) == 1

    monkeypatch.setattr(device, "_LOADED", {})  # as if in a new process
    again = TextEmbedder(EmbedderParams(), tmp_path)
    second = again.encode(texts)
    assert np.array_equal(first, second)
    assert again.stats() == {"unique_texts": 3, "cache_hits": 3, "computed": 0}
    assert len(calls) == 1  # fully cached: the model was not loaded

    again.encode(["a question?", "something new"])
    assert again.stats() == {"unique_texts": 5, "cache_hits": 4, "computed": 1}
    assert model.seen[-1:] == ["something new"] and len(calls) == 2
    assert (tmp_path / embed.CACHE_FILE).exists() and len(list(tmp_path.iterdir())) <= 3  # one db (+ WAL files)


def test_models_do_not_share_vectors(tmp_path, loads):
    calls, _ = loads
    TextEmbedder(EmbedderParams(), tmp_path).encode(["same text"])
    other = TextEmbedder(EmbedderParams(model="some/other-model"), tmp_path)
    other.encode(["same text"])
    assert other.stats()["computed"] == 1
    assert calls == [("minilm", "cpu"), ("some/other-model", "cpu")]


def _fill(cache_dir: str, start: int) -> int:
    """In a child process: embed 300 texts, half of them also embedded by the sibling."""
    embed.load_model = lambda name, device: FakeModel()
    e = TextEmbedder(EmbedderParams(), Path(cache_dir))
    for chunk in range(start, start + 300, 20):
        e.encode([f"text {i}" for i in range(chunk, chunk + 20)])
    return e.stats()["computed"]


def test_two_processes_share_one_cache(tmp_path, loads):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        computed = pool.starmap(_fill, [(str(tmp_path), 0), (str(tmp_path), 150)])
    assert 450 <= sum(computed) <= 600  # 450 unique texts; overlap may be embedded by both, never lost
    e = TextEmbedder(EmbedderParams(), tmp_path)
    e.encode([f"text {i}" for i in range(450)])
    assert e.stats()["computed"] == 0


# ---------------------------------------------------------------- the real model
@pytest.fixture(scope="module")
def minilm(tmp_path_factory) -> TextEmbedder:
    return TextEmbedder(EmbedderParams(), tmp_path_factory.mktemp("embeddings"))


def test_minilm_paraphrases_are_close(minilm):
    v = minilm.encode([
        "How many people are in keyframe 2?",
        "how many people are in keyframe 2 ?",  # case and spacing: a duplicate at the default 0.95
        "Which character opens the door of the lighthouse at night?",
        "Which character opens the door of the lighthouse at dawn?",  # one word changed: about 0.94
        "What colour is the sky above the desert?",
    ])
    assert v.shape == (5, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert similar_pairs(v, 0.95) == [(0, 1)]
    assert (2, 3) in similar_pairs(v, 0.9)
    assert float(v[2] @ v[4]) < 0.5


def test_warm_embeds_what_is_missing_once_sorted_by_length(tmp_path, loads):
    """Evaluation embeds all its texts ahead in one pass; the movies then only read the cache."""
    calls, model = loads
    e = TextEmbedder(EmbedderParams(), tmp_path)
    e.encode(["cached already"])
    assert e.warm(["a much longer text here", "cached already", "bb", "a much longer text here", "c"], chunk=2) == 3
    assert model.seen == ["cached already", "c", "bb", "a much longer text here"]
    fresh = TextEmbedder(EmbedderParams(), tmp_path)
    fresh.encode(["bb", "c", "a much longer text here"])
    assert fresh.stats()["computed"] == 0 and e.warm(["bb"]) == 0


def test_bfloat16_vectors_stay_within_a_hair_of_float32_and_never_share_their_cache(tmp_path):
    """``dtype: auto`` computes in bfloat16 where the chip has it: the vectors differ from
    float32 by far less than any threshold's margin, and each precision keeps its own entries."""
    texts = ["How many people are in keyframe 2?", "Because Noemi makes a careful plan at the market square.",
             "What colour is the person furthest to the left wearing in keyframe 34?", "purple"]
    full = TextEmbedder(EmbedderParams(dtype="float32"), tmp_path)
    half = TextEmbedder(EmbedderParams(dtype="bfloat16"), tmp_path)
    assert full.identity() != half.identity() and EmbedderParams().dtype == "auto"
    a, b = full.encode(texts), half.encode(texts)
    assert half.stats()["computed"] == len(texts)  # not served float32 vectors
    assert not np.array_equal(a, b)
    assert np.abs(a @ a.T - b @ b.T).max() < 0.01
    assert np.array_equal(TextEmbedder(EmbedderParams(dtype="bfloat16"), tmp_path).encode(texts), b)
