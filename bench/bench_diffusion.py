"""Keyframes benchmark: one movie's frames drawn in batches of 8 vs one by one.

Uses the tiny SD pipeline the tests build (saved to a temporary folder and loaded
with ``load_pipeline``, as a user's model loads), so it runs anywhere in seconds.
Prints the wall-time ratio and checks that batching changes no picture: every
frame must match its one-by-one twin up to float rounding (a few values one level
off, from kernels that round differently for different batch shapes).

    python bench/bench_diffusion.py [--frames 16] [--steps 4] [--size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dreamframe_assets.core.params import DiffusionParams, KeyframesParams  # noqa: E402
from dreamframe_assets.render.diffusion import DiffusionRenderer  # noqa: E402
from tests.conftest import make_plot  # noqa: E402
from tests.tiny_diffusion import build_tiny_sd  # noqa: E402


def movie_with(frames: int):
    """The test movie, its frames repeated (with new indices) to the wanted count."""
    plot = make_plot()
    drawn = [dataclasses.replace(plot.frames[i % len(plot.frames)], frame_index=i) for i in range(frames)]
    return dataclasses.replace(plot, frames=tuple(drawn))


def timed(renderer: DiffusionRenderer, plot, size: int, repeats: int) -> tuple[float, list[np.ndarray]]:
    """Best of ``repeats`` wall times (the least disturbed by other work on the machine)."""
    best, images = float("inf"), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        images = renderer.render(plot, None, size, size, seed=0)
        best = min(best, time.perf_counter() - t0)
    return best, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory(prefix="dreamframe-bench-diffusion-") as tmp:
        model = build_tiny_sd(Path(tmp) / "tiny-sd")
        plot = movie_with(args.frames)

        def renderer(batch: int) -> DiffusionRenderer:
            return DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=DiffusionParams(
                model=str(model), steps=args.steps, batch_size=batch)))

        renderer(1).render(movie_with(2), None, args.size, args.size, seed=0)  # load + warm up, not timed
        one_s, one = timed(renderer(1), plot, args.size, args.repeats)
        batch_s, batched = timed(renderer(args.batch), plot, args.size, args.repeats)

    diffs = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(batched, one)]
    max_diff = max(int(d.max()) for d in diffs)
    share = float(np.mean([(d > 0).mean() for d in diffs]))
    assert len(batched) == len(one) == args.frames
    assert max_diff <= 1 and share < 0.005, f"batched images differ from one-by-one: max {max_diff}, share {share:.4%}"

    print(f"tiny SD, {args.frames} frames, {args.size}x{args.size}, {args.steps} steps, best of {args.repeats}")
    print("| run | seconds | ratio to one by one |")
    print("|---|---:|---:|")
    print(f"| one by one (batch_size 1) | {one_s:.2f} | 1.000 |")
    print(f"| batched (batch_size {args.batch}) | {batch_s:.2f} | {batch_s / one_s:.3f} |")
    print(f"same images: max difference {max_diff} level(s), {share:.4%} of values differ (float rounding)")
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "diffusion.json").write_text(json.dumps({
        "frames": args.frames, "size": args.size, "steps": args.steps, "batch_size": args.batch,
        "seconds": {"one_by_one": one_s, "batched": batch_s}, "ratio": batch_s / one_s,
        "max_pixel_difference": max_diff, "share_of_values_differing": share}, indent=2))


if __name__ == "__main__":
    main()
