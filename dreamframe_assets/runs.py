"""Launching assets in the project's Dagster instance, the way DVC stages and the CLI do.

One stage at a time, in order. A per-movie stage builds its stale movies (or every one,
or the ones asked for) in one run, or a few: a single-run backfill over a range of movie
partitions, which the instance records per movie just as a backfill launched from the UI
would be.

Files that DVC puts in place (``dvc checkout``, ``dvc exp apply``, a ``dvc repro`` served from
its run-cache) come with no Dagster run: ``observe`` records them, so the UI shows what is on disk.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg

DAGSTER_YAML = "telemetry:\n  enabled: false\n"
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def use_instance(root: Path):
    """The Dagster instance in the project (``.dagster``), the one ``make ui`` shows."""
    from dagster import DagsterInstance
    from filelock import FileLock

    from .core.cache import write_atomic

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(root / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        write_atomic(home / "dagster.yaml", DAGSTER_YAML.encode())
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    # Opening the instance creates (or migrates) its databases: two runs started at once on a
    # new project would race to do it, so they take turns here.
    with FileLock(str(home / ".open.lock")):
        return DagsterInstance.get()


def partition_ranges(order: list[str], chosen: list[str]) -> list[tuple[str, str]]:
    """The fewest runs of consecutive partitions (in the instance's ``order``) covering ``chosen``."""
    wanted = set(chosen)
    ranges: list[tuple[str, str]] = []
    start = prev = None
    for key in order:
        if key in wanted:
            start = start or key
            prev = key
        elif start:
            ranges.append((start, prev))
            start = None
    if start:
        ranges.append((start, prev))
    return ranges


def merge_ranges(order: list[str], ranges: list[tuple[str, str]], most: int) -> list[tuple[str, str]]:
    """At most ``most`` ranges covering ``ranges``: the two closest (in ``order``) merged until
    there are that few. A run has a fixed cost, a movie in between a small one (a cache hit)."""
    place = {key: i for i, key in enumerate(order)}
    spans = [[place[a], place[b]] for a, b in ranges]
    while len(spans) > most:
        i = min(range(len(spans) - 1), key=lambda j: spans[j + 1][0] - spans[j][1])
        spans[i:i + 2] = [[spans[i][0], spans[i + 1][1]]]
    return [(order[a], order[b]) for a, b in spans]


def check_assets(root: Path, assets: list[str], instance=None, log_level: str = "WARNING"):
    """Run the separate checks of ``assets`` (eval_scores' checks on the dataset tables) without
    materializing anything; the per-movie assets check in their own step."""
    import dagster as dg

    from .definitions import defs

    os.environ["DREAMFRAME_ROOT"] = str(root)
    return dg.materialize([*defs.assets, *defs.asset_checks], selection=dg.AssetSelection.checks_for_assets(*assets),
                          instance=instance or use_instance(root), resources={"workspace": defs.resources["workspace"]},
                          raise_on_error=False, run_config=_log_config(log_level))


def _log_config(level: str) -> dict:
    return {"loggers": {"console": {"config": {"log_level": level}}}}


MAX_RUNS = 4  # runs of a stage at most: ranges of stale movies are merged across their smallest gaps


@dataclass
class UpToDate:
    """A per-movie stage none of whose movies is stale: no Dagster run (nothing to record);
    its dataset tables were assembled again from the movies' files (``step``)."""

    stage: str
    step: Any
    success: bool = True
    run_id: str = ""
    all_events: tuple = ()

    def asset_materializations_for_node(self, node: str) -> list:
        return []

    asset_observations_for_node = asset_materializations_for_node

    def get_asset_materialization_events(self) -> list:
        return []

    def get_asset_check_evaluations(self) -> list:
        return []


def materialize_stages(root: Path, stages: list[str], instance=None, movies: list[str] | None = None,
                       retry: bool = False, log_level: str = "WARNING", stop_on_failure: bool = True,
                       every: bool = False) -> list:
    """Materialize ``stages`` in order, each in its own run(s); stop after a failed one. Returns the runs' results.

    A per-movie stage runs over ``movies``; by default over its stale movies only
    (``steps.stale_movies``), as Dagster's "materialize stale and missing" would, so a change
    to one theme records one partition per stage, not every movie again; ``every`` runs all."""
    import dagster as dg

    from .assets.movies import MOVIES, RETRY_TAG, sync_movies
    from .core.params import load_params
    from .definitions import defs
    from .pipeline.steps import PER_MOVIE, run_stage, stale_movies

    os.environ["DREAMFRAME_ROOT"] = str(root)
    instance = instance or use_instance(root)
    params = load_params(root)
    results = []
    for stage in stages:
        runs: list[dict[str, str]] = [{}]
        if stage in PER_MOVIE:
            ids = sync_movies(instance, root)
            unknown = [m for m in movies or [] if m not in ids]
            if unknown:
                raise ValueError(f"unknown movie(s) {unknown}: not in movie_plots.themes, themes_file or stories_dir")
            order = instance.get_dynamic_partitions(MOVIES.name)
            if movies is not None:
                chosen = movies
            elif every or retry:
                chosen = ids
            else:
                chosen = stale_movies(root, params, stage, latest_versions(instance, stage))
            if not chosen:
                results.append(UpToDate(stage, run_stage(root, params, stage, [])))
                continue
            ranges = merge_ranges(order, partition_ranges(order, chosen), MAX_RUNS)
            runs = [{RANGE_START: a, RANGE_END: b, **({RETRY_TAG: "true"} if retry else {})} for a, b in ranges]
        for tags in runs:
            result = dg.materialize([*defs.assets, *defs.asset_checks], selection=dg.AssetSelection.assets(stage),
                                    instance=instance, resources={"workspace": defs.resources["workspace"]},
                                    raise_on_error=False, run_config=_log_config(log_level), tags=tags)
            results.append(result)
        if stop_on_failure and not all(r.success for r in results):
            break
    return results


def latest_versions(instance: dg.DagsterInstance, stage: str) -> dict[str | None, str]:
    """The data version the instance holds for each movie partition of ``stage`` (key None for
    eval_scores): its last materialization's, or a later observation's. A run of several movies
    and ``observe`` record a movie's own version in an observation (Dagster's current version of
    a materialized asset reads its materializations only)."""
    import dagster as dg

    from .assets.common import DATA_VERSION_TAG
    from .pipeline.steps import PER_MOVIE

    key = dg.AssetKey(stage)
    latest: dict[str | None, dg.EventLogRecord] = {}
    for kind, fetch in ((dg.DagsterEventType.ASSET_MATERIALIZATION, instance.fetch_materializations),
                        (dg.DagsterEventType.ASSET_OBSERVATION, instance.fetch_observations)):
        if stage in PER_MOVIE:
            ids = list(instance.get_latest_storage_id_by_partition(key, kind).values())
            records = fetch(dg.AssetRecordsFilter(asset_key=key, storage_ids=ids), limit=len(ids)).records if ids else []
        else:
            records = fetch(key, limit=1).records
        for record in records:
            mid = record.partition_key
            if DATA_VERSION_TAG in (record.event_log_entry.tags or {}) and (
                    mid not in latest or record.storage_id > latest[mid].storage_id):
                latest[mid] = record
    return {mid: record.event_log_entry.tags[DATA_VERSION_TAG] for mid, record in latest.items()}


def git_revision(root: Path) -> str | None:
    """The commit checked out in ``root``; None outside a git repository (or without git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def observe(root: Path, instance: dg.DagsterInstance | None = None) -> list[dg.AssetObservation]:
    """Record the data on disk where the instance holds another version: for each asset and movie
    partition whose files (``disk_version``) differ from ``latest_versions``, or that has files
    and no version, or whose files are gone, an observation of the files' data version. Nothing
    changed since the last run or observe: nothing recorded. Returns the observations recorded."""
    import dagster as dg

    from .assets.common import DATA_VERSION_TAG
    from .assets.movies import sync_movies
    from .core.store import stage_dir
    from .pipeline.code import STAGES
    from .pipeline.movies import NO_FILES, disk_version
    from .pipeline.steps import PER_MOVIE

    root = Path(root)
    instance = instance or use_instance(root)
    ids = sync_movies(instance, root)
    revision = git_revision(root)
    metadata = {"source": "disk", **({"git_revision": revision} if revision else {})}
    recorded = []
    for stage in STAGES:  # upstream first, as a run records them
        have, folder = latest_versions(instance, stage), stage_dir(root, stage)
        for mid in ids if stage in PER_MOVIE else [None]:
            version = disk_version(folder, mid)
            if have.get(mid, NO_FILES) != version:
                event = dg.AssetObservation(asset_key=stage, partition=mid, tags={DATA_VERSION_TAG: version},
                                            metadata=metadata)
                instance.report_runless_asset_event(event)
                recorded.append(event)
    return recorded
