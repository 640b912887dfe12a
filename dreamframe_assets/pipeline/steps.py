"""The pipeline's stages as plain functions, with the movie as the unit of work.

The four per-movie stages (movie_plots, style_banks, keyframes, qa_pairs) share one
path, ``run_stage``: for each movie, its upstream files give an item key over all of
its inputs; the item comes from the cache or from the backend ``params.yaml`` names,
run by the executor (``pipeline/executor.py``); the movie's files are written in
``data/<stage>/`` as soon as it finishes. Then the dataset tables DVC tracks are
assembled from every movie's files (``pipeline/tables.py``: the rows of movies whose files
did not change come from the tables on disk). ``eval_scores`` reads those tables.
Dagster assets (one partition per movie), DVC stages and the tests all call these.
A failing movie never loses the others: they are written before the error is reported.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..core.cache import ItemCache, bytes_digest, digest, write_atomic, write_if_changed
from ..core.ids import attempt_seed, item_seed
from ..core.params import Params, verifier_names
from ..core.plot import QA, MoviePlot, as_row
from ..core.schemas import validate
from ..core.store import (
    MOVIES,
    PLOT_TABLES,
    contact_sheet,
    keyframe_member,
    load_image,
    pack_shard,
    plot_from_json,
    plot_rows,
    plot_to_json,
    png_bytes,
    read_keyframe_pngs,
    read_table,
    rows_table,
    shard_members,
    stage_dir,
)
from ..core.vocabulary import GROUNDED_QTYPES
from ..models.device import READERS, enter_stage, load_once
from . import backends, executor, tables
from .code import STAGES, code_version
from .movies import (
    STATUS_DIR,
    MovieState,
    file_stamps,
    files_version,
    movie_files,
    read_sources,
    read_retries,
    read_status,
    record_attempt,
    remove_files,
    remove_other_movies,
    stamps_on_disk,
    status_entry,
    write_status,
)

log = logging.getLogger("dreamframe")

SHEET_COLUMNS = 4
# How each stage packs an item into the cache; part of every key, so raise it when
# the packing changes (the code that makes items is versioned by ``code.code_version``).
STATUS_EVERY = 2.0  # seconds between rewrites of a stage's status file during a run
# Computed movies are checked against the contract many at a time (pandera costs ~20 ms a call):
# a batch waits while the next movie is due within CHECK_EVERY seconds and its items hold
# under CHECK_BYTES; slow movies (a model's) are checked one by one, as soon as each is done.
CHECK_EVERY, CHECK_BYTES = 5.0, 2 << 20
CHECKED_HERE = ("style_banks", "keyframes", "qa_pairs")  # a plot is checked as it is written (check_plot)
ITEM_FORMAT = {"movie_plots": 2, "style_banks": 3, "keyframes": 2, "qa_pairs": 6, "eval_scores": 4}


class StepError(RuntimeError):
    """One or more movies failed; the message names them. Finished movies are written."""


class MissingInput(RuntimeError):
    """A movie's upstream output is not there (its upstream failed, was quarantined or never built)."""

    def __init__(self, message: str, upstream: str):
        super().__init__(message)
        self.upstream = upstream


@dataclass
class StepResult:
    stage: str
    written: list[str]  # files whose content changed this run
    hits: int
    misses: int
    redone: list[str]  # items computed (not taken from the cache) this run
    counts: dict[str, int]
    preview: pl.DataFrame | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    movies: dict[str, MovieState] = field(default_factory=dict)

    @property
    def failed(self) -> list[MovieState]:
        return [m for m in self.movies.values() if m.state == "failed"]


# A movie's files, its state, its counts and its contract rows ({table: rows}, checked when computed).
Made = tuple[dict[Path, bytes], str, dict[str, int], dict[str, list[dict]]]
CONTRACT_SCHEMA = {"flagged": "dropped"}  # contract rows checked against another table's schema


def contract_errors(rows: dict[str, dict[str, list[dict]]], where: Callable[[str, str], str]) -> dict[str, str]:
    """Movies' contract rows ({movie: {table: rows}}) against the tables' schemas -> the
    error of each movie that fails, its table named by ``where(movie, table)``. One validation
    per table for all of them (pandera's cost is per call, about 20 ms, not per row); only
    when that fails, one by one to name the culprits."""
    def check(mids: list[str], label: Callable[[str], str]) -> None:
        for name in dict.fromkeys(name for mid in mids for name in rows[mid]):
            schema = CONTRACT_SCHEMA.get(name, name)
            validate(schema, rows_table(schema, [r for mid in mids for r in rows[mid].get(name, [])]), where=label(name))

    try:
        check(list(rows), lambda name: f"{len(rows)} movie(s): {name}")
        return {}
    except Exception:  # noqa: BLE001 - named below, movie by movie
        pass
    bad = {}
    for mid in rows:
        try:
            check([mid], lambda name: where(mid, name))
        except Exception as exc:  # noqa: BLE001 - an item that breaks its contract fails its movie
            log.debug("movie %s: breaks its contract", mid, exc_info=True)
            bad[mid] = f"{type(exc).__name__}: {exc}"
    return bad


# ---------------------------------------------------------------- per-movie work
def backend(stage: str, params: Params, root: Path) -> Any:
    """The stage's backend in this process, made once and reused by every movie it runs."""
    group = getattr(params, stage)
    choice, registry = backends.STAGE_BACKENDS[stage]
    name = getattr(group, choice)
    make = registry[name]
    # kept whatever stage runs next: a backend holds its settings, and its models are loaded
    # (and let go) under keys of their own
    return load_once(("backend", stage, name, id(make), group.model_dump_json(), str(root)), lambda: make(group, Path(root)),
                     stages=STAGES)


def work_kind(stage: str, params: Params) -> tuple[executor.Work, int]:
    """What a stage's movies wait on (``executor.Work``), and for a server, its request limit."""
    group = getattr(params, stage)
    if stage in ("movie_plots", "qa_pairs") and group.writer == "llm":
        return ("io", group.llm.concurrency) if group.llm.client == "openai" else ("gpu", 1)
    if (stage, getattr(group, backends.STAGE_BACKENDS[stage][0])) in (
            ("style_banks", "textual_inversion"), ("keyframes", "diffusion")):
        return "gpu", 1
    if stage == "qa_pairs" and {"clip", "vlm"} & set(verifier_names(group.faithfulness, params.keyframes.renderer)):
        return "gpu", 1  # a verifier's model: one process holds it
    return "cpu", 1


def compute_movie(stage: str, params: Params, root: str, args: tuple) -> tuple[str, Any, str]:
    """One movie's item, in whatever process the executor chose: ("ok", bytes, ""),
    ("quarantined", rows of what a model could not write, message) or ("failed", message, traceback)."""
    try:
        enter_stage(stage)
        return "ok", COMPUTE[stage](backend(stage, params, Path(root)), params, Path(root), *args), ""
    except Exception as exc:  # noqa: BLE001 - the stage names the movie
        records = getattr(exc, "records", None)
        if records is not None:
            return "quarantined", [as_row(r) for r in records], str(exc)
        return "failed", f"{type(exc).__name__}: {exc}", traceback.format_exc()


@dataclass
class Run:
    """What a stage's per-movie functions share within one run."""

    root: Path
    params: Params
    stage: str
    folder: Path
    identity: str
    sources: dict[str, tuple[str, str]]  # every movie: ("theme", text) or ("story", file)
    code: str  # code_version(stage)


def run_stage(root: Path, params: Params, stage: str, movies: list[str] | None = None,
              retry: bool = False) -> StepResult:
    """Build ``movies`` (default: every movie) of a per-movie stage, then assemble its dataset tables.

    ``retry`` gives each chosen movie a fresh attempt: a new key and new model seeds, so a
    model is asked again instead of its cached answers being replayed (they stay on disk).
    Runs of one stage take turns (a lock per stage): two runs launched from the UI never
    interleave their writes to the stage's folder, status or tables."""
    with stage_lock(Path(root), stage):
        return _run_stage(Path(root), params, stage, movies, retry)


def item_key(run: Run, code: str, mid: str, attempt: int) -> tuple[str, tuple]:
    """A movie's item key in ``run.stage`` (over all of its inputs: its upstream files, the
    stage's params, backend, code and attempt) and the arguments that compute it."""
    parts, args = INPUTS[run.stage](run, mid, attempt)
    return digest(run.stage, ITEM_FORMAT[run.stage], run.identity, code, attempt, parts), args


def skip_key(root: Path, upstream: str, mid: str) -> str:
    """What a movie skipped for want of its upstream output depends on: that upstream's state."""
    entry = read_status(root, upstream).get(mid, {})
    return digest("skipped", upstream, entry.get("state"), entry.get("version"), entry.get("attempt"))


def stale_movies(root: Path, params: Params, stage: str, recorded: dict) -> list[str]:
    """The movies a run of ``stage`` has work for, in order: those whose item is not cached
    under the key their inputs give now, whose files on disk are not the ones their last run
    wrote from that item (``file_stamps``), whose last run did not end done, or whose data
    version the Dagster instance does not hold (``recorded``: movie id -> version). For the
    others a run would compute, write and record nothing new."""
    root = Path(root)
    sources, _ = read_sources(root, params)
    folder = stage_dir(root, stage)
    code = code_version(stage)
    run = Run(root, params, stage, folder, backend(stage, params, root).identity(), sources, code)
    cache = ItemCache(root, stage)
    status = read_status(root, stage)
    attempts = read_retries(root).get(stage, {})
    on_disk = stamps_on_disk(folder)
    stale = []
    for mid in sources:
        entry = status.get(mid, {})
        state = entry.get("state")
        if state not in ("done", "quarantined", "skipped") or recorded.get(mid) != entry.get("version") \
                or on_disk.get(mid, []) != entry.get("stamp"):
            stale.append(mid)
            continue
        try:
            key = item_key(run, code, mid, attempts.get(mid, 0))[0]
        except MissingInput as exc:
            key = skip_key(root, exc.upstream, mid)
        except Exception:  # noqa: BLE001 - a broken upstream: the run says which
            stale.append(mid)
            continue
        # a done movie's item must still be in the cache; a movie its model could not write
        # (quarantined) has none, and a skipped one nothing to make: their key says it all
        if key != entry.get("key") or (state == "done" and not cache.has(key)):
            stale.append(mid)
    return stale


@contextmanager
def stage_lock(root: Path, stage: str) -> Iterator[None]:
    """One run of a stage at a time in a project. A second run says that it waits, and for
    whom (the holder's pid and start time are written beside the lock), then goes on."""
    from filelock import FileLock, Timeout

    lock = Path(root) / STATUS_DIR / f"{stage}.lock"
    holder = lock.with_suffix(".holder")
    lock.parent.mkdir(parents=True, exist_ok=True)
    file_lock = FileLock(str(lock))
    try:
        file_lock.acquire(timeout=0)
    except Timeout:
        who = holder.read_text().strip() if holder.exists() else "another run"
        log.warning("%s: %s is building this stage in this project; waiting for it to finish", stage, who)
        file_lock.acquire()
    try:
        write_atomic(holder, f"run pid {os.getpid()} (started {time.strftime('%H:%M:%S')})\n".encode())
        for leftover in [*Path(root, "data", stage).rglob(".*.tmp"), *ItemCache(root, stage).dir.rglob(".*.tmp")]:
            leftover.unlink(missing_ok=True)  # half a file of a run killed mid-write: never renamed into place
        yield
    finally:
        holder.unlink(missing_ok=True)
        file_lock.release()


def _run_stage(root: Path, params: Params, stage: str, movies: list[str] | None, retry: bool) -> StepResult:
    t0 = time.perf_counter()
    enter_stage(stage)  # the models only earlier stages use are let go before this one loads its own
    sources, left_out = read_sources(root, params)
    for line in left_out if stage == "movie_plots" else ():  # the CLI shows them before the run
        log.info("movie_plots: %s", line)
    ids = list(sources)
    chosen = ids if movies is None else list(dict.fromkeys(movies))
    folder = stage_dir(root, stage)
    made = backend(stage, params, root)
    usage_before = made.usage() if hasattr(made, "usage") else None
    code = code_version(stage)
    run = Run(root, params, stage, folder, made.identity(), sources, code)
    cache = ItemCache(root, stage)
    status = read_status(root, stage)
    states: dict[str, MovieState] = {}
    written: list[str] = []
    repaired: list[str] = []

    def settle(mid: str, attempt: int, outcome: str, value: Any, cached: bool = False, message: str = "",
               key: str = "", made: Made | None = None) -> bool:
        """Write (or clear) one movie's files as soon as it is known, and its status. A computed
        item that makes good files goes into the cache under ``key`` first: a run killed at
        any point after this never computes it again."""
        old = movie_files(folder, mid)
        if outcome == "ok":
            try:
                # a cached item made good files when it was computed (and its code, schemas
                # included, is in its key): only a new item is checked against the contract,
                # by ``check_batch`` before it gets here (``made``)
                files, state, counts, _ = made or FILES[stage](run, mid, value)
            except Exception as exc:  # noqa: BLE001 - an item that cannot make its files fails its movie
                log.debug("%s: movie %s: bad output", stage, mid, exc_info=True)
                return settle(mid, attempt, "failed", f"{type(exc).__name__}: {exc}")
            if not cached:
                cache.put(key, value, item=mid)  # only an item that makes its files is kept
            changed = [p for p, data in files.items() if write_if_changed(p, data)]
            mended = [str(p.relative_to(root)) for p in changed if cached and p in old]
            if mended:  # on disk, but not what its cached item says: damaged or edited
                repaired.append(mid)
                log.warning("%s: movie %s: %s did not match its cached item (damaged or edited); rewritten",
                            stage, mid, ", ".join(mended))
            written.extend(str(p.relative_to(root)) for p in changed)
            written.extend(remove_files([p for p in old if p not in files], folder))
            states[mid] = MovieState(mid, state, attempt, cached, files_version(folder, files.items()), counts=counts,
                                     key=key, stamp=file_stamps(folder, files))
        else:
            written.extend(remove_files(old, folder))  # never leave an output made from other inputs
            files = {}
            if outcome == "quarantined":
                files = {folder / "quarantine" / f"{mid}.json": json.dumps(value, sort_keys=True).encode()}
                written.extend(str(p.relative_to(root)) for p, data in files.items() if write_if_changed(p, data))
            # a quarantined or skipped movie keeps its key: the same inputs would come out the same
            # (a model's answers are replayed), so it is not stale until they change or it is retried
            states[mid] = MovieState(mid, outcome, attempt, version=files_version(folder, files.items()),
                                     error=message if outcome == "quarantined" else value,
                                     key=key if outcome != "failed" else "", stamp=file_stamps(folder, files))
        entry = status_entry(states[mid])
        if status.get(mid) != entry:  # a changed state is on disk soon: a killed run keeps it
            status[mid] = entry
            save_status()
        return outcome == "ok" and states[mid].state != "failed"

    saved = [0.0]

    def save_status(force: bool = False) -> None:
        """The status file, rewritten at most every few seconds (it holds every movie)."""
        if force or time.monotonic() - saved[0] > STATUS_EVERY:
            write_status(root, stage, {mid: e for mid, e in status.items() if mid in known})
            saved[0] = time.monotonic()

    known = set(ids)
    attempts = read_retries(root).get(stage, {})
    calls, pending = [], []
    for mid in chosen:
        attempt = attempts.get(mid, 0) + (1 if retry else 0)
        try:
            if mid not in ids:
                raise MissingInput(f"movie {mid!r} is not in movie_plots.themes, themes_file or stories_dir "
                                   "(removed? its partition goes at the next sensor tick)", "movie_plots")
            key, args = item_key(run, code, mid, attempt)
        except MissingInput as exc:
            upstream = read_status(root, exc.upstream).get(mid, {}).get("state") if mid in ids else None
            settle(mid, attempt, "skipped" if upstream in ("quarantined", "skipped") else "failed", str(exc),
                   key=skip_key(root, exc.upstream, mid))
            continue
        except Exception as exc:  # noqa: BLE001 - e.g. an upstream file that breaks its contract
            settle(mid, attempt, "failed", f"{type(exc).__name__}: {exc}")
            continue
        data = cache.get(key)
        if data is not None:
            if retry:
                record_attempt(root, stage, mid, attempt)
            settle(mid, attempt, "ok", data, cached=True, key=key)
        else:
            calls.append((compute_movie, (stage, params, str(root), args)))
            pending.append((mid, key, attempt))
    if stage != "movie_plots" and pending:  # the movies about to be computed read their plots
        bad = check_plots(root, [mid for mid, _, _ in pending])
        for k in [k for k, (mid, _, _) in enumerate(pending) if mid in bad][::-1]:
            mid, _, attempt = pending.pop(k)
            calls.pop(k)
            settle(mid, attempt, "failed", bad[mid])
    batch: list[tuple[str, int, Any, str]] = []  # computed movies waiting for their contract check

    def check_batch() -> None:
        """Settle the computed movies waiting: their files made, their contract rows checked at once."""
        built: dict[str, Made | str] = {}
        for mid, _, value, _ in batch:
            try:
                built[mid] = FILES[stage](run, mid, value)
            except Exception as exc:  # noqa: BLE001 - an item that cannot make its files fails its movie
                log.debug("%s: movie %s: bad output", stage, mid, exc_info=True)
                built[mid] = f"{type(exc).__name__}: {exc}"
        bad = contract_errors({mid: b[3] for mid, b in built.items() if not isinstance(b, str)},
                              lambda mid, name: f"{stage}: movie {mid!r}: {name}")
        while batch:  # one at a time off the batch: a movie settled is never settled again
            mid, attempt, value, key = batch[0]
            if retry:  # the new attempt is an input from now on, once its movie is settled
                record_attempt(root, stage, mid, attempt)
            error = built[mid] if isinstance(built[mid], str) else bad.get(mid)
            if error:
                settle(mid, attempt, "failed", error)
            else:
                settle(mid, attempt, "ok", value, key=key, made=built[mid])
            batch.pop(0)

    work, limit = work_kind(stage, params)
    since = last = time.monotonic()
    held = 0
    try:
        for i, result in executor.run_all(calls, params.executor, work, limit):
            mid, key, attempt = pending[i]
            outcome, value, detail = result if isinstance(result, tuple) else ("failed", f"{type(result).__name__}: {result}", "")
            if outcome == "failed" and detail:
                log.debug("%s: movie %s failed:\n%s", stage, mid, detail)
            now = time.monotonic()
            gap, last = now - last, now
            if outcome != "ok":
                if retry:
                    record_attempt(root, stage, mid, attempt)
                settle(mid, attempt, outcome, value, message=detail, key=key)
                continue
            if not batch:
                since, held = now, 0
            batch.append((mid, attempt, value, key))
            held += len(value)
            # settle now unless the next movie is likely to come soon: a movie finished waits
            # about CHECK_EVERY at most (were the process killed, only that much work is lost)
            if stage not in CHECKED_HERE or held >= CHECK_BYTES or now - since + gap >= CHECK_EVERY:
                check_batch()
    finally:
        try:
            check_batch()  # what was computed is written and cached, even when the run is stopped
        finally:
            save_status(force=True)

    written += remove_other_movies(folder, set(ids), root)
    table_files, counts, preview, extra = ASSEMBLE[stage](run, ids)
    written += [str(p.relative_to(root)) for p, data in table_files.items() if write_if_changed(p, data)]
    if usage_before is not None:  # the backend lives as long as the process: this run's share
        extra["llm_usage"] = {k: v - usage_before.get(k, 0) for k, v in made.usage().items()}
    counts = {**counts, **{s: sum(m.state == s for m in states.values()) for s in ("quarantined", "failed", "skipped")}}
    if cache.damaged or repaired:  # found damaged and made whole again
        counts.update(cache_damaged=cache.damaged, files_repaired=len(repaired))
    if stage == "movie_plots" and left_out:
        extra["left_out"] = left_out[:50]
        counts["themes_left_out"] = len(left_out)
    return StepResult(stage=stage, written=sorted(set(written)),
                      hits=cache.hits, misses=cache.misses, redone=cache.missed, counts=counts, preview=preview,
                      seconds=time.perf_counter() - t0, extra=extra, movies=states)


def raise_failures(result: StepResult) -> None:
    """StepError naming every failed movie (the others are written)."""
    if result.failed:
        raise StepError(f"{result.stage}: {len(result.failed)} of {len(result.movies)} movie(s) failed "
                        f"(the others are written):\n  " + "\n  ".join(f"{m.movie_id}: {m.error}" for m in result.failed))


def _json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def _movie_json(root: Path, stage: str, mid: str) -> bytes:
    path = stage_dir(root, stage) / MOVIES / f"{mid}.json"
    if not path.exists():
        raise MissingInput(f"movie {mid!r} has no {stage} output ({path.relative_to(root)}); "
                           f"build {stage} for it first, or see why: dreamframe status", stage)
    return path.read_bytes()


def read_plot(root: Path, movie_id: str, check: bool = True) -> MoviePlot:
    """One movie's plot, as movie_plots wrote it; ``check``: against the plot tables' schemas
    (the contract at the asset boundary; a stage checks the plots of the movies it computes
    all at once, ``check_plots``)."""
    plot = plot_from_json(_movie_json(root, "movie_plots", movie_id))
    if check:
        check_plot(plot, f"data/movie_plots/{MOVIES}/{movie_id}.json")
    return plot


def plot_facts(run: Run, mid: str) -> dict:
    """What the style_banks and keyframes item keys read of a movie's plot (its style, and a
    digest of what is drawn: frames and characters), kept by the plot file's bytes: checking
    1,000 movies for staleness reads each plot's bytes, not its parse."""
    data = _movie_json(run.root, "movie_plots", mid)
    cache = ItemCache(run.root, "plot_facts")
    key = digest("plot-facts", run.code, bytes_digest(data))
    kept = cache.get(key)
    if kept is not None:
        return json.loads(kept)
    plot = plot_from_json(data)
    facts = {"style": [plot.movie.style_description, plot.movie.style_keyword],
             "drawn": digest([as_row(f) for f in plot.frames] + [as_row(c) for c in plot.movie.characters])}
    cache.put(key, json.dumps(facts).encode())
    return facts


def check_plot(plot: MoviePlot, where: str) -> None:
    for name, rows in plot_rows(plot).items():
        validate(name, rows_table(name, rows), where=f"{where} ({name})")


def check_plots(root: Path, movie_ids: list[str]) -> dict[str, str]:
    """Each movie's plot file against the plot tables' schemas -> the error of each that fails.

    All movies go through one validation per table (``contract_errors``).
    """
    rows, bad = {}, {}
    for mid in movie_ids:
        try:
            rows[mid] = plot_rows(read_plot(root, mid, check=False))
        except Exception as exc:  # noqa: BLE001 - unreadable: that movie fails
            bad[mid] = f"{type(exc).__name__}: {exc}"
    return bad | contract_errors(rows, lambda mid, name: f"data/movie_plots/{MOVIES}/{mid}.json ({name})")


# ---------------------------------------------------------------- movie_plots
def _plots_inputs(run: Run, mid: str, attempt: int) -> tuple[Any, tuple]:
    p = run.params.movie_plots
    kind, source = run.sources[mid]
    if kind == "story":  # the id is in the plot: two copies of a file are two movies
        return ["authors-import", mid, bytes_digest(Path(source).read_bytes())], ("story", source, mid, 0)
    seed = attempt_seed(p.seed, attempt)
    return [source, seed, p.substories, p.tinystories, p.frames], ("theme", source, mid, seed)


def _plots_compute(writer: Any, params: Params, root: Path, kind: str, source: str, mid: str, seed: int) -> bytes:
    p = params.movie_plots
    if kind == "story":
        from ..story import authors

        plot = authors.read_story(Path(source), mid)
    else:
        plot = writer.write(source, mid, seed, p.substories, p.tinystories, p.frames)
    check_plot(plot, f"movie_plots: movie {mid!r}")
    return plot_to_json(plot)


def _plots_files(run: Run, mid: str, data: bytes) -> Made:
    plot = plot_from_json(data)  # checked against the plot tables' schemas when computed (check_plot)
    state = "quarantined" if plot.quarantine else "done"
    return {run.folder / MOVIES / f"{mid}.json": data}, state, {"frames": len(plot.frames), "plot_qa": len(plot.qa)}, {}


def _plots_assemble(run: Run, ids: list[str]) -> tuple[dict[Path, bytes], dict, pl.DataFrame, dict]:
    def sources(mid: str) -> list[Path]:  # its plot, or what the model could not write of it at all
        return [run.folder / MOVIES / f"{mid}.json", run.folder / "quarantine" / f"{mid}.json"]

    def parse(mid: str) -> tuple[dict[str, list[dict]], None]:
        path, quarantined = sources(mid)
        rows = plot_rows(plot_from_json(path.read_bytes())) if path.exists() else {}
        # a plot's own quarantined parts, and those of a plot not written
        return {**rows, "quarantine": rows.get("quarantine", []) + (_json(quarantined) if quarantined.exists() else [])}, None

    t, files, _ = tables.assemble(run.root, run.stage, run.code, run.folder, ids,
                                  {name: name for name in PLOT_TABLES}, sources, parse)
    counts = {"movies": t["movies"].height, "frames": t["frames"].height, "dialogue_lines": t["dialogue"].height,
              "plot_qa": t["plot_qa"].height, "substories": t["substories"].height,
              "quarantined_parts": t["quarantine"].height}
    preview = t["movies"].select("movie_id", "title", "genre", "style_keyword", "theme")
    extra: dict[str, Any] = {"actions": t["frames"]["action"].value_counts().sort("action").to_dicts()}
    if t["quarantine"].height:
        extra["quarantine"] = [{k: str(v)[:200] for k, v in r.items() if k != "prompt"}
                               for r in t["quarantine"].head(20).to_dicts()]
    return files, counts, preview, extra


def write_movie_plots(root: Path, params: Params, movies: list[str] | None = None, retry: bool = False) -> StepResult:
    """Themes -> three-level story expansion -> one plot per movie and the seven plot tables."""
    return run_stage(root, params, "movie_plots", movies, retry)


# ---------------------------------------------------------------- style_banks
def _style_inputs(run: Run, mid: str, attempt: int) -> tuple[Any, tuple]:
    p = run.params.style_banks
    seed = item_seed(attempt_seed(p.seed, attempt), mid)
    return [mid, *plot_facts(run, mid)["style"], p.references, p.size, p.seed], (mid, seed)


def _style_compute(learner: Any, params: Params, root: Path, mid: str, seed: int) -> bytes:
    from ..render.look import StyleParams
    from ..style.offline import fit_style

    p = params.style_banks
    refs, style = learner.learn(read_plot(root, mid, check=False).movie, p.references, p.size, seed)
    # Every learner's style is also described in the offline terms (palette, grain, ...)
    # so styles of any backend can be compared in one table.
    look = style if isinstance(style, StyleParams) else fit_style(refs)
    extra = style.files() if hasattr(style, "files") else {}
    return pack_shard([("params.json", json.dumps(style.to_dict(), sort_keys=True).encode()),
                       ("look.json", json.dumps(look.to_dict(), sort_keys=True).encode()),
                       ("references.png", png_bytes(contact_sheet(refs, SHEET_COLUMNS))),
                       *((f"files/{name}", data) for name, data in sorted(extra.items()))])


def _style_files(run: Run, mid: str, data: bytes) -> Made:
    members = shard_members(data)
    look = json.loads(members["look.json"])
    files = {run.folder / "references" / f"{mid}.png": members["references.png"]}
    for name, blob in members.items():
        if name.startswith("files/"):
            files[run.folder / "embeddings" / mid / name.removeprefix("files/")] = blob
    row = {
        "movie_id": mid, "learner": run.identity, "references": run.params.style_banks.references,
        "reference_sheet": f"references/{mid}.png", "style_keyword": plot_facts(run, mid)["style"][1],
        "palette": ["#%02x%02x%02x" % tuple(c) for c in look["palette"]],
        "line_weight": int(look["line_weight"]), "texture_kind": str(look["texture_kind"]),
        "texture": float(look["texture"]), "lighting": float(look["lighting"]),
        "grain": float(look["grain"]), "params_json": members["params.json"].decode(),
    }
    files[run.folder / MOVIES / f"{mid}.json"] = json.dumps(row, sort_keys=True).encode()
    return files, "done", {"references": run.params.style_banks.references}, {"styles": [row]}


def _style_assemble(run: Run, ids: list[str]) -> tuple[dict[Path, bytes], dict, pl.DataFrame, dict]:
    t, files, _ = tables.assemble(run.root, run.stage, run.code, run.folder, ids, {"styles": "styles"},
                                  lambda mid: [run.folder / MOVIES / f"{mid}.json"],
                                  lambda mid: ({"styles": [_json(run.folder / MOVIES / f"{mid}.json")]}, None))
    table = t["styles"]
    return files, {"movies": table.height}, table.select("movie_id", "style_keyword", "palette", "texture_kind", "grain"), {}


def learn_style_banks(root: Path, params: Params, movies: list[str] | None = None, retry: bool = False) -> StepResult:
    """Per movie: reference images from its style description, and the style fitted to them."""
    return run_stage(root, params, "style_banks", movies, retry)


def read_style(root: Path, movie_id: str) -> tuple[dict, dict[str, bytes]]:
    """One movie's learned style: its parameters and the learner's extra files (a token's embedding)."""
    row = json.loads(_movie_json(root, "style_banks", movie_id))
    extra = stage_dir(root, "style_banks") / "embeddings" / movie_id
    files = {p.name: p.read_bytes() for p in sorted(extra.glob("*"))} if extra.is_dir() else {}
    return json.loads(row["params_json"]), files


def style_object(params: dict, files: dict[str, bytes]) -> Any:
    """A style as the object its learner made (offline look parameters or a learned token)."""
    if params.get("kind") == "textual_inversion":
        from ..models.diffusion import TextualInversionStyle

        return TextualInversionStyle.from_dict(params, files)
    from ..render.look import StyleParams

    return StyleParams.from_dict(params)


# ---------------------------------------------------------------- keyframes
def _frames_inputs(run: Run, mid: str, attempt: int) -> tuple[Any, tuple]:
    p = run.params.keyframes
    facts = plot_facts(run, mid)
    style, style_files = read_style(run.root, mid)
    parts = [mid, facts["drawn"], style, {k: bytes_digest(v) for k, v in style_files.items()}, facts["style"][1],
             p.width, p.height, p.seed]
    return parts, (mid, style, style_files, item_seed(attempt_seed(p.seed, attempt), mid))


def _frames_compute(renderer: Any, params: Params, root: Path, mid: str, style: dict, style_files: dict,
                    seed: int) -> bytes:
    p = params.keyframes
    plot, style = read_plot(root, mid, check=False), style_object(style, style_files)
    if not hasattr(renderer, "render_movie"):
        return pack_shard([(keyframe_member(mid, i), png_bytes(img))
                           for i, img in enumerate(renderer.render(plot, style, p.width, p.height, seed))])
    drawn = renderer.render_movie(plot, style, p.width, p.height, seed)
    said = [{"frame_index": i, **prompt.to_dict()} for i, prompt in enumerate(drawn.prompts)]
    return pack_shard([(keyframe_member(mid, i), png_bytes(img)) for i, img in enumerate(drawn.images)]
                      + [(PROMPTS_MEMBER, json.dumps(said, indent=1).encode())]
                      + [(f"{REFERENCES}/{char_id}.png", png_bytes(img)) for char_id, img in drawn.references.items()])


# Beside the frames in a diffusion renderer's item, and written beside the shard: the prompts
# (prompts/<movie>.json) and each character's reference image (references/<movie>/<char_id>.png)
PROMPTS_MEMBER = "prompts.json"
REFERENCES = "references"


def _frames_files(run: Run, mid: str, shard: bytes) -> Made:
    p = run.params.keyframes
    members = shard_members(shard)
    prompts = members.pop(PROMPTS_MEMBER, None)  # the prompts each frame was drawn with, kept beside the shard
    references = {name: members.pop(name) for name in sorted(members) if name.startswith(f"{REFERENCES}/")}
    if prompts is not None:
        shard = pack_shard(sorted(members.items()))
    frames = len(read_plot(run.root, mid, check=False).frames)
    if len(members) != frames:
        raise StepError(f"keyframes: movie {mid!r}: {len(members)} images for {frames} frames")
    rows = [{"movie_id": mid, "frame_index": i, "shard": f"shards/{mid}.tar", "member": name,
             "width": p.width, "height": p.height, "sha": bytes_digest(members[name])}
            for i, name in enumerate(sorted(members))]
    files = {run.folder / "shards" / f"{mid}.tar": shard,
             run.folder / MOVIES / f"{mid}.json": json.dumps(rows, sort_keys=True).encode()}
    counts = {"keyframes": len(rows)}
    if prompts is not None:
        files[run.folder / "prompts" / f"{mid}.json"] = prompts
        counts["prompts_cut"] = sum(bool(r["lost"]) for r in json.loads(prompts))
    for name, data in references.items():
        files[run.folder / REFERENCES / mid / name.split("/", 1)[1]] = data
    if references:
        counts["character_references"] = len(references)
    return files, "done", counts, {"keyframes": rows}


def _frames_assemble(run: Run, ids: list[str]) -> tuple[dict[Path, bytes], dict, pl.DataFrame, dict]:
    t, files, _ = tables.assemble(run.root, run.stage, run.code, run.folder, ids,
                                  {"keyframes": "keyframes"}, lambda mid: [run.folder / MOVIES / f"{mid}.json"],
                                  lambda mid: ({"keyframes": _json(run.folder / MOVIES / f"{mid}.json")}, None))
    table = t["keyframes"]
    counts, extra = {"movies": table["movie_id"].n_unique(), "keyframes": table.height}, {}
    said = [r for mid in ids if (path := run.folder / "prompts" / f"{mid}.json").exists() for r in _json(path)]
    if said:  # what the text encoders never saw: the prose is cut first, then facts from the end
        lost = Counter(what for r in said for what in r["lost"])
        counts["prompts_cut"] = sum(bool(r["lost"]) for r in said)
        extra["prompts_lost"] = dict(sorted(lost.items()))
    references = sum(len(list((run.folder / REFERENCES / mid).glob("*.png"))) for mid in ids
                     if (run.folder / REFERENCES / mid).is_dir())
    if references:
        counts["character_references"] = references
    return files, counts, table.head(8), extra


def render_keyframes(root: Path, params: Params, movies: list[str] | None = None, retry: bool = False) -> StepResult:
    """Every frame drawn in its movie's learned style; one tar shard of PNGs per movie."""
    return run_stage(root, params, "keyframes", movies, retry)


def read_keyframes(root: Path, movie_id: str) -> list[np.ndarray]:
    """One movie's keyframes, in frame order, each checked against its recorded checksum."""
    return [load_image(data) for data in read_keyframe_pngs(root, movie_id)]


# ---------------------------------------------------------------- qa_pairs
def _qa_gate_params(params: Params) -> dict:
    p = params.qa_pairs
    return {"min_answer_words": p.min_answer_words, "max_answer_words": p.max_answer_words,
            "near_duplicate_threshold": p.near_duplicate_threshold, "max_qtype_share": p.max_qtype_share}


def _qa_inputs(run: Run, mid: str, attempt: int) -> tuple[Any, tuple]:
    from ..evaluate.choice import answerer_identity
    from ..models.embed import embedder_identity

    p = run.params.qa_pairs
    plot_json = _movie_json(run.root, "movie_plots", mid).decode()
    keyframes = _movie_json(run.root, "keyframes", mid)
    frames = len(json.loads(keyframes))
    seed = attempt_seed(p.seed, attempt)
    parts = [plot_json, p.grounded_per_frame, seed, _qa_gate_params(run.params), embedder_identity(p.embedder), frames]
    if verifier_names(p.faithfulness, run.params.keyframes.renderer):  # verdicts read the frames:
        parts += [p.faithfulness.action, bytes_digest(keyframes),  # their checksums are in this file
                  [answerer_identity(v) for v in _verifiers(run.params)]]
    return parts, (mid, frames, seed)


def _verifiers(params: Params) -> list[Any]:
    """The faithfulness verifiers for this project's frames, made once per process."""
    from ..evaluate import faithfulness

    p = params.qa_pairs.faithfulness
    names = verifier_names(p, params.keyframes.renderer)
    return load_once(("verifiers", p.model_dump_json(), tuple(names)), lambda: faithfulness.make_verifiers(p, names))


def _qa_compute(writer: Any, params: Params, root: Path, mid: str, frames: int, seed: int) -> bytes:
    from ..models.embed import TextEmbedder
    from ..qa import gates

    p = params.qa_pairs
    plot = read_plot(root, mid, check=False)
    embedder = load_once(("embedder", p.embedder.model_dump_json(), str(root)),
                         lambda: TextEmbedder(p.embedder, root / backends.EMBED_CACHE), stages=READERS)
    batch = writer.write(plot, p.grounded_per_frame, p.max_qtype_share, seed)
    unfaithful, verdicts = {}, {}
    verifiers = _verifiers(params)
    if verifiers:
        from ..evaluate import faithfulness

        unfaithful, verdicts = faithfulness.check(plot, batch.qas, read_keyframes(root, mid), verifiers)
    flag = p.faithfulness.action == "flag"
    kept, dropped, written = gates.apply_gates(plot, list(batch.qas), frames, embedder, **_qa_gate_params(params),
                                               unfaithful=unfaithful, flag_unfaithful=flag)
    written["faithfulness"] = verdicts
    return json.dumps({"qa": [as_row(q) for q in kept], "dropped": dropped, "written": written,
                       "flagged": gates.flagged_rows(kept, unfaithful) if flag else [],
                       "quarantine": [as_row(q) for q in batch.quarantine]}).encode()


def _qa_files(run: Run, mid: str, data: bytes) -> Made:
    item = json.loads(data)
    state = "quarantined" if item["quarantine"] else "done"
    return ({run.folder / MOVIES / f"{mid}.json": data}, state, {"qa_pairs": len(item["qa"]), "dropped": len(item["dropped"])},
            {name: item[name] for name in ("qa", "dropped", "quarantine", "flagged")})


def _qa_assemble(run: Run, ids: list[str]) -> tuple[dict[Path, bytes], dict, pl.DataFrame, dict]:
    def parse(mid: str) -> tuple[dict[str, list[dict]], dict]:
        item = _json(run.folder / MOVIES / f"{mid}.json")
        return {name: item[name] for name in ("qa", "dropped", "quarantine", "flagged")}, item["written"]

    # flagged QAs: the dropped rows' columns, kept
    t, files, written = tables.assemble(run.root, run.stage, run.code, run.folder, ids,
                                        {"qa": "qa", "dropped": "dropped", "quarantine": "quarantine", "flagged": "dropped"},
                                        lambda mid: [run.folder / MOVIES / f"{mid}.json"], parse)
    table = t["qa"]
    report = gate_report(list(written.values()), t["dropped"].select("gate", "qtype").to_dicts(),
                         table.select("qtype").to_dicts())
    files[run.folder / "gates.json"] = (json.dumps(report, indent=2, sort_keys=True) + "\n").encode()
    shares = table["qtype"].value_counts(normalize=True).sort("qtype")
    extra = {"qtype_share": dict(zip(shares["qtype"], shares["proportion"])),
             "dropped_by_gate": report["dropped"]["by_gate"],
             "gates": report}
    counts = {"movies": len(written), "qa_pairs": table.height, "grounded": int(table["qtype"].is_in(GROUNDED_QTYPES).sum()),
              "dropped": t["dropped"].height, "quarantined_qa": t["quarantine"].height, "flagged": t["flagged"].height}
    return files, counts, table.select("qa_id", "qtype", "question", "answer").head(10), extra


def gate_report(written: list[dict], dropped: list[dict], shipped: list[dict]) -> dict:
    """What the QA writers produced, what each gate dropped and what ships, per qtype: a writer
    that regresses shows up here as a number, though the gates keep what ships clean."""
    from ..evaluate.faithfulness import summarize

    made, wrong = Counter(), Counter()
    for item in written:
        made.update(item["written"])
        wrong.update(item["oracle_wrong"])
    total = sum(made.values())
    by_gate: dict[str, Counter] = {}
    for row in dropped:
        by_gate.setdefault(row["gate"], Counter())[row["qtype"]] += 1
    ships = Counter(row["qtype"] for row in shipped)

    def share(n: int, of: int) -> float:
        return round(n / of, 4) if of else 0.0

    return {
        "written": {"qa_pairs": total, "by_qtype": dict(made),
                    "oracle_accuracy": round(1 - share(sum(wrong.values()), total), 4) if total else 1.0,
                    "oracle_accuracy_by_qtype": {q: round(1 - share(wrong.get(q, 0), n), 4) for q, n in made.items()},
                    "duplicate_rate": share(sum(item["duplicates"] for item in written), total)},
        "dropped": {"qa_pairs": len(dropped), "by_gate": {g: sum(c.values()) for g, c in by_gate.items()},
                    "by_gate_and_qtype": {g: dict(c) for g, c in by_gate.items()}},
        "shipped": {"qa_pairs": len(shipped), "by_qtype": dict(ships), "share_of_written": share(len(shipped), total)},
        # per verifier: of the grounded QAs written, how many it checked, saw shown, could not judge
        "faithfulness": summarize([item.get("faithfulness", {}) for item in written]),
    }


def write_qa_pairs(root: Path, params: Params, movies: list[str] | None = None, retry: bool = False) -> StepResult:
    """Level and grounded QA pairs through the quality gates; what fails one is kept in dropped.parquet."""
    return run_stage(root, params, "qa_pairs", movies, retry)


def read_qa(root: Path, movies: list[str] | None = None) -> list[QA]:
    """The dataset's QA pairs (or those of ``movies``), in the table's order."""
    table = read_table(stage_dir(root, "qa_pairs") / "qa.parquet", "qa")
    if movies is not None:
        table = table.filter(pl.col("movie_id").is_in(movies))
    return [qa_from_row(r) for r in table.iter_rows(named=True)]


def qa_from_row(row: dict) -> QA:
    return QA(**{**row, "options": tuple(row["options"]), "evidence_frames": tuple(row["evidence_frames"])})


INPUTS: dict[str, Callable[..., tuple[Any, tuple]]] = {
    "movie_plots": _plots_inputs, "style_banks": _style_inputs, "keyframes": _frames_inputs, "qa_pairs": _qa_inputs}
COMPUTE: dict[str, Callable[..., bytes]] = {
    "movie_plots": _plots_compute, "style_banks": _style_compute, "keyframes": _frames_compute, "qa_pairs": _qa_compute}
FILES: dict[str, Callable[..., Made]] = {
    "movie_plots": _plots_files, "style_banks": _style_files, "keyframes": _frames_files, "qa_pairs": _qa_files}
ASSEMBLE: dict[str, Callable[..., tuple[dict[Path, bytes], dict, pl.DataFrame, dict]]] = {
    "movie_plots": _plots_assemble, "style_banks": _style_assemble, "keyframes": _frames_assemble,
    "qa_pairs": _qa_assemble}
PER_MOVIE: tuple[str, ...] = tuple(INPUTS)  # the stages partitioned by movie


# ---------------------------------------------------------------- eval_scores
def _eval_work(p: Any) -> executor.Work:
    """Answerers on a GPU (a VLM, CLIP) make evaluation GPU work; a blind LLM on a server, waiting."""
    if "vlm" in p.answerers or p.clip_model:
        return "gpu"
    return "io" if "blind" in p.answerers and p.blind.backend == "llm" else "cpu"


def _eval_compute(params: Params, root: str, mid: str, plot_json: str, qa_rows: list[dict], retrieve: bool) -> bytes:
    """One movie's answers, retrieval and style descriptors, with this process's models."""
    from ..evaluate import metrics
    from ..models.embed import TextEmbedder

    enter_stage("eval_scores")
    p = params.eval_scores
    where = (p.model_dump_json(), root)
    answerers = load_once(("answerers", *where), lambda: [backends.ANSWERERS[n](p, Path(root)) for n in p.answerers])
    text = None
    if "text" in p.retrievers and retrieve:
        text = load_once(("embedder", p.embedder.model_dump_json(), root),
                         lambda: TextEmbedder(p.embedder, Path(root) / backends.EMBED_CACHE), stages=READERS)
    clip = None
    if p.clip_model:
        from ..models.clip import ClipEmbedder

        clip = load_once(("clip", p.clip_model), lambda: ClipEmbedder(p.clip_model), stages=READERS)
    detector = person_detector(p)
    qas = [qa_from_row(r) for r in qa_rows]
    scores = metrics.movie_scores(plot_from_json(plot_json.encode()), qas, read_keyframes(Path(root), mid),
                                  answerers, text, clip, detector)
    return json.dumps(scores).encode()


def person_detector(p: Any) -> Any:
    """The identity metric's person detector, when one is configured (it crops for CLIP)."""
    if not (p.person_detector and p.clip_model):
        return None
    from ..models.detector import PersonDetector

    return PersonDetector(p.person_detector, p.person_threshold)


def _movie_digest(root: Path, stage: str, mid: str) -> str:
    """The digest of a movie's file in ``stage`` (``_movie_json``); "" when it has none."""
    try:
        return bytes_digest(_movie_json(root, stage, mid))
    except MissingInput:
        return ""


def _warm_embeddings(embedder: Any, answerers: list[Any], retrievers: list[str],
                     movies: list[tuple[MoviePlot, list[QA], bool]]) -> None:
    """Every text the movies about to be evaluated will embed, embedded here in one pass
    sorted by length; each movie's worker then reads its vectors from the cache."""
    from ..evaluate.retrieval import text_inputs

    texts: list[str] = []
    for plot, qas, retrieve in movies:
        for answerer in answerers:
            texts += answerer.texts(qas) if hasattr(answerer, "texts") else []
        if "text" in retrievers and retrieve and qas:
            frames, questions = text_inputs(plot, qas)
            texts += frames + questions
    if texts:
        embedder.warm(texts)
        embedder.release()  # the movies and the summary read the cache: its memory is free for them


def read_movie_facts(root: Path) -> dict[str, Any]:
    """Each movie's genre and frame and dialogue counts, from the plot tables (every one checked
    against its contract), in the tables' movie order: what the dataset metrics need, without
    building 1,000 plots."""
    from ..evaluate.metrics import MovieFacts

    folder = stage_dir(root, "movie_plots")
    t = {name: read_table(folder / f"{name}.parquet", name) for name in PLOT_TABLES}  # each checked: the contract
    counts = {name: dict(t[name]["movie_id"].value_counts().iter_rows()) for name in ("frames", "dialogue")}
    return {mid: MovieFacts(genre, counts["frames"].get(mid, 0), counts["dialogue"].get(mid, 0))
            for mid, genre in t["movies"].select("movie_id", "genre").iter_rows()}


def evaluate_dataset(root: Path, params: Params) -> StepResult:
    """Accuracy per answerer, evidence retrieval, style consistency, diversity -> metrics.json + charts."""
    with stage_lock(Path(root), "eval_scores"):
        return _evaluate_dataset(Path(root), params)


def _evaluate_dataset(root: Path, params: Params) -> StepResult:
    from ..evaluate import charts, metrics
    from ..evaluate.choice import answerer_identity
    from ..evaluate.retrieval import retrieval_sample
    from ..models.embed import TextEmbedder
    from ..qa import gates

    t0 = time.perf_counter()
    enter_stage("eval_scores")
    p = params.eval_scores
    movies = read_movie_facts(root)
    qas = read_qa(root)
    index = read_table(stage_dir(root, "keyframes") / "keyframes.parquet", "keyframes")
    answerers = [backends.ANSWERERS[name](p, root) for name in p.answerers]
    embedder = TextEmbedder(p.embedder, Path(root) / backends.EMBED_CACHE)
    cache = ItemCache(root, "eval_scores")
    code = code_version("eval_scores")
    identities = [answerer_identity(a) for a in answerers]
    detector = person_detector(p)
    by_movie: dict[str, list[QA]] = {mid: [] for mid in movies}
    for qa in qas:
        by_movie[qa.movie_id].append(qa)
    shas = {mid: [] for mid in movies} | {
        key[0]: part.sort("frame_index")["sha"].to_list() for key, part in index.group_by("movie_id")}
    retrieved = retrieval_sample(list(movies), p.retrieval_movies, p.seed)  # the text retriever's movies
    items, calls, plots = {}, [], {}
    for mid in movies:
        # keyed by the movie's files (its plot and its QA item, which the dataset tables are
        # assembled from), not by the rows read back: the same inputs, without re-serialising them
        sources = [_movie_digest(root, stage, mid) for stage in ("movie_plots", "qa_pairs")]
        key = digest("eval_scores", ITEM_FORMAT["eval_scores"], code, identities, p.seed, p.retrievers, p.clip_model,
                     detector.identity() if detector is not None else None,
                     embedder.identity(), sources, shas[mid], mid in retrieved)
        data = cache.get(key)
        if data is None:
            plots[mid] = read_plot(root, mid, check=False)  # the file the checked tables were assembled from
            calls.append((_eval_compute, (params, str(root), mid, plot_to_json(plots[mid]).decode(),
                                          [as_row(q) for q in by_movie[mid]], mid in retrieved)))
        items[mid] = (key, data)
    _warm_embeddings(embedder, answerers, p.retrievers,
                     [(plots[mid], by_movie[mid], mid in retrieved) for mid in (c[1][2] for c in calls)])
    failures = []
    for i, result in executor.run_all(calls, params.executor, _eval_work(p), io_limit=p.blind.llm.concurrency):
        mid = calls[i][1][2]
        if isinstance(result, Exception):
            failures.append(f"{mid}: {type(result).__name__}: {result}")
            continue
        cache.put(items[mid][0], result, item=mid)
        items[mid] = (items[mid][0], result)
    if failures:
        raise StepError(f"eval_scores: {len(failures)} of {len(items)} movie(s) failed "
                        f"(the others are cached):\n  " + "\n  ".join(failures))
    scores = {}
    for mid in list(items):  # one movie at a time, its descriptors as one float32 array (not
        score = json.loads(items.pop(mid)[1])  # a list of Python floats: ~8x less memory)
        score["descriptors"] = np.asarray(score["descriptors"], dtype=np.float32)
        scores[mid] = score
    ordered = [qa for mid in movies for qa in by_movie[mid]]
    covered = {a.name: a.answers() for a in answerers if hasattr(a, "answers")}
    dedup = gates.dedup_vectors(ordered, embedder) if ordered else None
    questions = embedder.encode([qa.question for qa in ordered]) if ordered else None  # cached by the warm pass
    summary = metrics.summarize(movies, ordered, scores, covered, dedup, params.qa_pairs.near_duplicate_threshold,
                                questions, fits=ItemCache(root, "probe_fits"))
    gates_file = stage_dir(root, "qa_pairs") / "gates.json"
    if gates_file.exists():  # what the QA writers produced and what each gate dropped, beside what ships
        summary["gates"] = json.loads(gates_file.read_text())

    folder = stage_dir(root, "eval_scores")
    sims = metrics.style_similarities({m: s["descriptors"] for m, s in scores.items()})
    files = {folder / "metrics.json": (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode(),
             folder / "plots" / "qtype_mix.png": charts.qtype_mix_png(summary["qtype_share"]),
             folder / "plots" / "accuracy.png": charts.accuracy_png(summary["accuracy"]),
             folder / "plots" / "style.png": charts.style_png(sims["within"], sims["across"])}
    for name, data in charts.plot_tables(summary).items():
        files[folder / "plots" / name] = data
    written = [str(p.relative_to(root)) for p, data in files.items() if write_if_changed(p, data)]
    return StepResult(stage="eval_scores", written=written,
                      hits=cache.hits, misses=cache.misses, redone=cache.missed, counts=summary["counts"],
                      seconds=time.perf_counter() - t0, extra={"metrics": summary, "embeddings": embedder.stats()})




STEPS: dict[str, Callable[..., StepResult]] = {
    "movie_plots": write_movie_plots,
    "style_banks": learn_style_banks,
    "keyframes": render_keyframes,
    "qa_pairs": write_qa_pairs,
    "eval_scores": evaluate_dataset,
}
