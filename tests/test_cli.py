"""The dreamframe command as DVC stages and users call it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def dreamframe(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DAGSTER_HOME": str(root / ".dagster")}
    env.pop("DREAMFRAME_ROOT", None)
    return subprocess.run([BIN / "dreamframe", *args], cwd=root, env=env, capture_output=True, text=True)


def test_bad_params_fail_before_any_work_naming_the_key(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["keyframes"]["width"] = -5
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    run = dreamframe(project, "materialize", "movie_plots")
    assert run.returncode == 2
    assert "keyframes.width" in run.stderr
    assert not (project / "data").exists()


def test_materialize_records_in_the_project_instance_and_summary_reports(warm_project):
    project = warm_project
    run = dreamframe(project, "materialize")
    assert run.returncode == 0, run.stderr
    from dagster import AssetKey, DagsterInstance

    instance = DagsterInstance.from_config(str(project / ".dagster"))
    assert instance.get_latest_materialization_event(AssetKey("eval_scores")) is not None
    summary = dreamframe(project, "summary")
    assert summary.returncode == 0
    assert "3 movies, 36 keyframes" in summary.stdout
    assert str(project / "data") in summary.stdout.replace("\n", "")
    check = dreamframe(project, "check")
    assert check.returncode == 0 and "all checks passed" in check.stdout


def test_unknown_asset_is_a_usage_error(project):
    run = dreamframe(project, "materialize", "movie_plot")
    assert run.returncode != 0 and "unknown asset" in run.stderr


def test_export_writes_the_authors_format(warm_project, tmp_path):
    project = warm_project
    assert dreamframe(project, "materialize", "movie_plots").returncode == 0
    run = dreamframe(project, "export", str(tmp_path / "out"), "--format", "authors")
    assert run.returncode == 0, run.stderr
    files = sorted((tmp_path / "out").glob("*.json"))
    assert len(files) == 3
    import json

    story = json.loads(files[0].read_text())
    assert set(story) == {"overview", "character", "img_diag", "QA"}


def test_export_for_training_and_show(built_project, tmp_path):
    project = built_project
    run = dreamframe(project, "export", str(tmp_path / "ex"), "-f", "llava", "-f", "hf", "--fps", "1")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "ex" / "llava.json").exists() and (tmp_path / "ex" / "README.md").exists()
    assert len(list((tmp_path / "ex" / "movies").glob("*.mp4"))) == 3
    show = dreamframe(project, "show", "lighthouse", "--out", str(tmp_path / "sheet.png"))
    assert show.returncode == 0, show.stderr
    assert "QA pairs" in show.stdout and (tmp_path / "sheet.png").stat().st_size > 0
    bad = dreamframe(project, "export", str(tmp_path / "x"), "-f", "tiktok")
    assert bad.returncode != 0 and "unknown format" in bad.stderr


def test_errors_are_one_line(project):
    (project / "data").mkdir()
    run = dreamframe(project, "summary")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    run = dreamframe(project, "show", "anything")
    assert run.returncode == 1 and "Traceback" not in run.stderr and "missing" in run.stderr


def test_warnings_print_user_text_as_it_is_one_line_each(project):
    """Text from themes and models is printed literally (no markup), each message on one line."""
    (project / "themes.txt").write_text("[/] A cat [bold]sails[/bold]\n[/]  a cat [bold]sails[/bold]\n"
                                        + "A long " + "word " * 3000 + "\n")
    run = dreamframe(project, "status")
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning")]
    assert warnings == [
        "warning themes.txt:2: theme '[/] a cat [bold]sails[/bold]' is given twice (also at themes.txt:1); built once",
        "warning themes.txt:3: theme 'A long word word word word word word word word word word wor...' has "
        "15,006 characters (at most 1,000: one line); left out",
    ]


def test_themes_writes_a_themes_file_and_never_overwrites_other_themes(project):
    run = dreamframe(project, "themes", "--count", "40", "--seed", "3", "--out", "many.txt")
    assert run.returncode == 0, run.stderr
    lines = [line for line in (project / "many.txt").read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == len(set(lines)) == 40
    again = dreamframe(project, "themes", "--count", "40", "--seed", "3", "--out", "many.txt")
    assert again.returncode == 0  # the same themes: nothing to refuse
    other = dreamframe(project, "themes", "--count", "41", "--out", "many.txt")
    assert other.returncode == 2 and "many.txt: exists and holds other themes" in other.stderr
    assert len((project / "many.txt").read_text().splitlines()) == 41  # untouched
