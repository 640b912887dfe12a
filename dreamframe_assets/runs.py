"""Launching assets in the project's Dagster instance, the way DVC stages and the CLI do.

One stage at a time, in order. A per-movie stage builds all of its movies (or the ones
asked for) in one run: a single-run backfill over the movie partitions, which the
instance records per movie just as a backfill launched from the UI would be.
"""

from __future__ import annotations

import os
from pathlib import Path

DAGSTER_YAML = "telemetry:\n  enabled: false\n"
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def use_instance(root: Path):
    """The Dagster instance in the project (``.dagster``), the one ``make ui`` shows."""
    from dagster import DagsterInstance

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(root / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
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


def materialize_stages(root: Path, stages: list[str], instance=None, movies: list[str] | None = None,
                       retry: bool = False, log_level: str = "WARNING", stop_on_failure: bool = True) -> list:
    """Materialize ``stages`` in order, each in its own run(s); stop after a failed one. Returns the runs' results."""
    import dagster as dg

    from .assets.movies import MOVIES, RETRY_TAG, sync_movies
    from .definitions import defs
    from .pipeline.steps import PER_MOVIE

    os.environ["DREAMFRAME_ROOT"] = str(root)
    instance = instance or use_instance(root)
    results = []
    for stage in stages:
        runs: list[dict[str, str]] = [{}]
        if stage in PER_MOVIE:
            ids = sync_movies(instance, root)
            unknown = [m for m in movies or [] if m not in ids]
            if unknown:
                raise ValueError(f"unknown movie(s) {unknown}: not in movie_plots.themes, themes_file or stories_dir")
            order = instance.get_dynamic_partitions(MOVIES.name)
            chosen = ids if movies is None else movies
            runs = [{RANGE_START: a, RANGE_END: b, **({RETRY_TAG: "true"} if retry else {})}
                    for a, b in partition_ranges(order, chosen)]
        for tags in runs:
            result = dg.materialize([*defs.assets, *defs.asset_checks], selection=dg.AssetSelection.assets(stage),
                                    instance=instance, resources={"workspace": defs.resources["workspace"]},
                                    raise_on_error=False, run_config=_log_config(log_level), tags=tags)
            results.append(result)
        if stop_on_failure and not all(r.success for r in results):
            break
    return results
