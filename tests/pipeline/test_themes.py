"""Themes as a careless or hostile user writes them: each builds a movie or is left out with
one line naming it, and the others still build, through every per-movie stage."""

from __future__ import annotations

import json
import string

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dreamframe_assets.core.ids import MAX_MOVIE_ID, is_movie_id, movie_id_for
from dreamframe_assets.core.params import MAX_THEME_CHARS, load_params, read_themes
from dreamframe_assets.pipeline.movies import read_sources
from dreamframe_assets.pipeline.steps import PER_MOVIE, STEPS

from ..conftest import write_project

BUILDS = [
    "日本の灯台守が嵐の夜に手紙を見つける",  # another script
    "Мальчик находит карту в старой книге",
    "🎬🐉🔥",  # emoji only
    "../../etc/passwd",  # path-like
    "C:\\Windows\\System32\\cmd.exe",
    "$(rm -rf ~); `reboot` && echo pwned > /tmp/x",  # shell-like
    "<script>alert('x')</script> & <b>bold</b>",  # markup
    "CON",  # reserved device names
    "NUL.txt",
    "A" * MAX_THEME_CHARS,  # the longest theme allowed
    "word " * 199 + "end",
    "Café crème at the École — a naïve façade",
]
LEFT_OUT = {
    "A long " + "word" * 2500: "characters (at most 1,000",
    "bell \x07 ring": "control characters",
    "Мальчик   находит карту в старой книге": "given twice",  # the same theme, spaced out
}


def test_hostile_themes_build_or_are_named_and_the_rest_build(tmp_path, monkeypatch):
    root = write_project(tmp_path / "project")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["movie_plots"].update(themes=BUILDS[:3], substories=1, tinystories=2, frames=3)
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    lines = [*BUILDS[3:], "", "   ", *LEFT_OUT]
    (root / "themes.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("DREAMFRAME_ROOT", str(root))
    loaded = load_params(root)

    sources, left_out = read_sources(root, loaded)
    assert len(sources) == len(BUILDS)
    assert len(left_out) == len(LEFT_OUT)
    for line, (theme, why) in zip(left_out, LEFT_OUT.items()):
        number = lines.index(theme) + 1
        assert line.startswith(f"themes.txt:{number}: ") and why in line and "\n" not in line and len(line) < 300

    for stage in PER_MOVIE:
        result = STEPS[stage](root, loaded)
        assert not result.failed, [m.error for m in result.failed]
        assert sorted(result.movies) == sorted(sources)
    for mid in sources:
        assert is_movie_id(mid)
        for stage in PER_MOVIE:
            written = list((root / "data" / stage / "movies").glob(f"{mid}.json"))
            assert written and written[0].parent == root / "data" / stage / "movies"
    built = {json.loads((root / "data/movie_plots/movies" / f"{mid}.json").read_text())["movie"]["theme"]
             for mid in sources}
    assert built == {" ".join(t.split()) for t in BUILDS}
    assert not [p for p in tmp_path.rglob("*") if not p.is_relative_to(root)]  # nothing written outside


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(min_size=0, max_size=400))
def test_any_theme_gets_a_short_file_safe_id(theme):
    mid = movie_id_for(theme)
    assert is_movie_id(mid) and len(mid) <= MAX_MOVIE_ID
    assert set(mid) <= set(string.ascii_lowercase + string.digits + "-")
    assert movie_id_for(" ".join(theme.split())) == mid  # spacing never makes another movie


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60), max_size=8))
def test_any_themes_file_is_read_or_named_line_by_line(tmp_path_factory, lines):
    root = write_project(tmp_path_factory.mktemp("themes"))
    (root / "themes.txt").write_text("\n".join(line.replace("\r", " ") for line in lines), encoding="utf-8")
    params = load_params(root).movie_plots
    try:
        themes, left_out = read_themes(root, params)
    except Exception as exc:  # only "no usable theme", and then none of the inline ones either
        raise AssertionError(f"{type(exc).__name__}: {exc}") from exc
    assert len(themes) == len({t.lower() for t in themes})
    assert all(t == " ".join(t.split()) and 0 < len(t) <= MAX_THEME_CHARS for t in themes)
    assert all("\n" not in line for line in left_out)


def test_a_hash_inside_a_theme_is_text_and_a_comment_starts_with_a_space(tmp_path):
    root = write_project(tmp_path / "project")
    (root / "themes.txt").write_text("A C# teacher&#39;s last lesson  # about code\n# a comment line\n"
                                     "A poet\u2028writes\nA baker bakes\n", encoding="utf-8")
    themes, left_out = read_themes(root, load_params(root).movie_plots)
    assert themes[-3:] == ["A C# teacher&#39;s last lesson", "A poet writes", "A baker bakes"]
    assert left_out == []
