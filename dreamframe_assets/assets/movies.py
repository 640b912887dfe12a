"""Movies as Dagster partitions: one dynamic partition per movie, kept in step with params.yaml.

Every per-movie asset shares the ``movies`` partitions, so the UI shows each movie's state
in each asset, and a user can materialize one movie or backfill the failed or missing
ones. A backfill of many movies runs as one run (``BackfillPolicy.single_run``): the
stage's executor spreads them over worker processes or a Ray cluster.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ..pipeline.backends import checked_params
from ..pipeline.movies import movie_ids
from ..resources import Workspace

MOVIES = dg.DynamicPartitionsDefinition(name="movies")
# A run with this tag set to "true" gives each of its movies a fresh attempt (a new cache key
# and new model seeds), so a model is asked again; add it when launching a backfill in the UI.
RETRY_TAG = "dreamframe/retry"


def partition_changes(have: list[str], want: list[str]) -> tuple[list[str], list[str]]:
    """(movies to add, movies to delete) to turn the partitions ``have`` into ``want``."""
    wanted = set(want)
    return [m for m in want if m not in set(have)], [m for m in have if m not in wanted]


def sync_movies(instance: dg.DagsterInstance, root: Path) -> list[str]:
    """Make the instance's movie partitions the movies params.yaml names; return them in order."""
    ids = movie_ids(root, checked_params(root))
    add, gone = partition_changes(instance.get_dynamic_partitions(MOVIES.name), ids)
    if add:
        instance.add_dynamic_partitions(MOVIES.name, add)
    for mid in gone:
        instance.delete_dynamic_partition(MOVIES.name, mid)
    return ids


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def movies_sensor(context: dg.SensorEvaluationContext, workspace: Workspace) -> dg.SensorResult:
    """Adds a partition for each new theme or story file and deletes those of removed ones
    (their data goes at the next materialization of each asset)."""
    ids = movie_ids(workspace.path, workspace.params())
    add, gone = partition_changes(context.instance.get_dynamic_partitions(MOVIES.name), ids)
    requests = ([MOVIES.build_add_request(add)] if add else []) + ([MOVIES.build_delete_request(gone)] if gone else [])
    return dg.SensorResult(dynamic_partitions_requests=requests)
