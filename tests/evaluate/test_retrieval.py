"""Evidence retrieval: AP and mAP by hand, the text retriever on a hand-made plot, CLIP via a fake."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dreamframe_assets.core.params import EmbedderParams
from dreamframe_assets.core.plot import QA
from dreamframe_assets.evaluate.retrieval import (
    average_precision,
    retrieval_sample,
    clip_aps,
    frame_text,
    mean_ap,
    rank_frames,
    retrieval_aps,
    text_aps,
)
from dreamframe_assets.models.embed import TextEmbedder
from tests.conftest import make_plot


def _qa(movie: str, i: int, question: str, evidence: tuple[int, ...], qtype: str = "speaker") -> QA:
    return QA(movie_id=movie, qa_id=f"{movie}-q{i:04d}", level="grounded", qtype=qtype, question=question,
              answer="x", options=("x", "y", "z", "w"), answer_index=0, evidence_frames=evidence,
              subject=None, source="test")


def test_average_precision_by_hand():
    # relevant at ranks 2 and 3: precision 1/2 and 2/3
    assert math.isclose(average_precision([3, 1, 2, 0], {1, 2}), (1 / 2 + 2 / 3) / 2)
    assert average_precision([1, 2, 0], {1, 2}) == 1.0
    assert math.isclose(average_precision([0, 1, 2], {2}), 1 / 3)
    assert math.isclose(average_precision([0, 1], {1, 5}), (1 / 2) / 2)  # 5 never retrieved
    assert average_precision([0, 1], set()) == 0.0


def test_rank_frames_by_cosine():
    frames = np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32)  # not unit length
    assert rank_frames(np.array([1.0, 0.1]), frames) == [0, 2, 1, 3]
    assert rank_frames(np.array([0.0, 2.0]), frames) == [1, 2, 0, 3]


def test_mean_average_precision_over_two_movies():
    eye = np.eye(4, dtype=np.float32)
    frames = {"m1": eye, "m2": eye[:3, :3]}
    qas = [
        _qa("m1", 0, "q", (2,)),  # ranked first: AP 1
        _qa("m2", 1, "q", (1, 2)),  # ranking [0, 1, 2]: AP (1/2 + 2/3) / 2
        _qa("m2", 2, "q", (0, 1, 2), "overview"),  # every frame is evidence: not a retrieval problem
        _qa("m1", 3, "q", ()),  # no evidence: left out
    ]
    questions = [eye[2], np.array([1, 0.5, 0.2, 0], np.float32)[:3], eye[0, :3], eye[0]]
    aps = [ap for mid in ("m1", "m2") for ap in retrieval_aps(
        [qa for qa in qas if qa.movie_id == mid], frames[mid], [q for qa, q in zip(qas, questions) if qa.movie_id == mid])]
    assert aps[1] is None and aps[2] is not None and aps[3] is None  # m1: (2,), (); m2: (1, 2), all frames
    assert math.isclose(mean_ap(aps), (1 + (1 / 2 + 2 / 3) / 2) / 2, rel_tol=1e-6)
    assert mean_ap([]) == 0.0


def test_frame_text_carries_description_and_dialogue():
    plot = make_plot()
    text = frame_text(plot, plot.frames[2])
    assert "a young man with curly black hair in blue" in text and "talking" in text
    assert '"My boat is on the rocks!"' in text


@pytest.fixture(scope="module")
def minilm(tmp_path_factory) -> TextEmbedder:
    return TextEmbedder(EmbedderParams(), tmp_path_factory.mktemp("embeddings"))


def test_text_retriever_finds_the_frames_of_spoken_lines(minilm):
    plot = make_plot()
    qas = [
        _qa(plot.movie.movie_id, i, f'Who says "{line.text}"?', (line.after_frame,))
        for i, line in enumerate(plot.dialogue)
    ]
    assert mean_ap(text_aps(plot, qas, minilm)) > 0.8


class FakeClip:
    """Frame i (an image filled with value i) and the text "frame i" map to the same one-hot."""

    def images(self, images):
        return np.stack([np.eye(8, dtype=np.float32)[int(img.mean())] for img in images])

    def texts(self, texts):
        return np.stack([np.eye(8, dtype=np.float32)[int(t.split()[-1])] for t in texts])


def test_clip_retriever_against_the_clip_interface():
    plot = make_plot()  # six frames
    mid = plot.movie.movie_id
    keyframes = [np.full((4, 4, 3), i, dtype=np.uint8) for i in range(6)]
    qas = [_qa(mid, 0, "frame 3", (3,)), _qa(mid, 1, "frame 2", (0,))]  # second: ranking [2, 0, ...] -> AP 1/2
    aps, frames = clip_aps(keyframes, qas, FakeClip())
    assert math.isclose(mean_ap(aps), (1 + 1 / 2) / 2) and frames.shape == (6, 8)


def test_the_text_retriever_runs_on_a_fixed_sample_of_movies():
    ids = [f"movie-{i}" for i in range(50)]
    sample = retrieval_sample(ids, 10, seed=0)
    assert len(sample) == 10 and sample <= set(ids)
    assert retrieval_sample(ids[::-1], 10, seed=0) == sample  # whatever the order
    assert retrieval_sample(ids + ["movie-new"], 10, seed=0) - {"movie-new"} <= sample  # a new movie displaces one at most
    assert retrieval_sample(ids, 10, seed=1) != sample
    assert retrieval_sample(ids, 0, seed=0) == set(ids) == retrieval_sample(ids, 50, seed=0)
