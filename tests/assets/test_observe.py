"""The instance records the data on disk, however it got there: a run records each movie's files,
and ``observe`` records files that DVC put in place with no run (``dvc checkout``, its run-cache)."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from dreamframe_assets.core.ids import movie_id_for
from dreamframe_assets.core.store import stage_dir
from dreamframe_assets.core.store import MOVIES
from dreamframe_assets.pipeline.movies import NO_FILES, disk_version, files_version
from dreamframe_assets.pipeline.steps import PER_MOVIE
from dreamframe_assets.runs import latest_versions, observe

from ..conftest import TINY_THEMES, materialize

IDS = [movie_id_for(t) for t in TINY_THEMES]


def test_a_movies_version_is_that_of_its_files_however_they_were_written(tmp_path):
    folder = tmp_path / "keyframes"
    files = {folder / MOVIES / "m1.json": b"{}", folder / "shards" / "m1.tar": b"frames",
             folder / "shards" / "m10.tar": b"another movie's frames", folder / "keyframes.parquet": b"all movies"}
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    written = disk_version(folder, "m1")
    assert written == files_version(folder, [(p, d) for p, d in files.items() if p.stem == "m1"])
    assert disk_version(folder, "m2") == NO_FILES
    (folder / "shards" / "m10.tar").write_bytes(b"other frames")
    assert disk_version(folder, "m1") == written
    (folder / "shards" / "m1.tar").write_bytes(b"other frames")
    assert disk_version(folder, "m1") != written
    assert disk_version(folder) == files_version(folder, [(p, p.read_bytes()) for p in files])


@pytest.fixture
def recorded(built_project):
    """A copy of the built project, and an instance in which a run of each asset recorded it."""
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(built_project, instance=instance).success
    return built_project, instance


def seen(events) -> set[tuple[str, str | None, str]]:
    return {(e.asset_key.to_user_string(), e.partition, e.tags["dagster/data_version"]) for e in events}


@pytest.mark.integration
def test_a_run_of_several_movies_records_each_movies_files(recorded):
    root, instance = recorded
    for stage in PER_MOVIE:
        versions = latest_versions(instance, stage)
        assert versions == {mid: disk_version(stage_dir(root, stage), mid) for mid in IDS}, stage
        assert len(set(versions.values())) == len(IDS) and NO_FILES not in versions.values(), stage
    assert latest_versions(instance, "eval_scores") == {None: disk_version(stage_dir(root, "eval_scores"))}
    assert observe(root, instance) == []  # the instance already holds what is on disk


@pytest.mark.integration
def test_observe_records_a_movie_whose_files_changed_without_a_run(recorded):
    root, instance = recorded
    mid = IDS[1]
    folder = stage_dir(root, "movie_plots")
    path = folder / MOVIES / f"{mid}.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=1))  # other bytes, as a checkout leaves
    others = {stage: latest_versions(instance, stage) for stage in PER_MOVIE[1:]}

    events = observe(root, instance)
    on_disk = disk_version(folder, mid)
    assert seen(events) == {("movie_plots", mid, on_disk)}
    assert events[0].metadata["source"].value == "disk"
    assert latest_versions(instance, "movie_plots")[mid] == on_disk
    assert {stage: latest_versions(instance, stage) for stage in PER_MOVIE[1:]} == others
    assert observe(root, instance) == []

    # a run of that movie writes its files again and records them: nothing left to observe
    assert materialize(root, ["movie_plots"], instance=instance, movies=[mid]).success
    assert disk_version(folder, mid) != on_disk
    assert latest_versions(instance, "movie_plots")[mid] == disk_version(folder, mid)
    assert observe(root, instance) == []


@pytest.mark.integration
def test_a_failed_movie_leaves_the_other_movies_recorded_and_its_gone_files_observed(recorded):
    root, instance = recorded
    mid = IDS[2]
    (stage_dir(root, "style_banks") / MOVIES / f"{mid}.json").unlink()  # keyframes cannot draw it
    assert not materialize(root, ["keyframes"], instance=instance).success
    versions = latest_versions(instance, "keyframes")
    assert all(versions[m] == disk_version(stage_dir(root, "keyframes"), m) for m in IDS[:2])

    events = observe(root, instance)
    assert seen(events) == {("style_banks", mid, disk_version(stage_dir(root, "style_banks"), mid)),
                            ("keyframes", mid, NO_FILES)}
    assert observe(root, instance) == []


@pytest.mark.integration
def test_observe_records_every_asset_in_a_new_instance(built_project):
    # a clone and `dvc pull`: data on disk, an instance that has never seen it
    instance = dg.DagsterInstance.ephemeral()
    events = observe(built_project, instance)
    expected = {(stage, mid, disk_version(stage_dir(built_project, stage), mid)) for stage in PER_MOVIE for mid in IDS}
    expected.add(("eval_scores", None, disk_version(stage_dir(built_project, "eval_scores"))))
    assert seen(events) == expected
    assert instance.get_dynamic_partitions("movies") == IDS
    assert observe(built_project, instance) == []


@pytest.mark.integration
def test_the_command_says_which_assets_it_recorded(built_project, monkeypatch):
    from typer.testing import CliRunner

    from dreamframe_assets.cli import app

    monkeypatch.setenv("DAGSTER_HOME", str(built_project / ".dagster"))
    runner = CliRunner()
    first = runner.invoke(app, ["observe", "--root", str(built_project)])
    assert first.exit_code == 0, first.output
    assert "keyframes: 3 movie(s) differ from the last materialization; recorded" in first.output
    assert "eval_scores: differs from the last materialization; recorded" in first.output
    again = runner.invoke(app, ["observe", "--root", str(built_project)])
    assert again.exit_code == 0, again.output
    assert "all assets agree with the instance" in again.output and "recorded" not in again.output
