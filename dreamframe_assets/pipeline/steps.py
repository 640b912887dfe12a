"""The five pipeline steps as plain functions: upstream files in, this stage's files out.

Each step walks its items (one per movie), takes each from the item cache or
computes it with the backend ``params.yaml`` names, then writes the stage's
folder. Dagster assets and DVC stages both call these; so do the tests.
A failing item never loses the others: they are cached before the error is raised.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

from ..core.cache import ItemCache, bytes_digest, digest, write_if_changed
from ..core.ids import item_seed, movie_id_for
from ..core.params import Params, load_themes, story_files
from ..core.plot import QA, MoviePlot, as_row
from ..core.schemas import validate
from ..core.store import (
    PLOT_TABLES,
    contact_sheet,
    load_image,
    pack_shard,
    plot_from_json,
    plot_rows,
    plot_to_json,
    png_bytes,
    read_plots,
    read_shard,
    read_table,
    remove_stale,
    rows_table,
    shard_members,
    stage_dir,
    table_bytes,
)
from ..core.vocabulary import GROUNDED_QTYPES
from ..qa import gates
from ..render.look import StyleParams
from ..story import authors
from ..style.offline import fit_style
from . import backends
from .code import code_version

SHEET_COLUMNS = 4
# How each stage packs an item into the cache; part of every key, so raise it when
# the packing changes (the code that makes items is versioned by ``code.code_version``).
ITEM_FORMAT = {"movie_plots": 1, "style_banks": 2, "keyframes": 1, "qa_pairs": 3, "eval_scores": 1}


class StepError(RuntimeError):
    """One or more items failed; the message names them. Finished items are cached."""


@dataclass
class StepResult:
    stage: str
    files: list[Path]
    written: list[str]  # files whose content changed this run
    data_version: str  # hash of every output file's content
    hits: int
    misses: int
    redone: list[str]  # items computed (not taken from the cache) this run
    counts: dict[str, int]
    preview: pl.DataFrame | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _run_items(
    cache: ItemCache, items: list[tuple[str, str, Callable[[], bytes]]]
) -> dict[str, bytes]:
    """Take every (name, key, compute) item from the cache or compute it; collect failures."""
    out: dict[str, bytes] = {}
    failures: list[str] = []
    for name, key, compute in items:
        try:
            out[name] = cache.get_or_compute(key, compute, item=name)
        except Exception as exc:  # noqa: BLE001 - reported with the item's name below
            records = getattr(exc, "records", None)
            if records is not None:  # a model could not write this item: kept, and the run goes on
                cache.quarantined.extend(as_row(r) for r in records)
                continue
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
    if failures:
        raise StepError(
            f"{cache.dir.name}: {len(failures)} of {len(items)} item(s) failed "
            f"({len(out)} done and cached):\n  " + "\n  ".join(failures)
        )
    return out


def _finish(stage: str, root: Path, files: dict[Path, bytes], cache: ItemCache, t0: float, **kw) -> StepResult:
    written = [str(p.relative_to(root)) for p, data in files.items() if write_if_changed(p, data)]
    version = digest(sorted((str(p.relative_to(root)), bytes_digest(d)) for p, d in files.items()))
    return StepResult(
        stage=stage, files=sorted(files), written=written, data_version=version, hits=cache.hits,
        misses=cache.misses, redone=cache.missed, seconds=time.perf_counter() - t0, **kw,
    )


# ---------------------------------------------------------------- movie_plots
def write_movie_plots(root: Path, params: Params) -> StepResult:
    """Themes -> three-level story expansion -> the seven plot tables."""
    t0 = time.perf_counter()
    p = params.movie_plots
    themes = load_themes(root, p)
    writer = backends.STORY_WRITERS[p.writer](p, root)
    cache = ItemCache(root, "movie_plots")
    code = code_version("movie_plots")

    def compute(theme: str, movie_id: str) -> Callable[[], bytes]:
        return lambda: plot_to_json(writer.write(theme, movie_id, p.seed, p.substories, p.tinystories, p.frames))

    items = []
    for theme in themes:
        mid = movie_id_for(theme)
        key = digest("movie_plots", ITEM_FORMAT["movie_plots"], writer.identity(), code, theme, p.seed,
                     p.substories, p.tinystories, p.frames)
        items.append((mid, key, compute(theme, mid)))
    for path in story_files(root, p):  # the paper authors' story files, imported as they are
        mid = "story-" + movie_id_for(path.stem)
        key = digest("movie_plots", ITEM_FORMAT["movie_plots"], "authors-import", code,
                     bytes_digest(path.read_bytes()))
        items.append((mid, key, lambda path=path, mid=mid: plot_to_json(authors.read_story(path, mid))))
    done = _run_items(cache, items)

    rows: dict[str, list[dict]] = {name: [] for name in PLOT_TABLES}
    for data in done.values():
        for name, table_rows in plot_rows(plot_from_json(data)).items():
            rows[name].extend(table_rows)
    rows["quarantine"].extend(cache.quarantined)
    folder = stage_dir(root, "movie_plots")
    files = {}
    for name in PLOT_TABLES:
        df = rows_table(name, rows[name])
        validate(name, df, where=f"movie_plots/{name}.parquet")
        files[folder / f"{name}.parquet"] = table_bytes(df)
    frames = rows_table("frames", rows["frames"])
    counts = {"movies": len(done), "frames": len(rows["frames"]), "dialogue_lines": len(rows["dialogue"]),
              "plot_qa": len(rows["plot_qa"]), "substories": len(rows["substories"]),
              "quarantined": len(rows["quarantine"])}
    preview = rows_table("movies", rows["movies"]).select("movie_id", "title", "genre", "style_keyword", "theme")
    extra = {"actions": frames["action"].value_counts().sort("action").to_dicts()}
    if hasattr(writer, "usage"):
        extra["llm_usage"] = writer.usage()
    if rows["quarantine"]:
        extra["quarantine"] = [{k: str(v)[:200] for k, v in r.items() if k != "prompt"} for r in rows["quarantine"][:20]]
    return _finish("movie_plots", root, files, cache, t0, counts=counts, preview=preview, extra=extra)


# ---------------------------------------------------------------- style_banks
def learn_style_banks(root: Path, params: Params) -> StepResult:
    """Per movie: reference images from its style description, and the style fitted to them."""
    t0 = time.perf_counter()
    p = params.style_banks
    plots = read_plots(root)
    learner = backends.STYLE_LEARNERS[p.learner](p, root)
    cache = ItemCache(root, "style_banks")
    code = code_version("style_banks")

    def compute(plot: MoviePlot) -> Callable[[], bytes]:
        def run() -> bytes:
            refs, style = learner.learn(plot.movie, p.references, p.size, item_seed(p.seed, plot.movie.movie_id))
            # Every learner's style is also described in the offline terms (palette, grain, ...)
            # so styles of any backend can be compared in one table.
            look = style if isinstance(style, StyleParams) else fit_style(refs)
            extra = style.files() if hasattr(style, "files") else {}
            return pack_shard([("params.json", json.dumps(style.to_dict(), sort_keys=True).encode()),
                               ("look.json", json.dumps(look.to_dict(), sort_keys=True).encode()),
                               ("references.png", png_bytes(contact_sheet(refs, SHEET_COLUMNS))),
                               *((f"files/{name}", data) for name, data in sorted(extra.items()))])
        return run

    items = []
    for mid, plot in plots.items():
        m = plot.movie
        key = digest("style_banks", ITEM_FORMAT["style_banks"], learner.identity(), code, mid, m.style_description, m.style_keyword,
                     p.references, p.size, p.seed)
        items.append((mid, key, compute(plot)))
    done = _run_items(cache, items)

    folder = stage_dir(root, "style_banks")
    files: dict[Path, bytes] = {}
    rows = []
    for mid, data in done.items():
        members = shard_members(data)
        look = json.loads(members["look.json"])
        files[folder / "references" / f"{mid}.png"] = members["references.png"]
        for name, blob in members.items():
            if name.startswith("files/"):
                files[folder / "embeddings" / mid / name.removeprefix("files/")] = blob
        rows.append({
            "movie_id": mid, "learner": learner.identity(), "references": p.references,
            "reference_sheet": f"references/{mid}.png", "style_keyword": plots[mid].movie.style_keyword,
            "palette": ["#%02x%02x%02x" % tuple(c) for c in look["palette"]],
            "line_weight": int(look["line_weight"]), "texture_kind": str(look["texture_kind"]),
            "texture": float(look["texture"]), "lighting": float(look["lighting"]),
            "grain": float(look["grain"]), "params_json": members["params.json"].decode(),
        })
    table = rows_table("styles", rows)
    validate("styles", table, where="style_banks/styles.parquet")
    files[folder / "styles.parquet"] = table_bytes(table)
    remove_stale(folder / "references", {f"{mid}.png" for mid in done}, "*.png")
    remove_stale(folder / "embeddings", {str(p.relative_to(folder / "embeddings")) for p in files
                                        if p.is_relative_to(folder / "embeddings")}, "*/*")
    return _finish("style_banks", root, files, cache, t0, counts={"movies": len(done)},
                   preview=table.select("movie_id", "style_keyword", "palette", "texture_kind", "grain"))


def read_styles(root: Path) -> dict[str, Any]:
    """Each movie's learned style, as the object its learner made (offline params or a token)."""
    folder = stage_dir(root, "style_banks")
    table = read_table(folder / "styles.parquet", "styles")
    styles = {}
    for r in table.iter_rows(named=True):
        d = json.loads(r["params_json"])
        if d.get("kind") == "textual_inversion":
            from ..models.diffusion import TextualInversionStyle

            extra = folder / "embeddings" / r["movie_id"]
            files = {p.name: p.read_bytes() for p in sorted(extra.glob("*"))} if extra.is_dir() else {}
            styles[r["movie_id"]] = TextualInversionStyle.from_dict(d, files)
        else:
            styles[r["movie_id"]] = StyleParams.from_dict(d)
    return styles


# ---------------------------------------------------------------- keyframes
def render_keyframes(root: Path, params: Params) -> StepResult:
    """Every frame drawn in its movie's learned style; one tar shard of PNGs per movie."""
    t0 = time.perf_counter()
    p = params.keyframes
    plots = read_plots(root)
    styles = read_styles(root)
    renderer = backends.RENDERERS[p.renderer](p, root)
    cache = ItemCache(root, "keyframes")
    code = code_version("keyframes")

    def compute(plot: MoviePlot, style: Any) -> Callable[[], bytes]:
        def run() -> bytes:
            mid = plot.movie.movie_id
            images = renderer.render(plot, style, p.width, p.height, item_seed(p.seed, mid))
            return pack_shard([(f"{mid}/{i:05d}.png", png_bytes(img)) for i, img in enumerate(images)])
        return run

    items = []
    for mid, plot in plots.items():
        if mid not in styles:
            raise StepError(f"keyframes: movie {mid!r} has no style in style_banks/styles.parquet")
        drawn = [as_row(f) for f in plot.frames] + [as_row(c) for c in plot.movie.characters]
        key = digest("keyframes", ITEM_FORMAT["keyframes"], renderer.identity(), code, mid, drawn, styles[mid].to_dict(),
                     plot.movie.style_keyword, p.width, p.height, p.seed)
        items.append((mid, key, compute(plot, styles[mid])))
    done = _run_items(cache, items)

    folder = stage_dir(root, "keyframes")
    files: dict[Path, bytes] = {}
    rows = []
    for mid, shard in done.items():
        members = shard_members(shard)
        if len(members) != len(plots[mid].frames):
            raise StepError(f"keyframes: movie {mid!r}: {len(members)} images for {len(plots[mid].frames)} frames")
        files[folder / "shards" / f"{mid}.tar"] = shard
        for i, name in enumerate(sorted(members)):
            rows.append({"movie_id": mid, "frame_index": i, "shard": f"shards/{mid}.tar", "member": name,
                         "width": p.width, "height": p.height, "sha": bytes_digest(members[name])})
    table = rows_table("keyframes", rows)
    validate("keyframes", table, where="keyframes/keyframes.parquet")
    files[folder / "keyframes.parquet"] = table_bytes(table)
    remove_stale(folder / "shards", {f"{mid}.tar" for mid in done}, "*.tar")
    return _finish("keyframes", root, files, cache, t0, counts={"movies": len(done), "keyframes": len(rows)},
                   preview=table.head(8))


def read_keyframes(root: Path, movie_id: str) -> list[np.ndarray]:
    """One movie's keyframes, in frame order."""
    members = read_shard(stage_dir(root, "keyframes") / "shards" / f"{movie_id}.tar")
    return [load_image(members[name]) for name in sorted(members)]


# ---------------------------------------------------------------- qa_pairs
def write_qa_pairs(root: Path, params: Params) -> StepResult:
    """Level and grounded QA pairs through the quality gates; what fails one is kept in dropped.parquet."""
    from ..models.embed import TextEmbedder

    t0 = time.perf_counter()
    p = params.qa_pairs
    plots = read_plots(root)
    index = read_table(stage_dir(root, "keyframes") / "keyframes.parquet", "keyframes")
    drawn = dict(index.group_by("movie_id").len().iter_rows())
    writer = backends.QA_WRITERS[p.writer](p, root)
    embedder = TextEmbedder(p.embedder, Path(root) / backends.EMBED_CACHE)
    cache = ItemCache(root, "qa_pairs")
    code = code_version("qa_pairs")
    gate_params = {"min_answer_words": p.min_answer_words, "max_answer_words": p.max_answer_words,
             "near_duplicate_threshold": p.near_duplicate_threshold, "max_qtype_share": p.max_qtype_share}

    def compute(plot: MoviePlot, frames: int) -> Callable[[], bytes]:
        def run() -> bytes:
            batch = writer.write(plot, p.grounded_per_frame, p.max_qtype_share, p.seed)
            kept, dropped = gates.apply_gates(plot, list(batch.qas), frames, embedder, **gate_params)
            return json.dumps({"qa": [as_row(q) for q in kept], "dropped": dropped,
                               "quarantine": [as_row(q) for q in batch.quarantine]}).encode()
        return run

    items = []
    for mid, plot in plots.items():
        key = digest("qa_pairs", ITEM_FORMAT["qa_pairs"], writer.identity(), code, plot_to_json(plot).decode(),
                     p.grounded_per_frame, p.seed, gate_params, p.embedder.model, drawn.get(mid, 0))
        items.append((mid, key, compute(plot, drawn.get(mid, 0))))
    done = _run_items(cache, items)

    items_out = [json.loads(data) for data in done.values()]
    rows = [row for item in items_out for row in item["qa"]]
    dropped = [row for item in items_out for row in item["dropped"]]
    quarantined = [row for item in items_out for row in item["quarantine"]] + cache.quarantined
    table = rows_table("qa", rows)
    validate("qa", table, where="qa_pairs/qa.parquet")
    folder = stage_dir(root, "qa_pairs")
    files = {folder / "qa.parquet": table_bytes(table)}
    for name, table_rows in (("quarantine", quarantined), ("dropped", dropped)):
        extra_table = rows_table(name, table_rows)
        validate(name, extra_table, where=f"qa_pairs/{name}.parquet")
        files[folder / f"{name}.parquet"] = table_bytes(extra_table)
    shares = table["qtype"].value_counts(normalize=True).sort("qtype")
    by_gate: dict[str, int] = {}
    for row in dropped:
        by_gate[row["gate"]] = by_gate.get(row["gate"], 0) + 1
    extra: dict[str, Any] = {"qtype_share": dict(zip(shares["qtype"], shares["proportion"])), "dropped_by_gate": by_gate}
    if hasattr(writer, "usage"):
        extra["llm_usage"] = writer.usage()
    return _finish("qa_pairs", root, files, cache, t0,
                   counts={"movies": len(done), "qa_pairs": len(rows),
                           "grounded": int(table["qtype"].is_in(GROUNDED_QTYPES).sum()),
                           "dropped": len(dropped), "quarantined": len(quarantined)},
                   preview=table.select("qa_id", "qtype", "question", "answer").head(10), extra=extra)


def read_qa(root: Path) -> list[QA]:
    table = read_table(stage_dir(root, "qa_pairs") / "qa.parquet", "qa")
    return [
        QA(**{**r, "options": tuple(r["options"]), "evidence_frames": tuple(r["evidence_frames"])})
        for r in table.iter_rows(named=True)
    ]


# ---------------------------------------------------------------- eval_scores
def evaluate_dataset(root: Path, params: Params) -> StepResult:
    """Accuracy per answerer, evidence retrieval, style consistency, diversity -> metrics.json + charts."""
    from ..evaluate import charts, metrics
    from ..models.embed import TextEmbedder

    t0 = time.perf_counter()
    p = params.eval_scores
    plots = read_plots(root)
    qas = read_qa(root)
    index = read_table(stage_dir(root, "keyframes") / "keyframes.parquet", "keyframes")
    answerers = [backends.ANSWERERS[name](p, root) for name in p.answerers]
    embedder = TextEmbedder(p.embedder, Path(root) / backends.EMBED_CACHE)
    clip = None
    if p.clip_model:
        from ..models.clip import ClipEmbedder

        clip = ClipEmbedder(p.clip_model)
    cache = ItemCache(root, "eval_scores")
    code = code_version("eval_scores")
    identities = [a.identity() if hasattr(a, "identity") else a.name for a in answerers]
    by_movie: dict[str, list[QA]] = {mid: [] for mid in plots}
    for qa in qas:
        by_movie[qa.movie_id].append(qa)
    shas = {mid: index.filter(pl.col("movie_id") == mid).sort("frame_index")["sha"].to_list() for mid in plots}
    text = embedder if "text" in p.retrievers else None

    def compute(mid: str) -> Callable[[], bytes]:
        def run() -> bytes:
            scores = metrics.movie_scores(plots[mid], by_movie[mid], read_keyframes(root, mid), answerers, text, clip)
            return json.dumps(scores).encode()
        return run

    items = []
    for mid, plot in plots.items():
        key = digest("eval_scores", ITEM_FORMAT["eval_scores"], code, identities, p.seed, p.retrievers, p.clip_model,
                     p.embedder.model, plot_to_json(plot).decode(), [as_row(q) for q in by_movie[mid]], shas[mid])
        items.append((mid, key, compute(mid)))
    scores = {mid: json.loads(data) for mid, data in _run_items(cache, items).items()}
    ordered = [qa for mid in plots for qa in by_movie[mid]]
    covered = {a.name: a.answers() for a in answerers if hasattr(a, "answers")}
    dedup = embedder.encode([gates.dedup_text(qa) for qa in ordered]) if ordered else None
    summary = metrics.summarize(plots, ordered, scores, covered, dedup, params.qa_pairs.near_duplicate_threshold)

    folder = stage_dir(root, "eval_scores")
    sims = metrics.style_similarities({m: s["descriptors"] for m, s in scores.items()})
    files = {folder / "metrics.json": (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode(),
             folder / "plots" / "qtype_mix.png": charts.qtype_mix_png(summary["qtype_share"]),
             folder / "plots" / "accuracy.png": charts.accuracy_png(summary["accuracy"]),
             folder / "plots" / "style.png": charts.style_png(sims["within"], sims["across"])}
    for name, data in charts.plot_tables(summary).items():
        files[folder / "plots" / name] = data
    return _finish("eval_scores", root, files, cache, t0, counts=summary["counts"],
                   extra={"metrics": summary, "embeddings": embedder.stats()})


STEPS: dict[str, Callable[[Path, Params], StepResult]] = {
    "movie_plots": write_movie_plots,
    "style_banks": learn_style_banks,
    "keyframes": render_keyframes,
    "qa_pairs": write_qa_pairs,
    "eval_scores": evaluate_dataset,
}
