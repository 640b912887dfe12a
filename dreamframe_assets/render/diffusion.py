"""Keyframes by a diffusion model: every frame drawn with the movie's style token.

Each frame's seed comes from (seed, movie, frame index), so any frame can be
redrawn alone with the same noise; frames are drawn in batches.

A frame's prompt asks first for the facts its QA will claim (who, how many, what they
wear, what they do and hold, where, their expression), then the writer's prose: CLIP
reads 77 tokens and cuts the rest, so the prose is what gets cut, never a fact. A
prompt that still does not fit drops facts from the end, and says which.

Characters that stay themselves (``keyframes.ip_adapter``): each character's reference
image is drawn once per movie, in the movie's style, from its own seed; every frame is
then conditioned on the references of the characters it shows, through IP-Adapter. A
frame's appearance text alone leaves each drawing of a character to chance.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..core.ids import item_seed
from ..core.params import KeyframesParams
from ..core.plot import Frame, MoviePlot
from ..core.vocabulary import NUMBER_WORDS, doing_phrase, place_phrase
from ..models.diffusion import (
    TextualInversionStyle,
    draw,
    frame_prompt,
    image_settings,
    ip_adapter_loaded,
    load_pipeline,
    prompt_fits,
    reference_embeds,
    style_loaded,
)


@dataclass(frozen=True)
class FramePrompt:
    """The prompt a frame is drawn with, and what of it did not fit the text encoders."""

    text: str
    lost: tuple[str, ...] = ()  # kinds of fact left out ("place", "expression", ...), "prose" when it was cut

    def to_dict(self) -> dict:
        return {"prompt": self.text, "lost": list(self.lost)}


def frame_facts(plot: MoviePlot, frame: Frame) -> list[tuple[str, str]]:
    """The frame's facts that QA relies on, most asked about first: the people (how many,
    who, left to right, each with the colour they wear), what they do and hold, the place,
    the expression. (kind, phrase) pairs."""
    cast = {c.char_id: c for c in plot.movie.characters}
    people = [cast[c].appearance for c in frame.characters if c in cast]
    n = len(people)
    count = NUMBER_WORDS[n - 1] if 0 < n <= len(NUMBER_WORDS) else str(n)
    who = ("no people" if n == 0 else f"one person: {people[0]}" if n == 1
           else f"{count} people, left to right: " + ", ".join(people))
    return [("people", who), ("action", doing_phrase(frame.action, frame.held_object)),
            ("place", place_phrase(frame.location_kind, frame.location)), ("expression", f"{frame.expression} expression")]


def _prose(frame: Frame) -> str:
    """The writer's prose without the place it starts with (a fact already)."""
    return re.sub(rf"^In {re.escape(frame.location)},\s*", "", frame.prompt.strip())


def fit_prompt(head: str, facts: Sequence[tuple[str, str]], prose: str, fits: Callable[[str], bool]) -> FramePrompt:
    """``head`` + the facts ((kind, phrase), most needed first) + the prose, cut to what
    ``fits``: the prose word by word first, then whole facts from the end."""
    facts, lost = list(facts), []
    while facts and not fits(head + "; ".join(phrase for _, phrase in facts)):
        lost.insert(0, facts.pop()[0])
    text = head + "; ".join(phrase for _, phrase in facts)
    if lost or not prose:
        return FramePrompt(text, tuple(lost + (["prose"] if prose else [])))
    words = prose.split()
    if fits(f"{text}. {prose}"):
        return FramePrompt(f"{text}. {prose}")
    low, high = 0, len(words)  # the most words of the prose that fit
    while low < high:
        mid = (low + high + 1) // 2
        if fits(f"{text}. {' '.join(words[:mid])}"):
            low = mid
        else:
            high = mid - 1
    return FramePrompt(f"{text}. {' '.join(words[:low])}" if low else text, ("prose",))


def frame_seeds(plot: MoviePlot, seed: int, character_seeds: bool = False) -> list[int]:
    """One seed per frame of the plot, each computable without drawing any other frame.

    Default: from (seed, movie_id, frame_index), so a frame's noise never depends on
    which other frames exist. ``character_seeds``: from (seed, movie_id, the frame's
    first character) plus the frame's position among that character's frames, so each
    character's frames get a run of their own seeds, unaffected by frames led by
    others. This does not make a character look the same: neighbouring seeds give
    unrelated noise. Identity comes from the appearance text every prompt repeats
    and the style token; the seeds only make each frame reproducible and stable
    when frames of other characters are added or removed.
    """
    mid = plot.movie.movie_id
    if not character_seeds:
        return [item_seed("frame", seed, mid, f.frame_index) for f in plot.frames]
    seen: dict[str, int] = {}
    seeds = []
    for f in plot.frames:
        lead = f.characters[0] if f.characters else ""
        seeds.append(item_seed("character", seed, mid, lead) + seen.get(lead, 0))
        seen[lead] = seen.get(lead, 0) + 1
    return seeds


class DiffusionRenderer:
    """Stage 3: every frame drawn by the diffusion model with the movie's style token."""

    name = "diffusion"

    def __init__(self, params: KeyframesParams):
        self.params = params

    def identity(self) -> str:
        """Goes into cache keys: settings that change images (not batch size: batching changes nothing)."""
        settings = {**image_settings(self.params.diffusion), "character_seeds": self.params.diffusion.character_seeds,
                    "prompt": self.params.prompt}
        if self.params.ip_adapter.model:  # only then: frames drawn without references keep their keys
            settings["ip_adapter"] = self.params.ip_adapter.model_dump()
        return "diffusion-render/2:" + json.dumps(settings, sort_keys=True)

    def prompts(self, plot: MoviePlot, style: Any, indices: Sequence[int]) -> list[FramePrompt]:
        """Each chosen frame's prompt (call with the style loaded: its token counts as one)."""
        if self.params.prompt == "prose":
            return [FramePrompt(frame_prompt(style, plot.movie, plot.frames[i].prompt)) for i in indices]
        head, fits = frame_prompt(style, plot.movie, ""), prompt_fits(load_pipeline(self.params.diffusion))
        return [fit_prompt(head, frame_facts(plot, plot.frames[i]), _prose(plot.frames[i]), fits) for i in indices]

    def references(self, plot: MoviePlot, style: Any, width: int, height: int, seed: int) -> dict[str, np.ndarray]:
        """One reference image per character (call with the style loaded), each from its own
        seed: the picture every frame of theirs is conditioned on."""
        ip, cast = self.params.ip_adapter, plot.movie.characters
        prompts = [frame_prompt(style, plot.movie, ip.reference_prompt.format(appearance=c.appearance)) for c in cast]
        seeds = [item_seed("character-reference", seed, plot.movie.movie_id, c.char_id) for c in cast]
        return dict(zip([c.char_id for c in cast], draw(self.params.diffusion, prompts, seeds, width, height)))

    def render(self, plot: MoviePlot, style: Any, width: int, height: int, seed: int,
               indices: Sequence[int] | None = None) -> list[np.ndarray]:
        """One image per plot.frames (or per ``indices`` into it: redraw frames alone;
        the result equals the same frames drawn with the whole movie)."""
        return self.render_movie(plot, style, width, height, seed, indices).images

    def render_movie(self, plot: MoviePlot, style: Any, width: int, height: int, seed: int,
                     indices: Sequence[int] | None = None) -> Rendered:
        """``render``, with the prompt each image was drawn with and the character references."""
        loaded = style_loaded(load_pipeline(self.params.diffusion), style) \
            if isinstance(style, TextualInversionStyle) else contextlib.nullcontext()
        with loaded:
            return self._render(plot, style, width, height, seed, indices)

    def _render(self, plot: MoviePlot, style: Any, width: int, height: int, seed: int,
                indices: Sequence[int] | None) -> Rendered:
        diffusion, ip = self.params.diffusion, self.params.ip_adapter
        seeds = frame_seeds(plot, seed, diffusion.character_seeds)
        chosen = list(range(len(plot.frames)) if indices is None else indices)
        prompts = self.prompts(plot, style, chosen)
        texts, chosen_seeds = [p.text for p in prompts], [seeds[i] for i in chosen]
        if not ip.model or not plot.movie.characters:
            return Rendered(draw(diffusion, texts, chosen_seeds, width, height), prompts)
        references = self.references(plot, style, width, height, seed)
        embeds = reference_embeds(diffusion, ip, list(references.values()))
        row = {char_id: i for i, char_id in enumerate(references)}
        nobody = embeds.new_zeros((1, embeds.shape[1]))  # a frame without people: the unconditional embedding
        shown = [[row[c] for c in plot.frames[i].characters if c in row] for i in chosen]
        per_frame = [embeds[rows] if rows else nobody for rows in shown]
        with ip_adapter_loaded(diffusion, ip):
            images = draw(diffusion, texts, chosen_seeds, width, height, references=per_frame)
        return Rendered(images, prompts, references)


@dataclass(frozen=True)
class Rendered:
    """A movie's frames, the prompt each was drawn with, and its character references (if any)."""

    images: list[np.ndarray]
    prompts: list[FramePrompt]
    references: dict[str, np.ndarray] = field(default_factory=dict)  # char_id -> image
