"""Text-only shortcuts at scale: can the QA be answered without looking?

Writes movies with the offline story and QA writers at a given shape (default: the
paper's 11 substories x 11 tinystories x 11 frames), puts their QA through the
quality gates as ``qa_pairs`` does (the packaged MiniLM for near-duplicates), and
runs every text-only probe of ``eval_scores`` on what ships: the frequency, length,
conversation and trained (cross-validated by movie) probes, and the MiniLM blind
answerer. Prints each probe's accuracy overall and per qtype next to chance (the
mean of 1/options) and the targets: every probe at most chance + 0.05 overall and
chance + 0.10 in every qtype with at least ``--min-questions`` questions.

Keyframes are not drawn: QA never reads them. Themes are the repository's, numbered
beyond the first round so every movie is new.

    python bench/bench_shortcuts.py [--movies 100] [--shape 11 11 11] [--out bench/results/shortcuts.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dreamframe_assets.core.params import EvalScoresParams, load_params, load_themes  # noqa: E402
from dreamframe_assets.evaluate import probes  # noqa: E402
from dreamframe_assets.evaluate.blind import BlindAnswerer  # noqa: E402
from dreamframe_assets.evaluate.metrics import accuracy  # noqa: E402
from dreamframe_assets.models.embed import TextEmbedder  # noqa: E402
from dreamframe_assets.pipeline.steps import _qa_gate_params  # noqa: E402
from dreamframe_assets.qa.gates import apply_gates  # noqa: E402
from dreamframe_assets.qa.offline import OfflineQAWriter  # noqa: E402
from dreamframe_assets.story.offline import OfflineStoryWriter  # noqa: E402


def build(movies: int, shape: tuple[int, int, int], cache: Path) -> list:
    params = load_params(ROOT)
    p = params.qa_pairs
    themes = load_themes(ROOT, params.movie_plots)
    embedder = TextEmbedder(p.embedder, cache)
    qas = []
    for i in range(movies):
        theme = themes[i % len(themes)] + ("" if i < len(themes) else f", part {i // len(themes) + 1}")
        plot = OfflineStoryWriter().write(theme, f"movie-{i:04d}", 0, *shape)
        written = OfflineQAWriter().write(plot, p.grounded_per_frame, p.max_qtype_share, p.seed)
        kept, _, _ = apply_gates(plot, list(written.qas), len(plot.frames), embedder, **_qa_gate_params(params))
        qas += kept
    return qas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movies", type=int, default=100)
    ap.add_argument("--shape", type=int, nargs=3, default=(11, 11, 11), metavar=("L", "M", "N"))
    ap.add_argument("--min-questions", type=int, default=50)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/shortcuts.json")
    args = ap.parse_args()

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        qas = build(args.movies, tuple(args.shape), Path(tmp))
        t1 = time.perf_counter()
        picks = probes.run_probes(qas)
        blind = BlindAnswerer(EvalScoresParams(), Path(tmp), Path(tmp))
        by_movie: dict[str, list] = {}
        for qa in qas:
            by_movie.setdefault(qa.movie_id, []).append(qa)
        ordered = [qa for mine in by_movie.values() for qa in mine]
        blind_picks = dict(zip((qa.qa_id for qa in ordered),
                               (p for mine in by_movie.values() for p in blind.answer(None, mine))))
        picks["blind"] = [blind_picks[qa.qa_id] for qa in qas]
    t2 = time.perf_counter()

    chance = probes.chance(qas)
    counts = {q: sum(qa.qtype == q for qa in qas) for q in chance["by_qtype"]}
    report: dict = {"movies": args.movies, "shape": list(args.shape), "qa_pairs": len(qas), "chance": chance,
                    "counts": counts, "probes": {}, "seconds": {"build": round(t1 - t0, 1), "probes": round(t2 - t1, 1)}}
    print(f"{args.movies} movies at {'x'.join(map(str, args.shape))}: {len(qas)} QA shipped "
          f"(build {t1 - t0:.0f} s, probes {t2 - t1:.0f} s); chance {chance['overall']:.3f}")
    print(f"{'probe':14s} {'overall':>8s} {'gap':>7s}  worst qtype (n >= {args.min_questions})   target")
    for name, mine in picks.items():
        acc = accuracy(qas, mine)
        gaps = {q: round(a - chance["by_qtype"][q], 4) for q, a in acc["by_qtype"].items() if counts[q] >= args.min_questions}
        worst = max(gaps, key=gaps.get) if gaps else None
        gap = round(acc["overall"] - chance["overall"], 4)
        ok = gap <= 0.05 and all(g <= 0.10 for g in gaps.values())
        report["probes"][name] = {**acc, "gap": gap, "qtype_gaps": gaps, "meets_target": ok}
        shown = f"{worst} {acc['by_qtype'][worst]:.3f} (+{gaps[worst]:.3f})" if worst else "-"
        print(f"{name:14s} {acc['overall']:8.3f} {gap:+7.3f}  {shown:28s} {'met' if ok else 'NOT MET'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
