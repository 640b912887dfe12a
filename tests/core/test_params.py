from pathlib import Path

import pytest
import yaml

from dreamframe_assets.core.params import (
    ParamsError,
    load_params,
    load_themes,
    parse_params,
)

from ..conftest import REPO, tiny_params


def write(tmp_path: Path, params: dict) -> Path:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "themes.txt").write_text("# none\n")
    return tmp_path


def test_repo_params_are_valid_and_name_at_least_12_movies():
    params = load_params(REPO)
    themes = load_themes(REPO, params.movie_plots)
    assert len(themes) >= 12
    p = params.movie_plots
    assert len(themes) * p.substories * p.tinystories * p.frames >= 300


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda p: p["movie_plots"].update(framez=3), "movie_plots.framez: unknown key"),
        (lambda p: p["keyframes"].update(width="256"), "keyframes.width"),
        (lambda p: p["movie_plots"].update(substories=-1), "movie_plots.substories"),
        (lambda p: p["qa_pairs"].update(max_qtype_share=1.5), "qa_pairs.max_qtype_share"),
        (lambda p: p.update(render={}), "render: unknown key"),
    ],
)
def test_bad_params_name_the_key(tmp_path, change, key):
    params = tiny_params()
    change(params)
    with pytest.raises(ParamsError) as info:
        load_params(write(tmp_path, params))
    assert key in str(info.value)


def test_empty_theme_list_is_an_error(tmp_path):
    params = tiny_params(themes=[])
    root = write(tmp_path, params)
    with pytest.raises(ParamsError, match="movie_plots.themes: no themes"):
        load_themes(root, load_params(root).movie_plots)


def test_themes_file_adds_themes_and_blank_or_duplicate_ones_are_named(tmp_path):
    root = write(tmp_path, tiny_params(themes=["A sailor returns home"]))
    (root / "themes.txt").write_text("# comment\nA baker opens a shop\n\nA sailor returns home\n")
    with pytest.raises(ParamsError, match=r"themes.txt:4: theme 'A sailor returns home' is given twice"):
        load_themes(root, load_params(root).movie_plots)
    (root / "themes.txt").write_text("A baker opens a shop  # the second movie\n")
    assert load_themes(root, load_params(root).movie_plots) == ["A sailor returns home", "A baker opens a shop"]


def test_missing_themes_file_names_the_key(tmp_path):
    params = tiny_params()
    params["movie_plots"]["themes_file"] = "nope.txt"
    root = write(tmp_path, params)
    with pytest.raises(ParamsError, match="movie_plots.themes_file: 'nope.txt' does not exist"):
        load_themes(root, load_params(root).movie_plots)


def test_not_a_mapping():
    with pytest.raises(ParamsError, match="expected a mapping"):
        parse_params(["a", "b"])
