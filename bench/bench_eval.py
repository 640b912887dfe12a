"""Evaluation benchmark: embedding cache vs naive embedding, and evaluation time per 1,000 QA.

Every question, option and frame description is embedded: naively (every text,
duplicates included, no cache; the model is already loaded, so this is pure
embedding time), then through ``TextEmbedder`` into an empty sqlite cache (cold:
unique texts only) and again from a new instance (warm: nothing is embedded, the
model is never loaded). Then the text-embedding evaluation (blind answerer, text
evidence retrieval, near-duplicates, distinct-2, qtype entropy) runs on the warm
cache, timed per 1,000 QA pairs. Reads the built dataset under ``--root``.

    python bench/bench_eval.py [--root .] [--out bench/results/eval.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from dreamframe_assets.core.params import EvalScoresParams
from dreamframe_assets.core.store import read_plots
from dreamframe_assets.evaluate.blind import BlindAnswerer
from dreamframe_assets.evaluate.diversity import distinct_n, normalized_entropy
from dreamframe_assets.evaluate.metrics import accuracy
from dreamframe_assets.evaluate.retrieval import frame_text, mean_ap, text_aps
from dreamframe_assets.models import device, embed
from dreamframe_assets.models.embed import TextEmbedder
from dreamframe_assets.pipeline.steps import read_qa
from dreamframe_assets.qa.gates import similar_pairs

REPO = Path(__file__).resolve().parents[1]


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=REPO)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "eval.json")
    args = ap.parse_args()

    plots = read_plots(args.root)
    qas = read_qa(args.root)
    texts = [t for qa in qas for t in (qa.question, *qa.options)]
    texts += [frame_text(p, f) for p in plots.values() for f in p.frames]
    params = EvalScoresParams()
    unique = len(set(texts))

    model, load_s = timed(embed.load_model, params.embedder.model, params.embedder.device)
    _, naive_s = timed(lambda: model.encode(texts, batch_size=params.embedder.batch_size, show_progress_bar=False))
    key = ("sentence-embedding", params.embedder.model, params.embedder.device)
    device.load_once(key, lambda: model)  # the cold pass uses it: no second load

    cache = Path(tempfile.mkdtemp(prefix="dreamframe-embed-bench-"))
    try:
        _, cold_s = timed(TextEmbedder(params.embedder, cache).encode, texts)
        device._LOADED.clear()  # the warm pass must not need the model
        warm = TextEmbedder(params.embedder, cache)
        _, warm_s = timed(warm.encode, texts)
        assert warm.stats()["computed"] == 0 and key not in device._LOADED

        # evaluation on the warm cache
        t0 = time.perf_counter()
        blind = BlindAnswerer(params, cache_dir=cache, llm_cache_dir=cache / "llm")
        by_movie: dict[str, list] = {}
        for qa in qas:
            by_movie.setdefault(qa.movie_id, []).append(qa)
        ordered = [qa for mid in by_movie for qa in by_movie[mid]]
        picks = [p for mid, mqs in by_movie.items() for p in blind.answer(plots[mid], mqs)]
        blind_acc = accuracy(ordered, picks)
        text_mean_ap = mean_ap([ap for mid, mqs in by_movie.items() for ap in text_aps(plots[mid], mqs, blind.embedder)])
        questions = blind.embedder.encode([qa.question for qa in qas])
        dup_rate = len({j for _, j in similar_pairs(questions, 0.95)}) / len(qas)
        distinct2 = distinct_n([qa.question for qa in qas], 2)
        qtype_entropy = normalized_entropy(qa.qtype for qa in qas)
        eval_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    per_1000 = eval_s / len(qas) * 1000
    print(f"dataset: {len(plots)} movies, {len(qas)} QA pairs; {len(texts)} texts, {unique} unique "
          f"({Counter(texts).most_common(1)[0][1]}x the most repeated)")
    print(f"model load: {load_s:.1f} s")
    print("| embedding all questions + options + frame texts | seconds | ratio to naive |")
    print("|---|---:|---:|")
    for name, s in [("naive (every text, no cache)", naive_s), ("TextEmbedder, cold cache (unique texts)", cold_s),
                    ("TextEmbedder, warm cache", warm_s)]:
        print(f"| {name} | {s:.2f} | {s / naive_s:.4f} |")
    print(f"naive / warm: {naive_s / warm_s:.0f}x")
    print(f"evaluation (blind, text mAP, near-duplicates, distinct-2, entropy), warm cache: "
          f"{eval_s:.2f} s, {per_1000:.2f} s per 1,000 QA")
    print(f"blind accuracy {blind_acc['overall']} (random 0.25); by qtype {blind_acc['by_qtype']}")
    print(f"text evidence mAP {text_mean_ap:.4f}; question near-duplicate rate @0.95 {dup_rate:.4f}; "
          f"distinct-2 {distinct2:.4f}; qtype normalized entropy {qtype_entropy:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "counts": {"movies": len(plots), "qa_pairs": len(qas), "texts": len(texts), "unique_texts": unique},
        "seconds": {"model_load": load_s, "naive": naive_s, "cold_cache": cold_s, "warm_cache": warm_s,
                    "evaluation_warm": eval_s, "evaluation_per_1000_qa": per_1000},
        "naive_over_warm": naive_s / warm_s,
        "metrics": {"blind_accuracy": blind_acc, "text_map": text_mean_ap, "question_duplicate_rate_0.95": dup_rate,
                    "distinct_2": distinct2, "qtype_normalized_entropy": qtype_entropy},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
