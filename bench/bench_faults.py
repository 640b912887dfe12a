"""Fault-injection run: ``kill -9`` of ``dreamframe run`` at random points of every asset.

A project of tiny movies is built once without faults (the reference). Then, for each
seed, a fresh copy of the project is built with ``--rounds`` kills aimed at the assets
in turn (after a random number of the asset's movies are on disk, plus a random delay),
each followed by the next run, then a run to the end. Printed: faults injected (kills
that landed), runs recovered (runs after a kill that went on), items lost (movies on disk
at a kill that were computed again: must be 0), and datasets that differ byte for byte
from the reference (must be 0).

    python bench/bench_faults.py [--seeds 4] [--rounds 10] [--movies 4] [--out bench/results/faults.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import tiny_params  # noqa: E402
from tests.faults import inject, start, tree  # noqa: E402

THEMES = [
    "A lighthouse keeper finds a message in a bottle during a winter storm",
    "Two rival bakers must cook together for a village festival",
    "A haunted manor hides the truth about a missing heir",
    "A desert caravan guide protects travellers from a sandstorm",
    "A shy librarian discovers a secret map inside an old book",
    "Mountain climbers are trapped by an avalanche near the summit",
]


def project(root: Path, movies: int) -> Path:
    root.mkdir(parents=True)
    params = tiny_params(themes=THEMES[:movies])
    params["movie_plots"]["themes_file"] = ""
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--movies", type=int, default=4, choices=range(1, len(THEMES) + 1))
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/faults.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        reference = project(Path(tmp) / "reference", args.movies)
        t0 = time.perf_counter()
        proc = start(reference)
        out, err = proc.communicate()
        clean = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"the reference build failed:\n{err[-3000:]}")
        expected = tree(reference)
        totals = {"faults_injected": 0, "runs_recovered": 0, "items_lost": 0, "datasets_differing": 0,
                  "landed_in": {}}
        for seed in range(args.seeds):
            root = project(Path(tmp) / f"faults-{seed}", args.movies)
            shutil.copytree(reference / ".dreamframe/embeddings", root / ".dreamframe/embeddings")
            t0 = time.perf_counter()
            report = inject(root, rounds=args.rounds, seed=seed, items=args.movies)
            differs = tree(root) != expected
            totals["faults_injected"] += report.faults
            totals["runs_recovered"] += report.recovered
            totals["items_lost"] += len(report.lost)
            totals["datasets_differing"] += differs
            for line in report.log:
                if "landed in " in line:
                    stage = line.rsplit("landed in ", 1)[1]
                    totals["landed_in"][stage] = totals["landed_in"].get(stage, 0) + 1
            print(f"seed {seed}: {report.faults} kill(s) landed, {report.recovered} run(s) recovered, "
                  f"{len(report.lost)} item(s) lost, dataset {'DIFFERS' if differs else 'identical'}; "
                  f"{time.perf_counter() - t0:.0f}s (a clean build: {clean:.0f}s)")
            for line in report.lost:
                print("  lost:", line)
    print(json.dumps(totals))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **totals}, indent=2) + "\n")


if __name__ == "__main__":
    main()
