"""Paper scale: 1,000 movies and over 100,000 QA pairs with the embedded offline backends.

Builds the paper-scale preset (README, "Paper scale") in a temporary git repo with
empty caches, stage by stage (`dvc repro -s`), then times in the same run a no-op
`dvc repro`, `dvc status`, and a `dvc repro` after one theme of the 1,000 changed,
each as a ratio to the full build (this machine is shared and noisy: only ratios
measured side by side mean much). Peak memory is the largest resident set of any
process of the build (stage processes and their workers).

    python bench/bench_scale.py [--movies 1000] [--shape 11x11x1] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = ("movie_plots", "style_banks", "keyframes", "qa_pairs", "eval_scores")


def sh(root: Path, *cmd: str) -> float:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DAGSTER_HOME": str(root / ".dagster"),
           "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    env.pop("DREAMFRAME_ROOT", None)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def preset(root: Path, shape: tuple[int, int, int], size: int) -> None:
    """The README's paper-scale settings, as `dvc exp run -S` would set them."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["movie_plots"].update(themes=[], themes_file="themes_paper.txt",
                                 substories=shape[0], tinystories=shape[1], frames=shape[2])
    params["keyframes"].update(width=size, height=size)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--movies", type=int, default=1000)
    ap.add_argument("--shape", default="11x11x1", help="substories x tinystories x frames")
    ap.add_argument("--size", type=int, default=128, help="keyframe side, px")
    ap.add_argument("--keep", action="store_true", help="keep the project folder (printed)")
    args = ap.parse_args()
    shape = tuple(int(x) for x in args.shape.split("x"))

    root = Path(tempfile.mkdtemp(prefix="dreamframe-scale-"))
    try:
        shutil.copytree(REPO / "stories", root / "stories")
        for name in ["dvc.yaml", "params.yaml", "retries.yaml", "workspace.yaml", ".gitignore", ".dvcignore"]:
            if (REPO / name).exists():
                shutil.copy(REPO / name, root / name)
        shutil.copytree(REPO / "dreamframe_assets", root / "dreamframe_assets", ignore=shutil.ignore_patterns("__pycache__"))
        dreamframe, dvc = str(BIN / "dreamframe"), str(BIN / "dvc")
        sh(root, dreamframe, "themes", "--count", str(args.movies), "--out", "themes_paper.txt")
        preset(root, shape, args.size)
        sh(root, "git", "init", "-q")
        sh(root, dvc, "init", "-q")
        sh(root, "git", "add", "-A")
        sh(root, "git", "commit", "-qm", "paper scale")

        seconds, peaks = {}, {}
        for stage in STAGES:  # the largest process so far after each stage: which stage set the peak
            seconds[stage] = sh(root, dvc, "repro", "-s", stage)
            peaks[stage] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"{stage}: {seconds[stage]:.1f} s, largest process so far {peaks[stage]:.0f} MB", flush=True)
        full = sum(seconds.values())
        peak_mb = max(peaks.values())
        noop = sh(root, dvc, "repro")
        status = sh(root, dvc, "status")
        themes = (root / "themes_paper.txt").read_text().split("\n")
        first = next(i for i, line in enumerate(themes) if line and not line.startswith("#"))
        themes[first] = "A retired sailor teaches his granddaughter to fish on a frozen lake before dawn"
        (root / "themes_paper.txt").write_text("\n".join(themes))
        one_theme = sh(root, dvc, "repro")
        metrics = json.loads((root / "data/eval_scores/metrics.json").read_text())
        disk = {stage: sum(f.stat().st_size for f in (root / "data" / stage).rglob("*") if f.is_file()) / 2**30
                for stage in STAGES}
    finally:
        if args.keep:
            print(f"project: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    counts = metrics["counts"]
    qa = counts["qa_pairs"]
    rows = [(f"{stage} (`dvc repro -s {stage}`)", seconds[stage], seconds[stage] / full) for stage in STAGES]
    rows += [("full build, empty caches", full, 1.0), ("no-op `dvc repro`", noop, noop / full),
             ("`dvc status`", status, status / full), ("one theme changed (`dvc repro`)", one_theme, one_theme / full)]
    print(f"dataset: {counts['movies']} movies ({args.shape}, {args.size} px), {counts['keyframes']} keyframes, "
          f"{qa} QA pairs")
    print("| run | seconds | ratio to full build |")
    print("|---|---:|---:|")
    for name, secs, ratio in rows:
        print(f"| {name} | {secs:.1f} | {ratio:.4f} |")
    per_1000 = seconds["eval_scores"] / qa * 1000 if qa else 0.0
    print(f"eval_scores: {per_1000:.1f} s per 1,000 QA pairs (the whole stage)")
    print(f"peak memory of a build process: {peak_mb:.0f} MB")
    diversity = metrics.get("diversity", {})
    print(f"near-duplicate rate: within movies {diversity.get('near_duplicate_rate')}, "
          f"across movies {diversity.get('near_duplicate_rate_across_movies')}")
    print(f"language bias: best text-only probe {metrics.get('language_bias_probe')} at "
          f"{metrics.get('language_bias_gap')} above chance (noise {metrics.get('language_bias_noise')}); "
          f"every blocking check passed (a failing one stops dvc repro)")
    print("data on disk (GiB): " + ", ".join(f"{s} {g:.2f}" for s, g in disk.items()))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"scale_{counts['movies']}.json").write_text(json.dumps(
        {"counts": counts, "shape": args.shape, "size": args.size, "seconds": {n: s for n, s, _ in rows},
         "ratios": {n: r for n, _, r in rows}, "eval_seconds_per_1000_qa": per_1000, "peak_mb": peak_mb,
         "peak_mb_after_stage": peaks,
         "diversity": diversity, "disk_gib": disk}, indent=2))


if __name__ == "__main__":
    main()
