"""Movies as the unit of work: partitions, executors, retries, staleness and memory."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from dreamframe_assets.core.ids import movie_id_for
from dreamframe_assets.core.params import load_params
from dreamframe_assets.pipeline import executor
from dreamframe_assets.pipeline.code import STAGES, closure, code_files, module_name
from dreamframe_assets.pipeline.movies import read_retries, read_status
from dreamframe_assets.pipeline.steps import STEPS, run_stage
from dreamframe_assets.runs import partition_ranges

from ..conftest import REPO, TINY_THEMES, copy_built, materialize, metadata, warm_copy, write_project

PER_MOVIE = [s for s in STAGES if s != "eval_scores"]


def set_params(root: Path, **changes) -> None:
    """``set_params(root, movie_plots={"themes": [...]})``: update groups of params.yaml."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    for group, values in changes.items():
        params[group].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def data_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "data").rglob("*")) if p.is_file()}


def build_plain(root: Path) -> None:
    """Every stage through the plain step functions (no Dagster), as a benchmark would."""
    params = load_params(root)
    for stage in STAGES:
        result = STEPS[stage](root, params)
        assert not getattr(result, "failed", []), result.failed


# ---------------------------------------------------------------- small pieces
def test_partition_ranges_cover_the_chosen_movies_in_the_fewest_runs():
    order = ["a", "b", "c", "d", "e"]
    assert partition_ranges(order, order) == [("a", "e")]
    assert partition_ranges(order, ["b", "d", "c"]) == [("b", "d")]
    assert partition_ranges(order, ["a", "c", "e"]) == [("a", "a"), ("c", "c"), ("e", "e")]
    assert partition_ranges(order, []) == []


def test_scattered_stale_movies_get_a_few_runs_merged_across_the_smallest_gaps():
    from dreamframe_assets.runs import merge_ranges

    order = list("abcdefghijkl")
    ranges = partition_ranges(order, ["a", "c", "d", "h", "l"])  # a | c-d | h | l
    assert merge_ranges(order, ranges, 4) == ranges
    assert merge_ranges(order, ranges, 3) == [("a", "d"), ("h", "h"), ("l", "l")]  # gap a..c is the smallest
    assert merge_ranges(order, ranges, 1) == [("a", "l")]


def test_io_work_shares_one_limit_and_results_come_as_they_finish():
    import threading
    import time

    lock, now, most = threading.Lock(), [0], [0]

    def wait(i):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.05)
        with lock:
            now[0] -= 1
        return i * i

    params = load_params(REPO).executor
    got = dict(executor.run_all([(wait, (i,)) for i in range(12)], params, "io", io_limit=4))
    assert got == {i: i * i for i in range(12)} and most[0] == 4


def _pid_after(seconds: float) -> int:
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


def test_workers_auto_start_only_when_the_movies_left_would_take_longer_than_starting_them(monkeypatch):
    import os

    monkeypatch.setattr(executor, "machine_cores", lambda: 2)
    monkeypatch.setattr(executor, "_POOLS", {})
    params = load_params(REPO).executor.model_copy(update={"workers": "auto"})
    quick = dict(executor.run_all([(_pid_after, (0.0,)) for _ in range(12)], params, "cpu"))
    assert sorted(quick) == list(range(12)) and set(quick.values()) == {os.getpid()}  # a small stage: no pool
    assert executor._POOLS == {}

    monkeypatch.setattr(executor, "WORKER_START_SECONDS", 0.05)
    try:
        slow = dict(executor.run_all([(_pid_after, (0.1,)) for _ in range(12)], params, "cpu"))
        assert sorted(slow) == list(range(12))
        assert slow[0] == slow[1] == os.getpid()  # two here, to measure a movie (the first loads models)
        assert {slow[i] for i in range(2, 12)} - {os.getpid()}, "the rest went to the worker processes"
        assert "cpu" in executor._POOLS
        again = dict(executor.run_all([(_pid_after, (0.0,)) for _ in range(4)], params, "cpu"))
        assert os.getpid() not in again.values()  # a warm pool is used at once
    finally:
        executor.shutdown()


def test_a_call_that_raises_comes_back_as_its_error():
    params = load_params(REPO).executor.model_copy(update={"workers": 1})
    [(i, error)] = list(executor.run_all([(int, ("not a number",))], params, "cpu"))
    assert i == 0 and isinstance(error, ValueError)


# ---------------------------------------------------------------- partitions
@pytest.mark.integration
def test_movies_materialize_one_partition_at_a_time(warm_project):
    root = warm_project
    themes = TINY_THEMES[:2]
    set_params(root, movie_plots={"themes": themes})
    first, second = (movie_id_for(t) for t in themes)
    instance = dg.DagsterInstance.ephemeral()

    one = materialize(root, PER_MOVIE, instance=instance, movies=[first])
    assert one.success
    for stage in PER_MOVIE:
        assert {m.partition for m in one.asset_materializations_for_node(stage)} == {first}, stage
        assert instance.get_materialized_partitions(dg.AssetKey(stage)) == {first}, stage
        assert [p.stem for p in (root / "data" / stage / "movies").glob("*.json")] == [first], stage
        assert {m: (s["state"], s["attempt"]) for m, s in read_status(root, stage).items()} == {first: ("done", 0)}, stage
    assert pl.read_parquet(root / "data/qa_pairs/qa.parquet")["movie_id"].unique().to_list() == [first]

    two = materialize(root, PER_MOVIE, instance=instance, movies=[second])
    assert two.success
    assert metadata(two, "movie_plots")["redone"] == [second]  # the first movie was not touched
    for stage in PER_MOVIE:
        assert instance.get_materialized_partitions(dg.AssetKey(stage)) == {first, second}, stage
    assert set(pl.read_parquet(root / "data/qa_pairs/qa.parquet")["movie_id"]) == {first, second}

    # a removed theme takes its partition and its data with it
    set_params(root, movie_plots={"themes": themes[:1]})
    after = materialize(root, instance=instance)
    assert after.success
    assert instance.get_dynamic_partitions("movies") == [first]
    for stage in PER_MOVIE:
        assert not [p for p in (root / "data" / stage).rglob(f"{second}*")], stage
    assert json.loads((root / "data/eval_scores/metrics.json").read_text())["counts"]["movies"] == 1


# ---------------------------------------------------------------- executors
@pytest.mark.integration
@pytest.mark.parametrize("kind", ["local", "ray"])
def test_two_workers_or_ray_give_the_bytes_of_one_worker(built_dataset, tmp_path, kind):
    """The session build ran with one worker; the same project built afresh by two local
    worker processes, or as tasks on a local Ray cluster of 2 CPUs, is the same bytes."""
    root = warm_copy(built_dataset, tmp_path / kind)
    set_params(root, executor={"kind": kind, "workers": 2, "address": ""})
    try:
        build_plain(root)
    finally:
        executor.shutdown()
        if kind == "ray":
            import ray

            ray.shutdown()
    ours, reference = data_hashes(root), data_hashes(built_dataset)
    assert ours.keys() == reference.keys()
    assert [k for k in ours if ours[k] != reference[k]] == []


@pytest.mark.integration
def test_llm_movies_run_together_under_one_request_limit(project):
    """Movies are written in parallel: more requests in flight than one movie ever has, and
    never more than ``llm.concurrency`` across the run."""
    from ..models.test_llm import ChatServer
    from ..story.test_llm import canned

    themes = TINY_THEMES + ["A kite maker races the autumn wind", "A night ferry crosses a frozen lake"]
    with ChatServer(canned, delay=0.05) as server:
        llm = {"client": "openai", "base_url": server.base_url, "model": "tiny", "concurrency": 3}
        set_params(project, movie_plots={"themes": themes, "writer": "llm", "llm": llm})
        result = run_stage(project, load_params(project), "movie_plots")
    assert {m.state for m in result.movies.values()} == {"done"}
    assert server.max_in_flight == 3  # level 1 of one movie is a single request: movies overlapped


# ---------------------------------------------------------------- retry
@pytest.mark.integration
def test_retry_asks_the_model_again_and_keeps_the_first_answers(project, monkeypatch):
    from typer.testing import CliRunner

    from dreamframe_assets.cli import app

    from ..models.test_llm import ChatServer
    from ..story.test_llm import canned

    def handler(body, n):  # the first attempt at this theme's level 1 never parses
        if "broken" in json.dumps(body["messages"]) and body["seed"] == 0:
            return "Sorry, I cannot help with that."
        return canned(body, n)

    broken = "A broken clock tower stops time in a small town"
    monkeypatch.setenv("DAGSTER_HOME", str(project / ".dagster"))
    with ChatServer(handler) as server:
        llm = {"client": "openai", "base_url": server.base_url, "model": "tiny", "concurrency": 4}
        set_params(project, movie_plots={"themes": [TINY_THEMES[0], broken], "writer": "llm", "llm": llm})
        runner = CliRunner()
        built = runner.invoke(app, ["materialize", "--root", str(project)])
        assert built.exit_code == 0, built.output
        mid = movie_id_for(broken)
        assert read_status(project, "movie_plots")[mid]["state"] == "quarantined"
        assert read_status(project, "qa_pairs")[mid]["state"] == "skipped"
        answers = sorted((project / ".dreamframe/llm").rglob("*.json"))

        # a plain rerun replays the cached bad answer; a retry asks again
        again = runner.invoke(app, ["materialize", "movie_plots", "qa_pairs", "--root", str(project)])
        assert again.exit_code == 0 and read_status(project, "movie_plots")[mid]["state"] == "quarantined"
        # nothing changed: the quarantined and the skipped movie are not stale, and no run starts
        assert again.output.count("none stale (no run)") == 2, again.output
        again = runner.invoke(app, ["materialize", "movie_plots", "--all", "--root", str(project)])
        assert again.exit_code == 0 and read_status(project, "movie_plots")[mid]["state"] == "quarantined"
        retried = runner.invoke(app, ["retry", "--quarantined", "--root", str(project)])
        assert retried.exit_code == 0, retried.output
    assert {k: read_status(project, "movie_plots")[mid][k] for k in ("state", "attempt", "error")} == {
        "state": "done", "attempt": 1, "error": ""}
    assert read_retries(project) == {"movie_plots": {mid: 1}}  # an input from now on: a rebuild is the same data
    for stage in PER_MOVIE[1:]:
        assert read_status(project, stage)[mid]["state"] == "done", stage
    assert mid in set(pl.read_parquet(project / "data/qa_pairs/qa.parquet")["movie_id"])
    assert not (project / "data/movie_plots/quarantine" / f"{mid}.json").exists()
    assert set(answers) <= set((project / ".dreamframe/llm").rglob("*.json"))  # the first answers are kept


# ---------------------------------------------------------------- no stale item
@pytest.mark.integration
def test_every_module_a_stage_runs_is_in_its_code(warm_project, monkeypatch):
    """Record every import statement that runs while each stage builds its items; all of them
    must be in the code its item keys hash (``code_files``)."""
    import builtins

    real = builtins.__import__
    seen: set[str] = set()

    def recording(name, globals=None, locals=None, fromlist=(), level=0):
        package = (globals or {}).get("__package__") or ""
        base = package.rsplit(".", level - 1)[0] if level > 1 else package
        full = f"{base}.{name}".strip(".") if level else name
        if full.startswith("dreamframe_assets"):
            seen.add(full)
            seen.update(f"{full}.{f}" for f in fromlist or () if f != "*")
        return real(name, globals, locals, fromlist, level)

    root = warm_project
    params = load_params(root)
    for stage in STAGES:
        seen.clear()
        monkeypatch.setattr(builtins, "__import__", recording)
        try:
            STEPS[stage](root, params)
        finally:
            monkeypatch.setattr(builtins, "__import__", real)
        covered = {module_name(p) for p in code_files(stage) if p.suffix == ".py"}
        modules = {m for m in seen if (REPO / (m.replace(".", "/") + ".py")).exists()
                   or (REPO / m.replace(".", "/") / "__init__.py").exists()}
        assert modules - closure(covered) == set(), stage


@pytest.mark.integration
def test_an_edited_question_template_redoes_the_qa_and_nothing_else(built_dataset, tmp_path):
    """Edit a helper module (a question template) in a copy of the package and rebuild with it:
    the QA items are redone with the new text, every other stage's items are cache hits."""
    root = copy_built(built_dataset, tmp_path / "project")
    package = tmp_path / "code" / "dreamframe_assets"
    shutil.copytree(REPO / "dreamframe_assets", package, ignore=shutil.ignore_patterns("__pycache__"))
    template = package / "qa" / "offline.py"
    text = template.read_text()
    assert 'f"How many people are in {where}?"' in text
    template.write_text(text.replace('f"How many people are in {where}?"', 'f"How many people can be seen in {where}?"'))
    script = ("import json, sys; from pathlib import Path\n"
              "import dreamframe_assets; assert dreamframe_assets.__file__.startswith(sys.argv[2])\n"
              "from dreamframe_assets.core.params import load_params\n"
              "from dreamframe_assets.pipeline.steps import STEPS\n"
              "root = Path(sys.argv[1]); params = load_params(root)\n"
              "print(json.dumps({stage: step(root, params).misses for stage, step in STEPS.items()}))\n")
    env = {**os.environ, "PYTHONPATH": str(package.parent)}
    run = subprocess.run([sys.executable, "-c", script, str(root), str(package.parent)], env=env,
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    misses = json.loads(run.stdout.strip().splitlines()[-1])
    assert misses == {
        "movie_plots": 0, "style_banks": 0, "keyframes": 0, "qa_pairs": 3, "eval_scores": 3}
    questions = pl.read_parquet(root / "data/qa_pairs/qa.parquet")["question"]
    assert questions.str.starts_with("How many people can be seen in").any()
    assert not questions.str.starts_with("How many people are in").any()


# ---------------------------------------------------------------- memory
@pytest.mark.integration
def test_a_stage_peak_memory_does_not_grow_with_movies(built_dataset, tmp_path):
    """Keyframes, the heaviest stage, on 2 and on 8 movies: each movie's images are written
    and dropped as it finishes, so the peak is about one movie's, whatever their number."""
    themes = yaml.safe_load((REPO / "params.yaml").read_text())["movie_plots"]["themes"]
    peaks = {}
    for count in (2, 8):
        root = write_project(tmp_path / str(count))
        shutil.copytree(built_dataset / ".dreamframe" / "embeddings", root / ".dreamframe" / "embeddings")
        set_params(root, movie_plots={"themes": themes[:count], "themes_file": ""},
                   keyframes={"width": 256, "height": 256})
        params = load_params(root)
        for stage in ("movie_plots", "style_banks"):
            STEPS[stage](root, params)
        tracemalloc.start()
        try:
            run_stage(root, params, "keyframes")
            peaks[count] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(themes) >= 8
    assert peaks[8] < 1.5 * peaks[2], peaks


def test_the_sensor_adds_new_movies_and_deletes_removed_ones(project):
    from dreamframe_assets.assets.movies import MOVIES, movies_sensor
    from dreamframe_assets.resources import Workspace

    instance = dg.DagsterInstance.ephemeral()
    gone = "a-theme-no-longer-there-000000"
    instance.add_dynamic_partitions(MOVIES.name, [movie_id_for(TINY_THEMES[0]), gone])
    context = dg.build_sensor_context(instance=instance, resources={"workspace": Workspace(root=str(project))})
    result = movies_sensor(context)
    [add, delete] = result.dynamic_partitions_requests
    assert list(add.partition_keys) == [movie_id_for(t) for t in TINY_THEMES[1:]]
    assert list(delete.partition_keys) == [gone]


@pytest.mark.integration
def test_retry_failed_redoes_the_failed_movie_and_what_is_below_it(project, monkeypatch):
    from typer.testing import CliRunner

    from dreamframe_assets.cli import app
    from dreamframe_assets.pipeline import backends

    real = backends.RENDERERS["offline"]
    broken = movie_id_for(TINY_THEMES[2])

    class Flaky:  # the renderer fails on one movie until it is mended
        failing = True

        def __init__(self, params, root):
            self.inner = real(params, root)

        def identity(self):
            return self.inner.identity()

        def render(self, plot, *args):
            if Flaky.failing and plot.movie.movie_id == broken:
                raise RuntimeError("out of GPU memory")
            return self.inner.render(plot, *args)

    monkeypatch.setenv("DAGSTER_HOME", str(project / ".dagster"))
    monkeypatch.setitem(backends.RENDERERS, "offline", Flaky)
    runner = CliRunner()
    first = runner.invoke(app, ["materialize", "--root", str(project)])
    assert first.exit_code == 1 and "out of GPU memory" in first.output
    assert read_status(project, "keyframes")[broken]["state"] == "failed"
    status = runner.invoke(app, ["status", "--root", str(project)])
    assert "failed" in status.output and "out of GPU memory" in status.output
    Flaky.failing = False
    retried = runner.invoke(app, ["retry", "--failed", "--root", str(project)])
    assert retried.exit_code == 0, retried.output
    assert "keyframes: retrying 1 movie(s)" in retried.output
    for stage in ("keyframes", "qa_pairs"):
        assert read_status(project, stage)[broken]["state"] == "done", stage
    assert read_retries(project) == {"keyframes": {broken: 1}}
    assert json.loads((project / "data/eval_scores/metrics.json").read_text())["counts"]["movies"] == 3


def test_a_run_covers_the_stale_movies_only(built_dataset, tmp_path):
    """What ``dreamframe materialize`` (each DVC stage) runs: no movie whose item is cached, whose
    files are the ones its item made and whose version the instance holds; each of those
    reasons alone makes a movie stale, in that stage only. With none stale there is no run,
    and the tables are assembled again all the same."""
    from dreamframe_assets.core.cache import ItemCache
    from dreamframe_assets.pipeline.movies import movie_ids
    from dreamframe_assets.pipeline.steps import stale_movies
    from dreamframe_assets.runs import UpToDate, latest_versions, materialize_stages

    root = copy_built(built_dataset, tmp_path / "project")
    params = load_params(root)
    first, second, third = movie_ids(root, params)
    recorded = {stage: {m: e["version"] for m, e in read_status(root, stage).items()} for stage in PER_MOVIE}
    assert {stage: stale_movies(root, params, stage, recorded[stage]) for stage in PER_MOVIE} == {
        stage: [] for stage in PER_MOVIE}
    # the instance does not hold the movie's version
    assert stale_movies(root, params, "style_banks", {**recorded["style_banks"], first: "other"}) == [first]
    # a movie's file changed on disk (edited, damaged): that stage only
    shard = root / "data/keyframes/shards" / f"{second}.tar"
    shard.write_bytes(shard.read_bytes()[:-1] + b"x")
    assert {stage: stale_movies(root, params, stage, recorded[stage]) for stage in PER_MOVIE} == {
        "movie_plots": [], "style_banks": [], "keyframes": [second], "qa_pairs": []}
    # its cached item is gone
    key = read_status(root, "qa_pairs")[third]["key"]
    ItemCache(root, "qa_pairs")._path(key).unlink()
    assert stale_movies(root, params, "qa_pairs", recorded["qa_pairs"]) == [third]
    # an input changed: a stage param is in every movie's key
    set_params(root, style_banks={"seed": params.style_banks.seed + 1})
    assert stale_movies(root, load_params(root), "style_banks", recorded["style_banks"]) == [first, second, third]

    # through Dagster: a fresh instance holds nothing, so every movie runs once; then none
    fresh = copy_built(built_dataset, tmp_path / "fresh")
    instance = dg.DagsterInstance.ephemeral()
    done = materialize(fresh, ["movie_plots", "style_banks"], instance=instance)
    assert done.success and len(done.asset_materializations_for_node("style_banks")) == 3
    assert latest_versions(instance, "style_banks") == recorded["style_banks"]
    again = materialize_stages(fresh, ["movie_plots", "style_banks"], instance=instance)
    assert [type(r) for r in again] == [UpToDate, UpToDate]
    assert again[1].step.counts["movies"] == 3 and again[1].step.written == []
    every = materialize_stages(fresh, ["style_banks"], instance=instance, every=True)
    assert len(every[0].asset_materializations_for_node("style_banks")) == 3


def test_the_worker_pool_lets_go_of_each_result_once_handed_back():
    """The stage writes each movie's result and drops it; the pool must not keep it either (a
    finished future holds its result: 1,000 keyframe shards of 4 MB would be 4 GB)."""
    from dreamframe_assets.core.params import ExecutorParams

    calls = [(os.urandom, (4_000_000,))] * 12  # a picklable function returning 4 MB, in 2 worker processes
    seen, held = 0, None
    tracemalloc.start()
    try:
        for _, data in executor.run_all(calls, ExecutorParams(workers=2), "cpu"):
            seen += len(data)
            if seen == 12 * 4_000_000:  # the last result in hand: every other one handed back before
                held = tracemalloc.get_traced_memory()[0]
            del data
    finally:
        tracemalloc.stop()
    assert seen == 12 * 4_000_000
    assert held < 2 * 4_000_000, held  # this one, not all twelve
