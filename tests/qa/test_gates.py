"""Quality gates on hand-made QAs: each planted fault is dropped with its reason."""

import re
import zlib
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from dreamframe_assets.core.params import EmbedderParams
from dreamframe_assets.core.plot import QA
from dreamframe_assets.models.embed import TextEmbedder
from dreamframe_assets.qa.gates import (
    across_movies_duplicate_rate,
    apply_gates,
    dedup_texts,
    dedup_vectors,
    duplicate_pairs,
    duplicate_rate,
    option_phrases,
    reveal_pairs,
    similar_pairs,
    verify,
)
from dreamframe_assets.qa.offline import OfflineQAWriter
from dreamframe_assets.story.offline import OfflineStoryWriter


@pytest.fixture(scope="module")
def plot():
    """A movie of the offline writer: three people, every grounded question type."""
    return OfflineStoryWriter().write("A lighthouse keeper finds a message in a bottle during a winter storm",
                                      "m0", 0, 3, 4, 4)


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
    qas = list(OfflineQAWriter().write(plot, 1.0, 1.0, 0).qas)
    revealing = {j for j, _ in reveal_pairs(qas)}
    return [qa for j, qa in enumerate(qas) if j not in revealing]


def test_good_qas_pass_every_gate(plot):
    qas = qas_of(plot)
    kept, dropped, written = gate(plot, qas)
    assert kept == qas and dropped == []
    assert sum(written["written"].values()) == len(qas) and written["oracle_wrong"] == {} and written["duplicates"] == 0


def test_a_question_that_states_another_answer_is_dropped(plot):
    qas = qas_of(plot)
    how = next(q for seed in range(50) for q in OfflineQAWriter().write(plot, 1.0, 1.0, seed).qas
               if q.qtype == "how" and q.source.endswith(":expression"))
    qas = [q for q in qas if q.qa_id != how.qa_id] + [replace(how, qa_id="how")]
    how = qas[-1]
    title = re.search(r"the scene in keyframes? [\d to]+", how.question).group(0)
    right = option_phrases(how.options)[how.answer_index]
    name = how.answer.split(" ", 1)[0]
    leak = replace(qas[1], qa_id="leak", question=f"Why does {name} look {right} in {title}")
    echo = replace(how, qa_id="echo", question=f"How does {name} appear, looking {right}, in {title}")
    kept, dropped, written = gate(plot, qas + [leak, echo])
    reasons = {row["qa_id"]: row for row in dropped if row["gate"] == "reveal"}
    assert set(reasons) == {"leak", "echo"}
    assert "its own answer" in reasons["echo"]["reason"]
    found = reveal_pairs(qas + [leak, echo])
    assert (len(qas), qas.index(how)) in found  # the leak states how's answer
    # the same words about another tinystory, or next to a wrong option's words, reveal nothing
    elsewhere = replace(leak, qa_id="elsewhere", question=f"Why does {name} look {right} in the scene in keyframe 99?")
    wrong = option_phrases(how.options)[(how.answer_index + 1) % len(how.options)]
    both = replace(leak, qa_id="both", question=f"Does {name} look {right} or {wrong} in {title}")
    assert reveal_pairs([how, elsewhere, both]) == []


def test_option_phrases_are_what_tells_options_apart():
    assert option_phrases(("Zoltan looks sad.", "Zoltan looks happy.", "Zoltan looks calm.")) == ["sad", "happy", "calm"]
    assert option_phrases(("red", "blue", "green")) == ["red", "blue", "green"]


def test_each_planted_fault_is_dropped_with_its_gate(plot):
    qas = qas_of(plot)
    count = next(i for i, q in enumerate(qas) if q.qtype == "count")
    wrong = (qas[count].answer_index + 1) % len(qas[count].options)
    planted = {
        "oracle": replace(qas[count], answer_index=wrong, answer=qas[count].options[wrong], qa_id="bad-oracle"),
        "options": replace(qas[1], options=(qas[1].answer,) * 4, answer_index=0, qa_id="bad-options"),
        "evidence": replace(qas[2], evidence_frames=(99,), qa_id="bad-evidence"),
        "duplicate": replace(qas[count], qa_id="bad-duplicate"),
    }
    kept, dropped, written = gate(plot, qas + list(planted.values()))
    by_id = {row["qa_id"]: row for row in dropped}
    for gate_name, qa in planted.items():
        assert by_id[qa.qa_id]["gate"] == gate_name, by_id[qa.qa_id]
        assert by_id[qa.qa_id]["reason"]
    assert by_id["bad-duplicate"]["reason"].startswith(f"repeats {qas[count].qa_id}")
    assert "99" in by_id["bad-evidence"]["reason"]
    assert len(kept) == len(qas)
    assert written["oracle_wrong"] == {"count": 1, qas[1].qtype: 1}  # counted before any gate
    assert written["duplicates"] == 2  # the copy, and the copy with a wrong answer


def test_missing_keyframes_and_long_answers(plot):
    qas = qas_of(plot)
    kept, dropped, _ = gate(plot, qas, drawn=3, max_answer_words=6)
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
    kept, dropped, _ = gate(plot, qas_of(plot), max_qtype_share=0.12)
    capped = [row for row in dropped if row["gate"] == "qtype_cap"]
    assert capped and all("above 12%" in row["reason"] for row in capped)


def test_verify_reports_oracle_misses(plot):
    qas = qas_of(plot)
    wrong = (qas[5].answer_index + 1) % len(qas[5].options)
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


def test_only_qas_that_share_their_evidence_frames_are_embedded(plot):
    """A QA alone with its evidence frames cannot repeat another: it is never embedded, and
    the duplicates found are those that embedding every QA finds."""
    qas = qas_of(plot)
    qas = qas + [replace(qas[0], qa_id="copy"), replace(qas[1], qa_id="other-frames", evidence_frames=(99,))]

    class Counting(BagOfWords):
        seen: list[str] = []

        def encode(self, texts):
            self.seen += texts
            return super().encode(texts)

    embedder = Counting()
    vectors = dedup_vectors(qas, embedder)
    groups = Counter((q.movie_id, frozenset(q.evidence_frames)) for q in qas)
    shared = [q for q in qas if groups[(q.movie_id, frozenset(q.evidence_frames))] > 1]
    assert embedder.seen == [t for q in shared for t in dedup_texts(q)] and len(shared) < len(qas)
    every = BagOfWords().encode([t for q in qas for t in dedup_texts(q)])
    every = every[0::2] + every[1::2]
    assert duplicate_pairs(qas, vectors, 0.95) == duplicate_pairs(qas, every, 0.95) != {}


def test_across_movies_a_repeat_is_the_same_answer_to_a_question_alike():
    def qa(movie: str, question: str, answer: str) -> QA:
        return QA(movie_id=movie, qa_id=f"{movie}-{answer}", level="3", qtype="count", question=question, answer=answer,
                  options=(answer, "x", "y"), answer_index=0, evidence_frames=(0,), subject=None, source="t")

    qas = [qa("m1", "How many people are in keyframe 3?", "Two."), qa("m2", "How many people are in keyframe 3?", "two."),
           qa("m2", "How many people are in keyframe 3?", "Three."), qa("m1", "How many people are in keyframe 3?", "Two.")]
    v = BagOfWords().encode([q.question for q in qas])
    # 0 and 1 repeat each other across movies; 3 repeats 1; 2 has no same answer elsewhere
    assert across_movies_duplicate_rate(qas, v, 0.95) == 3 / 4
    assert across_movies_duplicate_rate([qas[0], qas[3]], v[[0, 3]], 0.95) == 0.0  # within one movie: not counted
    assert across_movies_duplicate_rate([], np.zeros((0, 4)), 0.95) == 0.0


def test_with_minilm_a_reworded_qa_repeats_and_another_answer_does_not(tmp_path):
    """The rule on the real embeddings: question and answer both alike is a repeat; the same
    question with another answer is not."""
    def qa(i: int, question: str, answer: str) -> QA:
        return QA(movie_id="m", qa_id=str(i), level="3", qtype="why", question=question, answer=answer,
                  options=(answer, "x", "y"), answer_index=0, evidence_frames=(3,), subject=None, source="t")

    qas = [qa(0, "Why does Mara open the door?", "Because she hears a knock."),
           qa(1, "why does Mara open the door ?", "because she hears a knock"),
           qa(2, "Why does Mara open the door?", "Because the room is too hot."),
           qa(3, "For what reason does Mara open the door?", "Because she heard someone knocking.")]
    v = dedup_vectors(qas, TextEmbedder(EmbedderParams(), tmp_path))
    dupes = duplicate_pairs(qas, v, 0.95)
    assert dupes.get(1) == 0 and 2 not in dupes
    assert v[0] @ v[3] > 0.9 > v[0] @ v[2]
