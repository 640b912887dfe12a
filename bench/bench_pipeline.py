"""Pipeline benchmark: full build, no-op re-run, one-theme change, as ratios to the full build.

Runs the real commands (`dvc repro`, `dreamframe materialize`) on a copy of this
project in a temporary git repo, with an empty item cache, side by side in one
run, so the ratios hold on a shared, noisy machine. Peak memory is the largest
resident set of any stage process.

    python bench/bench_pipeline.py [--themes-from params.yaml]
"""

from __future__ import annotations

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


def sh(root: Path, *cmd: str) -> float:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DAGSTER_HOME": str(root / ".dagster"),
           "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    env.pop("DREAMFRAME_ROOT", None)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="dreamframe-bench-"))
    try:
        shutil.copytree(REPO / "stories", root / "stories")
        for name in ["dvc.yaml", "params.yaml", "themes.txt", "retries.yaml", "workspace.yaml", ".gitignore"]:
            shutil.copy(REPO / name, root / name)
        shutil.copytree(REPO / "dreamframe_assets", root / "dreamframe_assets", ignore=shutil.ignore_patterns("__pycache__"))
        sh(root, "git", "init", "-q")
        sh(root, str(BIN / "dvc"), "init", "-q")
        sh(root, "git", "add", "-A")
        sh(root, "git", "commit", "-qm", "bench")
        dvc = str(BIN / "dvc")

        full = sh(root, dvc, "repro")
        noop = sh(root, dvc, "repro")
        dagster_noop = sh(root, str(BIN / "dreamframe"), "materialize")
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["movie_plots"]["themes"][0] = "A retired sailor teaches his granddaughter to fish"
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        one_theme = sh(root, dvc, "repro")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        metrics = json.loads((root / "data/eval_scores/metrics.json").read_text())
    finally:
        shutil.rmtree(root, ignore_errors=True)

    counts = metrics["counts"]
    rows = [
        ("full build (`dvc repro`, empty cache)", full, 1.0),
        ("no-op re-run (`dvc repro`)", noop, noop / full),
        ("no-op materialize all (`dreamframe materialize`)", dagster_noop, dagster_noop / full),
        ("one theme changed (`dvc repro`)", one_theme, one_theme / full),
    ]
    print(f"dataset: {counts['movies']} movies, {counts['keyframes']} keyframes, {counts['qa_pairs']} QA pairs")
    print("| run | seconds | ratio to full build |")
    print("|---|---:|---:|")
    for name, seconds, ratio in rows:
        print(f"| {name} | {seconds:.1f} | {ratio:.3f} |")
    print(f"peak memory of a stage process: {peak_mb:.0f} MB")
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(
        {"counts": counts, "seconds": {n: s for n, s, _ in rows}, "ratios": {n: r for n, _, r in rows},
         "peak_mb": peak_mb}, indent=2))


if __name__ == "__main__":
    main()
