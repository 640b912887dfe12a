"""Quality gates on hand-made QAs: each planted fault is dropped with its reason."""

import zlib
from dataclasses import replace

import numpy as np

from dreamframe_assets.core.plot import QA
from dreamframe_assets.qa.gates import (
    apply_gates,
    duplicate_rate,
    similar_pairs,
    verify,
)
from dreamframe_assets.qa.offline import OfflineQAWriter


class BagOfWords:
    """A stand-in embedder: hashed word counts, so equal texts are identical vectors."""

    def encode(self, texts):
        out = np.zeros((len(texts), 256), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % 256] += 1
        return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-12)


def gate(plot, qas, drawn=None, **kw):
    args = dict(min_answer_words=1, max_answer_words=200, near_duplicate_threshold=0.95, max_qtype_share=1.0) | kw
    return apply_gates(plot, qas, len(plot.frames) if drawn is None else drawn, BagOfWords(), **args)


def qas_of(plot):
    return list(OfflineQAWriter().write(plot, 2.0, 1.0, 0).qas)


def test_good_qas_pass_every_gate(plot):
    qas = qas_of(plot)
    kept, dropped = gate(plot, qas)
    assert kept == qas and dropped == []


def test_each_planted_fault_is_dropped_with_its_gate(plot):
    qas = qas_of(plot)
    count = next(i for i, q in enumerate(qas) if q.qtype == "count")
    wrong = (qas[count].answer_index + 1) % 4
    planted = {
        "oracle": replace(qas[count], answer_index=wrong, answer=qas[count].options[wrong], qa_id="bad-oracle"),
        "options": replace(qas[1], options=(qas[1].answer,) * 4, answer_index=0, qa_id="bad-options"),
        "evidence": replace(qas[2], evidence_frames=(99,), qa_id="bad-evidence"),
        "duplicate": replace(qas[count], qa_id="bad-duplicate"),
    }
    kept, dropped = gate(plot, qas + list(planted.values()))
    by_id = {row["qa_id"]: row for row in dropped}
    for gate_name, qa in planted.items():
        assert by_id[qa.qa_id]["gate"] == gate_name, by_id[qa.qa_id]
        assert by_id[qa.qa_id]["reason"]
    assert by_id["bad-duplicate"]["reason"].startswith(f"repeats {qas[count].qa_id}")
    assert "99" in by_id["bad-evidence"]["reason"]
    assert len(kept) == len(qas)


def test_missing_keyframes_and_long_answers(plot):
    qas = qas_of(plot)
    kept, dropped = gate(plot, qas, drawn=3, max_answer_words=6)
    gates = {row["gate"] for row in dropped}
    assert {"evidence", "length"} <= gates
    assert all(max(q.evidence_frames) < 3 and len(q.answer.split()) <= 6 for q in kept)


def test_same_text_about_other_frames_is_not_a_duplicate(plot):
    counts = [q for q in qas_of(plot) if q.qtype == "count"]
    twins = [replace(counts[0], qa_id="a"), replace(counts[0], qa_id="b", evidence_frames=(counts[0].evidence_frames[0] + 1,))]
    vectors = BagOfWords().encode([q.question + " " + q.answer for q in twins])
    assert duplicate_rate(twins, vectors, 0.95) == 0.0
    assert duplicate_rate([twins[0], replace(twins[0], qa_id="c")], vectors[[0, 0]], 0.95) == 0.5


def test_qtype_cap_drops_the_excess(plot):
    kept, dropped = gate(plot, qas_of(plot), max_qtype_share=0.12)
    capped = [row for row in dropped if row["gate"] == "qtype_cap"]
    assert capped and all("above 12%" in row["reason"] for row in capped)


def test_verify_reports_oracle_misses(plot):
    qas = qas_of(plot)
    wrong = (qas[5].answer_index + 1) % 4
    qas[5] = replace(qas[5], answer_index=wrong, answer=qas[5].options[wrong])
    found = verify({plot.movie.movie_id: plot}, qas, BagOfWords(), 0.95)
    assert found["wrong"] == [qas[5].qa_id]
    assert found["oracle_accuracy"] == round(1 - 1 / len(qas), 4)


def _random_vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_planted_duplicate_is_the_only_pair_found():
    v = _random_vectors(50, 16)
    v[30] = 3.0 * v[7] + 0.01 * _random_vectors(1, 16, seed=1)[0]  # same direction, other length
    assert similar_pairs(v, 0.95) == [(7, 30)]
    qas = [QA("m", f"q{i}", "grounded", "who", f"q{i}", "a", ("a", "b", "c", "d"), 0, (0,), None, "x") for i in range(50)]
    assert duplicate_rate(qas, v, 0.95) == 1 / 50


def test_rate_counts_each_later_copy_once():
    v = _random_vectors(10, 8)
    v[4] = v[1]
    v[9] = v[1]  # duplicates both 1 and 4, still one item
    assert similar_pairs(v, 0.99) == [(1, 4), (1, 9), (4, 9)]
    qas = [QA("m", f"q{i}", "grounded", "who", f"q{i}", "a", ("a", "b", "c", "d"), 0, (0,), None, "x") for i in range(10)]
    assert duplicate_rate(qas, v, 0.99) == 2 / 10
    assert duplicate_rate([], np.zeros((0, 8)), 0.95) == 0.0


def test_pairs_across_similarity_blocks():
    v = _random_vectors(2100, 32)  # more rows than one block
    v[2050] = v[5]
    v[1500] = v[1100]
    assert similar_pairs(v, 0.95) == [(5, 2050), (1100, 1500)]
