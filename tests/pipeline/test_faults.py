"""Crashes, concurrent runs and damaged files: each costs only the work in flight, never
corrupts data, never serves stale data."""

from __future__ import annotations

import os
import tarfile

import pytest

from dreamframe_assets.core.params import load_params
from dreamframe_assets.core.store import PLOT_TABLES, DamagedFile, read_table
from dreamframe_assets.dataset import export
from dreamframe_assets.pipeline.steps import STEPS, read_keyframes

from ..conftest import copy_built, warm_copy
from ..faults import inject, start, tree

pytestmark = pytest.mark.integration
SEED = int(os.environ.get("DREAMFRAME_FAULT_SEED", "7"))


def test_kill_9_at_random_points_of_every_asset_loses_nothing(built_dataset, tmp_path):
    """Five kills, one aimed at each asset (after a random number of its movies, plus a random
    delay), each followed by a re-run: the re-runs finish, no movie on disk at a kill is
    computed again, and the dataset is the one a run that was never killed writes."""
    root = warm_copy(built_dataset, tmp_path / "project")
    report = inject(root, rounds=5, seed=SEED)
    assert report.faults >= 3, report.log  # most kills land inside the run
    assert report.recovered == report.faults
    assert report.lost == [], report.log
    assert tree(root) == tree(built_dataset)
    for name in PLOT_TABLES:
        read_table(root / "data/movie_plots" / f"{name}.parquet", name)
    assert not [p for p in (root / "data").rglob("*.tmp")]  # no half-written file left behind


def test_two_runs_at_once_wait_for_each_other_and_agree(built_dataset, tmp_path):
    root = warm_copy(built_dataset, tmp_path / "project")
    first, second = start(root), start(root)
    runs = [p.communicate() + (p.returncode,) for p in (first, second)]
    assert [rc for *_, rc in runs] == [0, 0], runs
    assert any("waiting for it to finish" in err for _, err, _ in runs)  # the second says why it waits
    assert tree(root) == tree(built_dataset)


def test_a_damaged_shard_is_reported_then_rewritten_and_a_damaged_entry_recomputed(built_dataset, tmp_path):
    root = copy_built(built_dataset, tmp_path / "project")
    params = load_params(root)
    shards = sorted((root / "data/keyframes/shards").glob("*.tar"))
    mid = shards[0].stem
    shards[0].write_bytes(shards[0].read_bytes()[: shards[0].stat().st_size // 3])  # truncated
    blob = bytearray(shards[1].read_bytes())
    with tarfile.open(shards[1]) as tar:
        member = tar.getmembers()[2]
        blob[member.offset_data + member.size // 2] ^= 0x10  # one bit of one PNG
    shards[1].write_bytes(bytes(blob))

    with pytest.raises(DamagedFile, match=f"data/keyframes/shards/{mid}.tar: cannot be read"):
        read_keyframes(root, mid)
    with pytest.raises(DamagedFile, match=rf"{shards[1].name}: keyframe .* damaged or altered"):
        read_keyframes(root, shards[1].stem)

    with pytest.raises(DamagedFile):  # nor exported
        export.export_frames(root, tmp_path / "out")

    entries = sorted(p for p in (root / ".dreamframe/cache/qa_pairs").rglob("*") if p.is_file())
    entries[0].write_bytes(entries[0].read_bytes()[:-7])
    result = STEPS["keyframes"](root, params)
    assert result.counts["files_repaired"] == 2 and result.misses == 0  # from the cache, not redrawn
    qa = STEPS["qa_pairs"](root, params)
    assert (qa.counts["cache_damaged"], qa.misses) == (1, 1)
    assert tree(root) == tree(built_dataset)
