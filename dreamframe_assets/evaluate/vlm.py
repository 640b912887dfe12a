"""The VLM answerer: a transformers image-text-to-text model watches keyframes and picks an option.

It is the closest thing to the paper's use of the data (a video LLM answering
questions about a movie), and the check that keyframes made by a real renderer
show what their questions ask. Each question is shown ``vlm.frames`` keyframes,
labelled with their numbers because questions name keyframes ("keyframe 5"):
the question's evidence frames first, so they are never the ones cut, then
others spread evenly over the movie for context. Decoding is greedy, so the
answers are deterministic.
"""

from __future__ import annotations

import numpy as np

from ..core.params import EvalScoresParams
from ..core.plot import QA, MoviePlot
from ..models.vlm import load_vlm
from .choice import LETTERS, parse_choice


def choose_frames(evidence: tuple[int, ...], total: int, count: int) -> list[int]:
    """Which of ``total`` keyframes to show: the valid evidence frames (in time order)
    first, then others spread evenly over the movie (in time order), ``count`` at most."""
    shown = sorted({k for k in evidence if 0 <= k < total})[:count]
    rest = [k for k in range(total) if k not in shown]
    room = min(count - len(shown), len(rest))
    if room > 0:
        # the middle of each of `room` equal stretches of the remaining frames
        shown += [rest[int((j + 0.5) * len(rest) / room)] for j in range(room)]
    return shown


def build_prompt(qa: QA, frames: list[int]) -> list[dict]:
    """A chat with one user turn: each shown keyframe after its 1-based label, then
    the question and its lettered options."""
    content: list[dict] = []
    for k in frames:
        content.append({"type": "text", "text": f"Keyframe {k + 1}:"})
        content.append({"type": "image"})
    options = "\n".join(f"{letter}. {option}" for letter, option in zip(LETTERS, qa.options))
    content.append({
        "type": "text",
        "text": f"These are keyframes of a movie.\n{qa.question}\n{options}\n"
        "Answer with the letter of the correct option.",
    })
    return [{"role": "user", "content": content}]


class VLMAnswerer:
    """Shows a transformers image-text-to-text model keyframes and each question; reads its letter."""

    name = "vlm"

    def __init__(self, params: EvalScoresParams):
        if not params.vlm.model:
            raise ValueError("eval_scores.vlm.model: a hub id or local folder is needed for the vlm answerer")
        self.params = params.vlm

    def identity(self) -> str:
        p = self.params
        return f"vlm|{p.model}|frames={p.frames}|max_new_tokens={p.max_new_tokens}|{p.dtype}"

    def _load(self):
        return load_vlm(self.params.model, self.params.device, self.params.dtype)

    def answer(self, plot: MoviePlot, qas: list[QA], images=None) -> list[int]:
        images = list(images) if images is not None else []
        return [parse_choice(self.reply(qa, images), qa.options) for qa in qas]

    def reply(self, qa: QA, images: list[np.ndarray]) -> str:
        """The model's raw answer to one question, shown its chosen keyframes."""
        import torch
        from PIL import Image

        processor, model = self._load()
        frames = choose_frames(qa.evidence_frames, len(images), self.params.frames)
        messages = build_prompt(qa, frames)
        pictures = iter(Image.fromarray(np.asarray(images[k], np.uint8)[..., :3]) for k in frames)
        for part in messages[0]["content"]:
            if part["type"] == "image":
                part["image"] = next(pictures)
        inputs = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        ).to(model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=self.params.max_new_tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1] :]
        return processor.decode(new, skip_special_tokens=True).strip()
