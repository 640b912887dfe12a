"""Keyframes by a diffusion model: every frame drawn with the movie's style token.

Each frame's seed comes from (seed, movie, frame index), so any frame can be
redrawn alone with the same noise; frames are drawn in batches.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from ..core.ids import item_seed
from ..core.params import KeyframesParams
from ..core.plot import MoviePlot
from ..models.diffusion import (
    TextualInversionStyle,
    draw,
    frame_prompt,
    image_settings,
    load_pipeline,
    style_loaded,
)


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
        return "diffusion-render/1:" + json.dumps({**image_settings(self.params.diffusion),
                                                   "character_seeds": self.params.diffusion.character_seeds},
                                                  sort_keys=True)

    def render(self, plot: MoviePlot, style: Any, width: int, height: int, seed: int,
               indices: Sequence[int] | None = None) -> list[np.ndarray]:
        """One image per plot.frames (or per ``indices`` into it: redraw frames alone;
        the result equals the same frames drawn with the whole movie)."""
        diffusion = self.params.diffusion
        seeds = frame_seeds(plot, seed, diffusion.character_seeds)
        chosen = range(len(plot.frames)) if indices is None else indices
        prompts = [frame_prompt(style, plot.movie, plot.frames[i].prompt) for i in chosen]
        chosen_seeds = [seeds[i] for i in chosen]
        if not isinstance(style, TextualInversionStyle):
            return draw(diffusion, prompts, chosen_seeds, width, height)
        with style_loaded(load_pipeline(diffusion), style):
            return draw(diffusion, prompts, chosen_seeds, width, height)
