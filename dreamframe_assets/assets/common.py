"""What every asset does with a step's result: data version, metadata, contract check."""

from __future__ import annotations

import base64
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from ..core.schemas import ContractError
from ..core.store import PLOT_TABLES, read_table, stage_dir
from ..pipeline.code import code_version
from ..core.cache import digest
from ..pipeline.movies import MovieState, disk_version, movie_version
from ..pipeline.steps import StepResult, run_stage
from .movies import MOVIES, RETRY_TAG

__all__ = ["DATA_VERSION_TAG", "STAGE_TABLES", "contract_check", "image_md", "movie_asset", "run_movies",
           "to_result"]

DATA_VERSION_TAG = "dagster/data_version"  # the tag that holds an asset event's data version


def _table(df: pl.DataFrame) -> dg.TableMetadataValue:
    df = df.head(10)
    columns = [dg.TableColumn(name, "string") for name in df.columns]
    records = [dg.TableRecord({k: str(v)[:120] for k, v in row.items()}) for row in df.iter_rows(named=True)]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def image_md(title: str, png: bytes) -> dg.MarkdownMetadataValue:
    """A PNG inline in the UI's metadata panel."""
    return dg.MetadataValue.md(f"### {title}\n![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


def to_result(result: StepResult, root: Path, params: Any = None, check_results: list | None = None,
              **extra: Any) -> dg.MaterializeResult:
    """A step's result as a materialization: the data version of the stage's files on disk
    (``disk_version``, what ``dreamframe observe`` compares) plus metadata (counts, preview, cache
    hits and misses, timings, the stage's params, and ``extra``)."""
    metadata: dict = {**run_numbers(result, root), "redone": dg.MetadataValue.json(result.redone),
                      "files_written": dg.MetadataValue.json(result.written)}
    metadata.update(run_details(result, params))
    metadata.update(extra)
    version = disk_version(stage_dir(root, result.stage))
    return dg.MaterializeResult(data_version=dg.DataVersion(version), metadata=metadata,
                                check_results=check_results)


def run_numbers(result: StepResult, root: Path) -> dict:
    """What a run did, in numbers: small whatever the number of movies."""
    return {
        "path": dg.MetadataValue.path(str(stage_dir(root, result.stage))),
        "no_op": result.misses == 0 and not result.written,
        "cache_hits": result.hits,
        "cache_misses": result.misses,
        "seconds": round(result.seconds, 3),
        **{f"count_{k}": v for k, v in result.counts.items()},
    }


def run_details(result: StepResult, params: Any = None) -> dict:
    """A preview of the rows, the step's extra facts and the stage's params."""
    details: dict = {}
    if result.preview is not None:
        details["preview"] = _table(result.preview)
    for key, value in result.extra.items():
        details[key] = dg.MetadataValue.json(value)
    if params is not None:
        details["params"] = dg.MetadataValue.json(params.model_dump())
    return details


def contract_check(root: Path, stage: str, tables: tuple[str, ...], files: tuple[str, ...] = (),
                   check_name: str | None = None) -> dg.AssetCheckResult:
    """Re-read the stage's tables from disk and validate them against their schemas."""
    folder = stage_dir(root, stage)
    problems = []
    rows = {}
    for table, name in zip(tables, files or tuple(f"{t}.parquet" for t in tables)):
        try:
            rows[name] = read_table(folder / name, table).height
        except (ContractError, FileNotFoundError, OSError) as exc:
            problems.append(str(exc))
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="\n".join(problems) or f"{len(tables)} table(s) match their schemas",
        metadata={"rows": dg.MetadataValue.json(rows)},
    )


LISTED = 20  # names listed in a per-movie materialization's metadata (the counts say how many in all)
# The dataset tables each per-movie asset assembles (data/<asset>/<table>.parquet).
STAGE_TABLES: dict[str, tuple[str, ...]] = {"movie_plots": PLOT_TABLES, "style_banks": ("styles",),
                                            "keyframes": ("keyframes",), "qa_pairs": ("qa", "quarantine", "dropped")}
POOLS = {"movie_plots": "llm", "qa_pairs": "llm", "style_banks": "gpu", "keyframes": "gpu"}


def movie_asset(stage: str, group: str, description: str, deps: list[str], extra_checks: tuple[str, ...] = ()):
    """A per-movie asset: partitioned by movie, one run for a backfill, its checks run in the
    same step (``<stage>_contract``, ``<stage>_quarantine`` and ``extra_checks``), its
    concurrency pool ``llm`` (API-bound) or ``gpu``."""
    checks = [dg.AssetCheckSpec(f"{stage}_contract", asset=stage, blocking=True,
                                description="The movies' rows and the dataset tables match their pandera schemas."),
              dg.AssetCheckSpec(f"{stage}_quarantine", asset=stage,
                                description="No movie of the run had a part a model could not write "
                                            "(retry them: dreamframe retry --quarantined).")]
    checks += [dg.AssetCheckSpec(name, asset=stage, blocking=True) for name in extra_checks]
    def decorate(fn):
        with warnings.catch_warnings():  # backfill_policy is marked beta; it is what single-run backfills need
            warnings.simplefilter("ignore", dg.BetaWarning)
            return dg.asset(name=stage, group_name=group, deps=deps, partitions_def=MOVIES,
                            backfill_policy=dg.BackfillPolicy.single_run(), code_version=code_version(stage),
                            kinds={"polars"}, pool=POOLS[stage], check_specs=checks, description=description)(fn)

    return decorate


def movie_metadata(m: MovieState, version: str) -> dict:
    """One movie's state in the asset (done, quarantined, skipped), its attempt and its data version."""
    return {"state": m.state, "attempt": m.attempt, "cached": m.cached, "movie_version": version,
            **{f"movie_{k}": v for k, v in m.counts.items()}, **({"reason": m.error[:500]} if m.error else {})}


def run_movies(context: dg.AssetExecutionContext, root: Path, params: Any, stage: str,
               checks: tuple[Callable[[StepResult], dg.AssetCheckResult], ...] = (),
               details: Callable[[StepResult], dict] | None = None) -> Iterator[Any]:
    """Build the run's movies (its partitions); on success one materialization of them all
    with the stage's checks, else one per movie that worked and a failure naming the others.
    Each movie's partition ends with its own data version (``movie_version``)."""
    retry = context.run.tags.get(RETRY_TAG, "").lower() in ("1", "true", "yes")
    result = run_stage(root, params, stage, list(context.partition_keys), retry)
    quarantined = [m.movie_id for m in result.movies.values() if m.state == "quarantined"]
    results = [contract_check(root, stage, STAGE_TABLES[stage], check_name=f"{stage}_contract"), dg.AssetCheckResult(
        check_name=f"{stage}_quarantine", passed=not quarantined, severity=dg.AssetCheckSeverity.WARN,
        description=f"quarantined: {quarantined} (dreamframe retry --quarantined)" if quarantined
        else "no movie had a part a model could not write",
    )]
    results += [check(result) for check in checks]
    # A run of many movies records its materialization once per movie: the per-movie metadata
    # stays small (numbers, the first names, the movies that are not done), and the rest (rows,
    # pictures, params) goes once into an observation of the run.
    yield dg.AssetObservation(asset_key=stage, metadata={**run_details(result, getattr(params, stage)),
                                                          **(details(result) if details else {})})
    not_done = {m.movie_id: {"state": m.state, "attempt": m.attempt, **({"error": m.error[:500]} if m.error else {})}
                for m in result.movies.values() if m.state != "done"}
    metadata = {**run_numbers(result, root),
                "redone": dg.MetadataValue.json(result.redone[:LISTED]),
                "files_written": dg.MetadataValue.json(result.written[:LISTED]),
                "count_redone": len(result.redone), "count_files_written": len(result.written),
                "movies": dg.MetadataValue.json({"states": dict(Counter(m.state for m in result.movies.values())),
                                                 "not_done": dict(list(not_done.items())[:LISTED])})}
    folder = stage_dir(root, stage)
    versions = {m.movie_id: movie_version(folder, m) for m in result.movies.values() if m.state != "failed"}
    if not result.failed:
        # one materialization per movie of the run. Dagster gives the partitions of a step one
        # data version and one metadata: for a run of one movie they are that movie's; for several,
        # the run's, and each movie's own version and metadata follow in an observation of its
        # partition (``add_asset_metadata`` per partition costs time in the number of partitions,
        # each call: quadratic in a run of 1,000 movies; materializations yielded by hand instead
        # would need the asset's output left out, and a backfill of several assets from the UI
        # would then skip the ones below)
        if len(versions) == 1:
            (m,) = result.movies.values()
            metadata.update(movie_metadata(m, versions[m.movie_id]))
        version = next(iter(versions.values())) if len(versions) == 1 else digest(sorted(versions.items()))
        yield dg.MaterializeResult(data_version=dg.DataVersion(version), metadata=metadata, check_results=results)
        if len(versions) > 1:
            for m in result.movies.values():
                yield dg.AssetObservation(asset_key=stage, partition=m.movie_id, tags={DATA_VERSION_TAG: versions[m.movie_id]},
                                          metadata={"source": "run", **movie_metadata(m, versions[m.movie_id])})
        return
    for m in result.movies.values():
        if m.state != "failed":
            yield dg.AssetMaterialization(asset_key=stage, partition=m.movie_id, tags={DATA_VERSION_TAG: versions[m.movie_id]},
                                          metadata={**metadata, **movie_metadata(m, versions[m.movie_id])})
    yield from results
    raise dg.Failure(
        description=f"{stage}: {len(result.failed)} of {len(result.movies)} movie(s) failed (the others are written): "
                    + "; ".join(f"{m.movie_id}: {m.error}" for m in result.failed),
        metadata={"failed": dg.MetadataValue.json({m.movie_id: m.error for m in result.failed})},
    )
