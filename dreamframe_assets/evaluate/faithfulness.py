"""Faithfulness: does the drawn frame show what its grounded QA claims?

A grounded QA (who, how many, what colour, where, doing what) is built from the
structured frame. The embedded renderer draws exactly those fields; a diffusion model
need not (two people where the frame has three, a blue coat for a red one). Every such
QA is then a false label. So after the keyframes are drawn, each verifier answers the
grounded QAs from the evidence frame alone, as a closed question over the QA's own
options (the true phrase and its alternatives): picking another option means the frame
does not show the fact; -1 means the verifier cannot tell (abstains), which is counted
and never held against the QA.

Verifiers, by name in ``qa_pairs.faithfulness.verifiers`` (``auto``: pixel for the embedded
renderer, clip for diffusion frames when a CLIP model is set):
- ``pixel``: the embedded renderer's frames (figures and clothing colours read off the pixels);
- ``clip``: zero-shot, the frame's CLIP image embedding against each option as a caption;
- ``vlm``: the configured image-text model asked the closed question.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from ..core.params import FaithfulnessParams
from ..core.plot import QA, MoviePlot

# What one frame can show: the qtypes checked (order and speaker span frames or lines).
CHECKED = ("who", "count", "colour", "action", "location")

# What a frame can show of an option, as a caption for CLIP (the option fills the blank).
CAPTIONS = {
    "count": "a picture of {} people",  # "one" reads "a picture of one person"
    "colour": "a picture of a person wearing {}",
    "who": "a picture of {}",
    "action": "a picture of a person {}",
    "location": "a picture of a place: {}",
}


class ClipVerifier:
    """Zero-shot CLIP: the option whose caption is closest to the evidence frame's image."""

    name = "clip"

    def __init__(self, model: str, device: str = "auto", margin: float = 0.0):
        from ..models.clip import ClipEmbedder

        self.embedder = ClipEmbedder(model, device)
        self.margin = margin  # the best caption must beat the next by this, or it abstains

    def identity(self) -> str:
        return f"{self.embedder.identity()}|margin={self.margin}|{sorted(CAPTIONS.items())}"

    def answer(self, plot: MoviePlot, qas: list[QA], images: Sequence[np.ndarray] | None = None) -> list[int]:
        # who and colour ask about one person of the frame ("furthest to the left"), which a
        # caption of the whole picture cannot point at: only frames of one person are judged
        asked = [i for i, qa in enumerate(qas) if qa.qtype in CAPTIONS and qa.evidence_frames and images is not None
                 and 0 <= qa.evidence_frames[0] < len(images)
                 and (qa.qtype not in ("who", "colour") or _people(plot, qa.evidence_frames[0]) == 1)]
        picks = [-1] * len(qas)
        if not asked:
            return picks
        frames = sorted({qas[i].evidence_frames[0] for i in asked})
        vectors = dict(zip(frames, self.embedder.images([images[k] for k in frames])))
        captions = [caption(qas[i].qtype, o) for i in asked for o in qas[i].options]
        texts = self.embedder.texts(captions)
        start = 0
        for i in asked:
            qa = qas[i]
            scores = texts[start : start + len(qa.options)] @ vectors[qa.evidence_frames[0]]
            start += len(qa.options)
            order = np.argsort(-scores)
            if len(order) < 2 or scores[order[0]] - scores[order[1]] > self.margin:
                picks[i] = int(order[0])
        return picks


def caption(qtype: str, option: str) -> str:
    if qtype == "count" and option.strip().lower() == "one":
        return "a picture of one person"
    return CAPTIONS[qtype].format(option)


def _people(plot: MoviePlot, k: int) -> int:
    return len(plot.frames[k].characters) if 0 <= k < len(plot.frames) else -1


def make_verifiers(params: FaithfulnessParams, names: Sequence[str]) -> list[Any]:
    """The verifiers ``names`` names (``core.params.verifier_names``), each with ``name`` and
    ``answer`` (and ``identity`` where it has settings)."""
    out: list[Any] = []
    for name in names:
        if name == "pixel":
            from .pixel import PixelAnswerer

            out.append(PixelAnswerer())
        elif name == "clip":
            out.append(ClipVerifier(params.clip_model, params.device, params.clip_margin))
        elif name == "vlm":
            from ..core.params import EvalScoresParams
            from .vlm import VLMAnswerer

            # one evidence frame: the question is about that frame alone
            out.append(VLMAnswerer(EvalScoresParams(vlm=params.vlm.model_copy(update={"frames": 1}))))
    return out


def check(plot: MoviePlot, qas: Sequence[QA], images: Sequence[np.ndarray], verifiers: Sequence[Any]
          ) -> tuple[dict[str, str], dict[str, dict[str, dict[str, int]]]]:
    """Each grounded QA asked of every verifier from its evidence frame. Returns the QAs some
    verifier saw otherwise (qa_id -> reason) and, per verifier and qtype, how many were
    checked, shown and abstained."""
    grounded = [qa for qa in qas if qa.qtype in CHECKED and qa.evidence_frames]
    unfaithful: dict[str, str] = {}
    stats: dict[str, dict[str, dict[str, int]]] = {}
    for verifier in verifiers:
        picks = verifier.answer(plot, grounded, images) if grounded else []
        counts: dict[str, Counter] = {}
        for qa, pick in zip(grounded, picks):
            c = counts.setdefault(qa.qtype, Counter())
            c["checked"] += 1
            if pick < 0:
                c["abstained"] += 1
            elif pick == qa.answer_index:
                c["shown"] += 1
            elif qa.qa_id not in unfaithful:
                unfaithful[qa.qa_id] = (f"{verifier.name}: keyframe {qa.evidence_frames[0]} shows "
                                        f"{qa.options[pick]!r}, not {qa.answer!r}")
        stats[verifier.name] = {q: {k: c[k] for k in ("checked", "shown", "abstained")} for q, c in sorted(counts.items())}
    return unfaithful, stats


def summarize(stats: Sequence[dict]) -> dict[str, dict]:
    """Per-movie ``check`` stats summed: per verifier, per qtype and overall, with the share of
    the QAs it could judge that the frames show (``faithfulness``)."""
    total: dict[str, dict[str, Counter]] = {}
    for movie in stats:
        for name, by_qtype in movie.items():
            for qtype, c in by_qtype.items():
                total.setdefault(name, {}).setdefault(qtype, Counter()).update(c)

    def share(c: Counter) -> dict:
        judged = c["checked"] - c["abstained"]
        return {**{k: c[k] for k in ("checked", "shown", "abstained")},
                "faithfulness": round(c["shown"] / judged, 4) if judged else None}

    return {name: {"all": share(sum(by.values(), Counter())), "by_qtype": {q: share(c) for q, c in sorted(by.items())}}
            for name, by in sorted(total.items())}
