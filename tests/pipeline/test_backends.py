"""Backends by name (params.yaml may only name ones that exist, and errors name the key),
and the code each stage runs (one list, which DVC and the asset code versions share)."""

import shutil
from pathlib import Path

import pytest
import yaml

from dreamframe_assets.core.params import ParamsError
from dreamframe_assets.pipeline import code
from dreamframe_assets.pipeline.backends import checked_params
from dreamframe_assets.pipeline.code import STAGE_CODE, code_version, dvc_deps

from ..conftest import REPO, tiny_params


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda p: p["keyframes"].update(renderer="sdxl-typo"), "keyframes.renderer: unknown backend 'sdxl-typo'"),
        (lambda p: p["eval_scores"].update(answerers=["random", "psychic"]), "eval_scores.answerers"),
        (lambda p: p["eval_scores"].update(answerers=["vlm"]), "eval_scores.vlm.model"),
        (lambda p: p["eval_scores"].update(retrievers=["clip"]), "eval_scores.clip_model"),
    ],
)
def test_unknown_backends_are_named_before_any_work(tmp_path: Path, change, key):
    params = tiny_params()
    change(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError) as info:
        checked_params(tmp_path)
    assert key in str(info.value)


def test_dvc_lists_the_code_each_stage_runs():
    """dvc.yaml's code deps are the paths ``pipeline/code.py`` hashes into the asset's code
    version, so DVC and the Dagster UI agree on when a stage's code changed."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage in STAGE_CODE:
        listed = [d for d in stages[stage]["deps"] if d.startswith("dreamframe_assets/")]
        assert listed == dvc_deps(stage), stage
        assert all((REPO / d).exists() for d in listed), stage


def test_code_version_follows_the_stage_code(tmp_path: Path, monkeypatch):
    before = {stage: code_version(stage) for stage in STAGE_CODE}
    fake = tmp_path / "dreamframe_assets"
    shutil.copytree(code.PACKAGE, fake, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code, "PACKAGE", fake)
    assert {stage: code_version(stage) for stage in STAGE_CODE} == before
    (fake / "evaluate" / "metrics.py").write_text("# edited\n", encoding="utf-8")
    after = {stage: code_version(stage) for stage in STAGE_CODE}
    assert [s for s in STAGE_CODE if after[s] != before[s]] == ["eval_scores"]
