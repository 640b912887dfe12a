"""The faithfulness gate: grounded QAs whose evidence frame does not show their answer are
caught, here with frames re-drawn wrong on purpose."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dreamframe_assets.core.params import FaithfulnessParams
from dreamframe_assets.core.vocabulary import NUMBER_WORDS
from dreamframe_assets.evaluate.faithfulness import ClipVerifier, check, make_verifiers, summarize
from dreamframe_assets.qa.gates import apply_gates, flagged_rows
from dreamframe_assets.qa.offline import OfflineQAWriter
from dreamframe_assets.render.offline import OfflineRenderer, render_frame
from dreamframe_assets.story.offline import OfflineStoryWriter
from dreamframe_assets.style.offline import OfflineStyleLearner

SIZE = 128


@pytest.fixture(scope="module")
def movie():
    plot = OfflineStoryWriter().write("A lighthouse keeper finds a message in a bottle during a winter storm",
                                      "m0", 0, 3, 4, 4)
    style = OfflineStyleLearner().learn(plot.movie, 1, 32, 0)[1]
    images = OfflineRenderer().render(plot, style, SIZE, SIZE, 0)
    qas = list(OfflineQAWriter().write(plot, 1.0, 1.0, 0).qas)
    return plot, style, images, qas


def redraw(plot, style, images, k, frame=None, colours=None):
    """The movie's frames with frame ``k`` drawn again from a changed frame or cast."""
    chars = {c.char_id: c for c in plot.movie.characters}
    for char_id, colour in (colours or {}).items():
        chars[char_id] = replace(chars[char_id], clothing_colour=colour)
    out = list(images)
    out[k] = render_frame(frame or plot.frames[k], chars, style, SIZE, SIZE, k)
    return out


def test_the_embedded_renderers_frames_show_their_qa(movie):
    plot, _, images, qas = movie
    unfaithful, stats = check(plot, qas, images, make_verifiers(FaithfulnessParams(), ["pixel"]))
    assert unfaithful == {}
    pixel = stats["pixel"]
    assert {"count", "colour", "who"} <= set(pixel)
    for qtype in ("count", "colour", "who"):
        assert pixel[qtype]["shown"] == pixel[qtype]["checked"] - pixel[qtype]["abstained"] > 0
    assert all(c["abstained"] == c["checked"] for q, c in pixel.items() if q not in ("count", "colour", "who"))


def test_a_frame_redrawn_with_a_wrong_colour_or_a_missing_person_is_caught(movie):
    plot, style, images, qas = movie
    pixel = make_verifiers(FaithfulnessParams(), ["pixel"])
    colour = next(q for q in qas if q.qtype == "colour")
    k = colour.evidence_frames[0]
    wrong = next(o for i, o in enumerate(colour.options) if i != colour.answer_index)
    # everyone in frame k now wears one of the wrong options
    planted = redraw(plot, style, images, k, colours={c: wrong for c in plot.frames[k].characters})
    unfaithful, _ = check(plot, qas, planted, pixel)
    assert colour.qa_id in unfaithful and repr(wrong) in unfaithful[colour.qa_id]
    assert all(q.evidence_frames[0] == k for q in qas if q.qa_id in unfaithful)

    count = next(q for q in qas if q.qtype == "count" and len(plot.frames[q.evidence_frames[0]].characters) >= 2
                 and NUMBER_WORDS[len(plot.frames[q.evidence_frames[0]].characters) - 2] in q.options)
    j = count.evidence_frames[0]
    fewer = replace(plot.frames[j], characters=plot.frames[j].characters[:-1],
                    action="stand" if plot.frames[j].action == "hug" else plot.frames[j].action)
    unfaithful, stats = check(plot, qas, redraw(plot, style, images, j, frame=fewer), pixel)
    assert count.qa_id in unfaithful
    summary = summarize([stats])["pixel"]
    assert summary["by_qtype"]["count"]["faithfulness"] < 1.0 and summary["all"]["checked"] > 0

    # the gate drops it, or keeps and flags it
    kept, dropped, _ = apply_gates(plot, qas, len(plot.frames), _Flat(), min_answer_words=1, max_answer_words=200,
                                   near_duplicate_threshold=0.95, max_qtype_share=1.0, unfaithful=unfaithful)
    assert count.qa_id not in {q.qa_id for q in kept}
    assert any(r["qa_id"] == count.qa_id and r["gate"] == "faithfulness" for r in dropped)
    kept, dropped, _ = apply_gates(plot, qas, len(plot.frames), _Flat(), min_answer_words=1, max_answer_words=200,
                                   near_duplicate_threshold=0.95, max_qtype_share=1.0, unfaithful=unfaithful,
                                   flag_unfaithful=True)
    flagged = flagged_rows(kept, unfaithful)
    assert count.qa_id in {q.qa_id for q in kept} and [r["qa_id"] for r in flagged] == [count.qa_id]


class _Flat:
    """An embedder under which no two QAs are alike."""

    def encode(self, texts):
        return np.eye(len(texts), max(len(texts), 1), dtype=np.float32)


class _Captions:
    """A stand-in CLIP: an image shows one colour; a caption is close to it when it names it."""

    def __init__(self, shown: str):
        self.shown = shown

    def identity(self):
        return "stub"

    def images(self, images):
        return np.ones((len(images), 1), np.float32)

    def texts(self, texts):
        return np.array([[1.0 if self.shown in t else 0.0] for t in texts], np.float32)


def test_clip_picks_the_caption_closest_to_the_frame_and_abstains_when_it_cannot_tell(movie):
    crowded_plot, _, images, qas = movie
    colour = next(q for q in qas if q.qtype == "colour")
    k = colour.evidence_frames[0]  # its frame, as if it held one person
    alone = replace(crowded_plot.frames[k], characters=crowded_plot.frames[k].characters[:1])
    plot = replace(crowded_plot, frames=crowded_plot.frames[:k] + (alone,) + crowded_plot.frames[k + 1:])
    wrong = next(o for i, o in enumerate(colour.options) if i != colour.answer_index)
    verifier = ClipVerifier.__new__(ClipVerifier)
    verifier.margin = 0.0
    verifier.embedder = _Captions(wrong)
    unfaithful, stats = check(plot, [colour], images, [verifier])
    assert unfaithful[colour.qa_id].startswith(f"clip: keyframe {colour.evidence_frames[0]} shows {wrong!r}")
    verifier.embedder = _Captions(colour.answer)
    assert check(plot, [colour], images, [verifier])[0] == {}
    verifier.embedder = _Captions("no such colour")  # every caption ties: no verdict
    _, stats = check(plot, [colour], images, [verifier])
    assert stats["clip"]["colour"] == {"checked": 1, "shown": 0, "abstained": 1}
    # a colour asked of one person among several: a caption of the whole frame cannot point at them
    verifier.embedder = _Captions(wrong)
    assert check(crowded_plot, [colour], images, [verifier])[1]["clip"]["colour"]["abstained"] == 1


def test_auto_picks_the_verifier_that_can_read_the_renderers_frames():
    from dreamframe_assets.core.params import verifier_names

    assert verifier_names(FaithfulnessParams(), "offline") == ["pixel"]
    assert verifier_names(FaithfulnessParams(), "diffusion") == []  # nothing can read them: none, not pixel
    assert verifier_names(FaithfulnessParams(clip_model="clip"), "diffusion") == ["clip"]
    assert verifier_names(FaithfulnessParams(verifiers=["vlm"]), "offline") == ["vlm"]
