from pathlib import Path

import pytest
import yaml

from dreamframe_assets.core.params import (
    ParamsError,
    load_params,
    load_themes,
    read_themes,
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
    themes, left_out = read_themes(root, load_params(root).movie_plots)
    assert themes == ["A sailor returns home", "A baker opens a shop"]  # the duplicate builds once
    assert left_out == ["themes.txt:4: theme 'A sailor returns home' is given twice "
                        "(also at movie_plots.themes); built once"]
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


# ---------------------------------------------------------------- bad params.yaml: one line naming the key
@pytest.mark.parametrize("text, says", [
    ("", "params.yaml: empty"),
    ("# every key commented out\n", "params.yaml: empty"),
    ("- keyframes\n- qa_pairs\n", "params.yaml: expected a mapping of stage groups, got list"),
    ("keyframes\n", "params.yaml: expected a mapping of stage groups, got str"),
    ("keyframes:\n  width: [256\n  height: 64\n", "params.yaml: not valid YAML: line 3, column 9: "),
    ("keyframes:\n\twidth: 256\n", "params.yaml: not valid YAML: line 2, column 1: "),
    ("keyframes:\n  width: 256\n  width: 128\n", "params.yaml: keyframes.width: given twice (lines 2 and 3)"),
    ("keyframes: 256\n", "params.yaml: keyframes: expected a mapping of its keys (got 256)"),
    ("keyframes:\n  7: 256\n", "params.yaml: keyframes.7: keys must be text"),
    ("executor:\n  workers: many\n", "params.yaml: executor.workers: should be a valid integer or 'auto' (got 'many')"),
    ("style_banks:\n  diffusion:\n    guidance_scale: .nan\n",
     "params.yaml: style_banks.diffusion.guidance_scale: should be a finite number (got nan)"),
    ("qa_pairs:\n  max_qtype_share: 1.5\n  seed: -1\n",
     "params.yaml: qa_pairs.max_qtype_share: should be less than or equal to 1 (got 1.5); "
     "qa_pairs.seed: should be greater than or equal to 0 (got -1)"),
])
def test_bad_params_file_is_one_line_naming_the_key(tmp_path, text, says):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError) as info:
        load_params(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path}/") and says in message, message


def test_params_file_that_is_not_utf8(tmp_path):
    (tmp_path / "params.yaml").write_bytes(b"keyframes:\n  width: \xff\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: not UTF-8 text \(invalid start byte at byte 20\)$"):
        load_params(tmp_path)


BASE = yaml.safe_load((REPO / "params.yaml").read_text())


def _key_paths(d: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in d.items():
        out.append(prefix + (k,))
        if isinstance(v, dict):
            out += _key_paths(v, prefix + (k,))
    return out


def _at(d: dict, path: tuple):
    for k in path:
        d = d[k]
    return d


PATHS = _key_paths(BASE)
GROUPS = [()] + [p for p in PATHS if isinstance(_at(BASE, p), dict)]
LEAVES = [p for p in PATHS if not isinstance(_at(BASE, p), dict)]
NUMBERS = [p for p in LEAVES if type(_at(BASE, p)) in (int, float)]
VALUES = [None, True, False, 0, 7, -3, 1.5, "text", "", [], ["a"], [1], {}, {"a": 1}]
OUT_OF_RANGE = [-1, 0, -0.5, 2.5, 10**30, -(10**30), 1e300, float("nan"), float("inf"), float("-inf")]


def _mutations():
    from hypothesis import strategies as st

    key = st.one_of(st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12), st.integers(0, 99))
    return st.one_of(
        st.tuples(st.just("drop"), st.sampled_from(PATHS), st.none()),
        st.tuples(st.just("add"), st.tuples(st.sampled_from(GROUPS), key).map(lambda gk: gk[0] + (gk[1],)),
                  st.sampled_from(VALUES)),
        st.tuples(st.just("set"), st.sampled_from(LEAVES), st.sampled_from(VALUES)),
        st.tuples(st.just("set"), st.sampled_from(NUMBERS), st.sampled_from(OUT_OF_RANGE)),
    )


def test_mutated_params_load_or_fail_in_one_line_naming_the_key(tmp_path):
    """The real params.yaml with one key dropped, an unknown key added at any level, or a value
    replaced by one of another type or out of range: it loads, or one ParamsError line names the key."""
    import copy
    import math

    from hypothesis import given, settings

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(_mutations())
    def check(mutation):
        action, path, value = mutation
        params = copy.deepcopy(BASE)
        parent = _at(params, path[:-1])
        if action == "add" and path[-1] in parent:
            return  # not an unknown key
        if action == "drop":
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
        dotted = ".".join(map(str, path))
        try:
            load_params(tmp_path)
        except ParamsError as exc:
            message = str(exc)
            assert "\n" not in message, message
            assert f": {dotted}" in message or f": {dotted}." in message, (dotted, message)
            return
        assert action != "add", f"unknown key {dotted} was accepted"
        if action == "set":
            assert value is not None and not isinstance(value, dict), f"{dotted}: {value!r} was accepted"
            assert not (isinstance(value, float) and not math.isfinite(value)), f"{dotted}: {value!r} was accepted"

    check()
