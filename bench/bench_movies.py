"""Per-movie stage benchmark: LLM concurrency, worker processes, and memory per stage.

Three measurements, each side by side in one run on fresh project folders (fresh
``.dreamframe`` caches, ``$DREAMFRAME_CACHE`` unset), through ``pipeline.steps``
directly (no Dagster, no DVC):

1. LLM writers. movie_plots and qa_pairs with ``writer: llm`` (client openai) against
   a chat-completions server started here on 127.0.0.1 that answers every request
   after ``--latency`` seconds with a valid answer for it (story levels 1-3, QA).
   The same movies are built with ``llm.concurrency: 1`` and ``--concurrency``
   (``executor.workers: 1``, so only the request threads differ). Per stage: wall
   time, requests, most requests the server had in flight, the speed-up, and the
   ideal speed-up: min(concurrency, t1 / bound), where bound = latency x
   max(levels, ceil(requests / concurrency)) is the least time the server needs
   (levels: story levels 1 -> 2 -> 3 run one after the other, QA is one level).
   Target: speed-up >= 0.8 of ideal.
2. Offline pipeline (the default backends, tiny sizes) with ``executor.workers: 1``
   and ``2``: wall time per stage (the four per-movie stages and eval_scores); the
   2-worker time includes starting its process pool (spawn) and loading models in
   each worker; a third run with the pool already started shows that cost. Target:
   >= 1.7x on a 2-core machine. The data/ folders must be byte-identical.
3. Peak memory: every stage in its own fresh Python process (``executor.workers: 1``),
   which reports its own peak RSS (VmHWM: a child's ru_maxrss starts at its parent's
   peak on Linux), at two dataset sizes; a bounded-memory stage has a ratio close to 1.

    python bench/bench_movies.py [--llm-movies 24] [--latency 0.05] [--concurrency 16]
        [--pipeline-movies 8] [--rss-movies 12 48] [--parts llm pipeline rss] [--out bench/results/movies.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from dreamframe_assets.core.params import load_params
from dreamframe_assets.core.vocabulary import ACTION_VERBS, EXPRESSIONS
from dreamframe_assets.pipeline import executor
from dreamframe_assets.pipeline.steps import STEPS, raise_failures

REPO = Path(__file__).resolve().parents[1]
PER_MOVIE = ["movie_plots", "style_banks", "keyframes", "qa_pairs"]
ALL_STAGES = [*PER_MOVIE, "eval_scores"]

# Tiny sizes, as tests/conftest.tiny_params: 2 substories x 2 tinystories x 3 frames per movie.
TINY = {"substories": 2, "tinystories": 2, "frames": 3, "references": 2, "size": 64, "width": 96, "height": 64}

ROLES = ["lighthouse keeper", "baker", "young inventor", "detective", "pianist", "caravan guide", "librarian",
         "mountain climber", "street musician", "scientist", "fisherman", "gardener"]
EVENTS = ["finds a message in a bottle", "loses a precious letter", "meets a stranger at the market",
          "solves an old mystery", "prepares for a village festival", "is caught in a winter storm"]


def themes(n: int) -> list[str]:
    """``n`` distinct themes: every role with every event, then numbered rounds."""
    out = []
    for i in range(n):
        theme = f"A {ROLES[i % len(ROLES)]} {EVENTS[(i // len(ROLES)) % len(EVENTS)]}"
        rounds = i // (len(ROLES) * len(EVENTS))
        out.append(theme + (f" (round {rounds + 1})" if rounds else ""))
    return out


def make_project(root: Path, movies: int, workers: int, llm_url: str = "", concurrency: int = 1) -> Path:
    """A project folder: params.yaml (tiny sizes, generated themes), nothing built."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["executor"]["workers"] = workers
    plots = params["movie_plots"]
    plots.update(themes=themes(movies), themes_file="", stories_dir="",
                 substories=TINY["substories"], tinystories=TINY["tinystories"], frames=TINY["frames"])
    params["style_banks"].update(references=TINY["references"], size=TINY["size"])
    params["keyframes"].update(width=TINY["width"], height=TINY["height"])
    if llm_url:
        for group in (plots, params["qa_pairs"]):
            group["writer"] = "llm"
            group["llm"].update(client="openai", model="bench", base_url=llm_url, concurrency=concurrency)
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def run_stages(root: Path, stages: list[str]) -> dict[str, float]:
    """Wall seconds of each stage, run in this process in order; a failed movie stops the benchmark."""
    params = load_params(root)
    seconds = {}
    for stage in stages:
        t0 = time.perf_counter()
        result = STEPS[stage](root, params)
        seconds[stage] = time.perf_counter() - t0
        raise_failures(result)
    return seconds


def data_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "data").rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- a slow chat server with valid answers
LOCATIONS = ["the old lighthouse", "the harbor pier", "the pebble beach", "the attic bedroom", "the pine forest",
             "the cobbled street", "the corner shop", "the town hall", "the mountain pass", "the walled garden",
             "the village library", "the fish market"]
# Frames of a tinystory cycle through these (no two neighbours alike, no 'hold' or 'hug' and their extra rules).
FRAME_LOOKS = [("look", "worried"), ("walk", "determined"), ("talk", "smiling"), ("sit", "calm"),
               ("stand", "surprised"), ("squat", "frowning")]


def items_wanted(schema: dict, field: str) -> int:
    return schema["properties"][field]["minItems"]


def level1_answer(schema: dict, tag: str) -> dict:
    subs = items_wanted(schema, "substories")
    return {
        "title": f"The Bottle {tag}", "genre": "Drama",
        "overview": f"Mara keeps the old lighthouse. Bottle {tag} leads her and Tomas to the harbor.",
        "style_description": "moody, misty, muted", "style_keyword": "Dramatic",
        "locations": LOCATIONS,
        "characters": [
            {"name": "Mara", "appearance": "a tall woman with short grey hair", "clothing_colour": "red"},
            {"name": "Tomas", "appearance": "a young man with curly black hair", "clothing_colour": "blue"},
        ],
        "substories": [{"title": f"Part {i + 1}", "scene": LOCATIONS[i % len(LOCATIONS)],
                        "content": f"Mara and Tomas face trouble number {i + 1}.",
                        "cause": f"trouble number {i + 1} began", "outcome": f"trouble number {i + 1} ended"}
                       for i in range(subs)],
        "qa": [{"substory": i + 1, "qtype": "why", "question": f'Why does "Part {i + 1}" begin?',
                "answer": f"Because trouble number {i + 1} began.", "answer_from": "cause"} for i in range(subs)],
    }


def level2_answer(schema: dict, tag: str) -> dict:
    tinies = items_wanted(schema, "tinystories")
    return {
        "tinystories": [{"title": f"Scene {j + 1}", "scene": LOCATIONS[(j + 2) % len(LOCATIONS)],
                         "content": f"Mara and Tomas follow clue {tag}, step {j + 1}."} for j in range(tinies)],
        "qa": {"tinystory": 1, "qtype": "where", "question": 'Where is "Scene 1"?',
               "answer": f"In {LOCATIONS[2]}.", "answer_from": "tinystory scene"},
    }


def level3_answer(schema: dict) -> dict:
    frames = items_wanted(schema, "frames")
    looks = [FRAME_LOOKS[k % len(FRAME_LOOKS)] for k in range(frames)]
    return {
        "frames": [{"characters": ["Mara"], "action": action, "expression": face, "held_object": None,
                    "prompt": f"Mara is {ACTION_VERBS[action]}, with a {face} expression."} for action, face in looks],
        "dialogue": [{"after_frame": 1, "speaker": "Mara", "text": "Something is out there."}],
        "qa": [{"qtype": "how", "question": "How does Mara feel at first?", "answer": f"She is {looks[0][1]}.",
                "answer_from": "frame expression", "evidence_frames": [1]}],
    }


def qa_answer(content: str) -> dict:
    """One question per tinystory: the expression of its first keyframe, read off the prompt's frame list."""
    number, face = re.search(r"- keyframe (\d+): .*? with an? (\w+) expression", content).groups()
    wrong = [e for e in EXPRESSIONS if e != face and face not in e][:3]
    return {"qas": [{"qtype": "how", "question": f"How does Mara look in keyframe {number}?",
                     "answer_from": "frame expression", "options": [f"She looks {e}." for e in [face, *wrong]],
                     "correct": 1, "evidence_frames": [int(number)]}]}


def answer_for(body: dict) -> str:
    """A valid answer for a writer's request, told apart by its JSON schema's name. Levels 1 and 2
    carry a tag of their request, so no two movies send the same later request (the response
    cache would answer it)."""
    schema = body["response_format"]["json_schema"]
    name, spec = schema["name"], schema["schema"]
    content = body["messages"][-1]["content"]
    tag = hashlib.sha256(content.encode()).hexdigest()[:6]
    if name == "level1":
        return json.dumps(level1_answer(spec, tag))
    if name == "level2":
        return json.dumps(level2_answer(spec, tag))
    if name == "level3":
        return json.dumps(level3_answer(spec))
    return json.dumps(qa_answer(content))


class SlowChatServer:
    """Chat completions on 127.0.0.1: each answer after ``latency`` seconds; counts requests in flight."""

    def __init__(self, latency: float):
        self.latency = latency
        self.lock = threading.Lock()
        self.requests = self.in_flight = self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a model server
            disable_nagle_algorithm = True  # else headers and body, written apart, wait on a delayed ACK

            def do_POST(self):  # noqa: N802 (http.server's name)
                with server.lock:
                    server.requests += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    time.sleep(server.latency)
                    text = answer_for(body)
                    data = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"role": "assistant", "content": text}}],
                                       "usage": {"prompt_tokens": 100, "completion_tokens": len(text) // 4}}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def take(self) -> tuple[int, int]:
        """(requests, most in flight) since the last call."""
        with self.lock:
            counts = (self.requests, self.max_in_flight)
            self.requests = self.max_in_flight = 0
        return counts

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def bench_llm(work: Path, movies: int, latency: float, concurrency: int) -> dict:
    server = SlowChatServer(latency)
    runs, hashes = {}, {}
    try:
        for c in (1, concurrency):
            root = make_project(work / f"llm-c{c}", movies, workers=1, llm_url=server.base_url, concurrency=c)
            params = load_params(root)
            run = {}
            for stage in PER_MOVIE:
                server.take()
                t0 = time.perf_counter()
                result = STEPS[stage](root, params)
                seconds = time.perf_counter() - t0
                raise_failures(result)
                requests, peak = server.take()
                quarantined = result.counts.get("quarantined_parts", 0) + result.counts.get("quarantined_qa", 0)
                assert quarantined == 0, f"{stage}: the stub's answers were quarantined: {result.extra}"
                run[stage] = {"seconds": seconds, "requests": requests, "max_in_flight": peak}
            runs[c] = run
            hashes[c] = data_hashes(root)
    finally:
        server.close()

    levels = {"movie_plots": 3, "qa_pairs": 1}  # requests that must wait for each other, per movie
    rows = {}
    for stage, depth in levels.items():
        one, many = runs[1][stage], runs[concurrency][stage]
        assert one["requests"] == many["requests"], f"{stage}: {one['requests']} vs {many['requests']} requests"
        bound = latency * max(depth, math.ceil(many["requests"] / concurrency))
        ideal = min(concurrency, one["seconds"] / bound)
        busy = max(0.0, one["seconds"] - one["requests"] * latency)  # time @1 not spent waiting on the server
        speedup = one["seconds"] / many["seconds"]
        rows[stage] = {"requests": one["requests"], "seconds_c1": one["seconds"], "seconds_cN": many["seconds"],
                       "max_in_flight_c1": one["max_in_flight"], "max_in_flight_cN": many["max_in_flight"],
                       "speedup": speedup, "ideal_speedup": ideal, "fraction_of_ideal": speedup / ideal,
                       "busy_c1": busy, "ideal_busy_serial": one["seconds"] / (busy + bound)}

    print(f"\n## 1. LLM writers: {movies} movies, {latency * 1000:.0f} ms per request, "
          f"concurrency 1 vs {concurrency} (executor.workers: 1)")
    print(f"| stage | requests | s @1 | s @{concurrency} | in flight @1 | in flight @{concurrency} | speed-up "
          f"| ideal | of ideal | s @1 not waiting | ideal if that stays serial |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for stage, r in rows.items():
        verdict = "ok" if r["fraction_of_ideal"] >= 0.8 else "BELOW 0.8"
        print(f"| {stage} | {r['requests']} | {r['seconds_c1']:.2f} | {r['seconds_cN']:.2f} | {r['max_in_flight_c1']} "
              f"| {r['max_in_flight_cN']} | {r['speedup']:.2f}x | {r['ideal_speedup']:.1f}x "
              f"| {r['fraction_of_ideal']:.2f} {verdict} | {r['busy_c1']:.2f} | {r['ideal_busy_serial']:.1f}x |")
    print("ideal = min(concurrency, s@1 / bound), bound = latency x max(levels, ceil(requests / concurrency)): the least "
          "time the server needs; target >= 0.8 of it.\n's @1 not waiting' = s@1 - requests x latency (client, "
          "validation, QA gates, tables); 'ideal if that stays serial' = s@1 / (that + bound).")
    print("offline stages in between (s @1 / s @N): " + ", ".join(
        f"{s} {runs[1][s]['seconds']:.2f} / {runs[concurrency][s]['seconds']:.2f}" for s in ("style_banks", "keyframes")))
    identical = hashes[1] == hashes[concurrency]
    print(f"data/ byte-identical at concurrency 1 and {concurrency}: {identical} ({len(hashes[1])} files)")
    assert identical, "data/ differs between concurrency 1 and " + str(concurrency)
    return {"movies": movies, "latency_s": latency, "concurrency": concurrency, "stages": rows, "runs": runs}


# ---------------------------------------------------------------- worker processes
def bench_pipeline(work: Path, movies: int) -> dict:
    executor.shutdown()  # no pool left from earlier parts: the 2-worker run starts its own
    seconds, hashes = {}, {}
    for name, workers in (("1 worker", 1), ("2 workers (pool start included)", 2), ("2 workers (pool warm)", 2)):
        root = make_project(work / f"pipeline-{len(seconds)}", movies, workers=workers)
        seconds[name] = run_stages(root, ALL_STAGES)
        hashes[name] = data_hashes(root)
    executor.shutdown()
    first = hashes["1 worker"]
    differ = sorted({k for h in hashes.values() for k in set(h) | set(first) if h.get(k) != first.get(k)})
    identical = not differ

    import torch  # loaded by the stages already; only to report its threads

    names = list(seconds)
    for n in names:
        seconds[n]["4 per-movie stages"] = sum(seconds[n][s] for s in PER_MOVIE)
        seconds[n]["total"] = sum(seconds[n][s] for s in ALL_STAGES)
    totals = {n: seconds[n]["total"] for n in names}
    print(f"\n## 2. Offline pipeline: {movies} movies (tiny sizes), executor.workers 1 vs 2, "
          f"{executor.machine_cores()} cores, torch threads per process {torch.get_num_threads()}")
    print("| stage | " + " | ".join(f"s, {n}" for n in names) + " | 1 / 2 (start included) | 1 / 2 (warm) |")
    print("|---|" + "---:|" * (len(names) + 2))
    for stage in [*ALL_STAGES, "4 per-movie stages", "total"]:
        row = {n: seconds[n][stage] for n in names}
        print(f"| {stage} | " + " | ".join(f"{row[n]:.2f}" for n in names)
              + f" | {row[names[0]] / row[names[1]]:.2f}x | {row[names[0]] / row[names[2]]:.2f}x |")
    ratio = totals[names[0]] / totals[names[1]]
    print(f"speed-up of 2 workers, pool start-up included: {ratio:.2f}x (target >= 1.7x); with a warm pool: "
          f"{totals[names[0]] / totals[names[2]]:.2f}x. Stages whose time is sentence embedding already use every core in one process (torch threads).")
    print(f"data/ byte-identical across the three runs: {identical} ({len(first)} files)")
    assert identical, f"data/ differs between worker counts: {differ[:20]}"
    return {"movies": movies, "seconds": seconds, "speedup_with_startup": ratio,
            "speedup_warm": totals[names[0]] / totals[names[2]], "identical": identical}


# ---------------------------------------------------------------- memory per stage
# ru_maxrss of a child started from this process is at least this process's own RSS (Linux
# carries the peak over exec), so the child reads its own peak: VmHWM of /proc/self/status.
CHILD = """
import json, resource, sys, time
from pathlib import Path
from dreamframe_assets.core.params import load_params
from dreamframe_assets.pipeline.steps import STEPS, raise_failures
root, stage = Path(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
if stage != "imports":
    raise_failures(STEPS[stage](root, load_params(root)))
seconds = time.perf_counter() - t0
try:
    status = open("/proc/self/status").read()
    kib = int(status.split("VmHWM:")[1].split()[0])
except (OSError, IndexError):  # not Linux
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rss_mib": kib / 1024}))
"""


def stage_in_child(root: Path, stage: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DREAMFRAME_CACHE", "DREAMFRAME_ROOT")}
    done = subprocess.run([sys.executable, "-c", CHILD, str(root), stage], env=env, cwd=root,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{stage} in a subprocess failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_rss(work: Path, sizes: list[int]) -> dict:
    peaks: dict[int, dict[str, dict]] = {}
    for n in sizes:
        root = make_project(work / f"rss-{n}", n, workers=1)
        peaks[n] = {stage: stage_in_child(root, stage) for stage in ["imports", *ALL_STAGES]}
    small, large = sizes[0], sizes[-1]
    print("\n## 3. Peak RSS per stage, each in a fresh process (executor.workers: 1, tiny sizes)")
    print(f"| stage | MiB @{small} | MiB @{large} | ratio | s @{small} | s @{large} |")
    print("|---|---:|---:|---:|---:|---:|")
    for stage in peaks[small]:
        a, b = peaks[small][stage], peaks[large][stage]
        label = "python + imports only" if stage == "imports" else stage
        print(f"| {label} | {a['rss_mib']:.0f} | {b['rss_mib']:.0f} | {b['rss_mib'] / a['rss_mib']:.2f} "
              f"| {a['seconds']:.1f} | {b['seconds']:.1f} |")
    print(f"ratio = peak @{large} / peak @{small} movies; close to 1 means memory does not grow with the dataset. "
          "Seconds include the stage's imports in its fresh process.")
    return {"sizes": sizes, "peaks": peaks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llm-movies", type=int, default=24)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds the stub server takes per request")
    ap.add_argument("--concurrency", type=int, default=16, help="llm.concurrency compared with 1")
    ap.add_argument("--pipeline-movies", type=int, default=8)
    ap.add_argument("--rss-movies", type=int, nargs=2, default=[12, 48], metavar=("SMALL", "LARGE"))
    ap.add_argument("--parts", nargs="+", choices=["llm", "pipeline", "rss"], default=["llm", "pipeline", "rss"])
    ap.add_argument("--out", type=Path, default=None, help="also write the numbers here as JSON")
    args = ap.parse_args()
    os.environ.pop("DREAMFRAME_CACHE", None)  # every project keeps its own fresh cache
    os.environ.pop("DREAMFRAME_ROOT", None)

    work = Path(tempfile.mkdtemp(prefix="dreamframe-bench-movies-"))
    results = {}
    try:
        t0 = time.perf_counter()
        run_stages(make_project(work / "warm-up", 2, workers=1), ALL_STAGES)  # imports and first loads, untimed
        print(f"warm-up (imports, first model loads, 2 movies): {time.perf_counter() - t0:.1f} s")
        if "llm" in args.parts:
            results["llm"] = bench_llm(work, args.llm_movies, args.latency, args.concurrency)
        if "pipeline" in args.parts:
            results["pipeline"] = bench_pipeline(work, args.pipeline_movies)
        if "rss" in args.parts:
            results["rss"] = bench_rss(work, args.rss_movies)
    finally:
        executor.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
