"""Tables from another revision, or planted in the working tree, never steer a path.

The diff reads old versions' tables through DVC and the exports read the current ones;
a movie id, a shard or a shard member that is not what the pipeline writes stops them
with one line naming the file and the value, and nothing is written outside the output folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from dreamframe_assets.core.schemas import ContractError
from dreamframe_assets.core.store import PLOT_TABLES, pack_shard, png_bytes, read_plots
from dreamframe_assets.core import store
from dreamframe_assets.dataset import export
from dreamframe_assets.dataset.diff import DiffError, compare, html_report, load_version, run_diff

GOOD = "a-quiet-harbor-1a2b3c"
XSS = "<script>alert(1)</script>"


def write_version(root: Path, movies: dict[str, dict], keyframes: int = 2) -> Path:
    """A working tree holding what the diff reads: the tables (only the columns it uses),
    one shard of ``keyframes`` PNGs per movie, params.yaml and metrics.json."""
    data = root / "data"
    (data / "movie_plots").mkdir(parents=True, exist_ok=True)
    table = pl.DataFrame({"movie_id": list(movies), "title": [m["title"] for m in movies.values()],
                          "theme": [m["theme"] for m in movies.values()], "genre": ["Drama"] * len(movies)},
                         schema={"movie_id": pl.String, "title": pl.String, "theme": pl.String, "genre": pl.String})
    for name in PLOT_TABLES:
        (table if name == "movies" else table.select("movie_id")).write_parquet(data / "movie_plots" / f"{name}.parquet")
    index = []
    for n, mid in enumerate(movies):
        images = [np.full((16, 24, 3), 40 * n + 30 * i, np.uint8) for i in range(keyframes)]
        members = [(f"{mid}/{i:05d}.png", png_bytes(img)) for i, img in enumerate(images)]
        shard = root / "data/keyframes/shards" / f"{mid}.tar"
        shard.parent.mkdir(parents=True, exist_ok=True)
        shard.write_bytes(pack_shard(members))
        index += [{"movie_id": mid, "frame_index": i, "shard": f"shards/{mid}.tar", "member": name}
                  for i, (name, _) in enumerate(members)]
    pl.DataFrame(index, schema={"movie_id": pl.String, "frame_index": pl.Int64, "shard": pl.String,
                                "member": pl.String}).write_parquet(data / "keyframes/keyframes.parquet")
    (data / "qa_pairs").mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"movie_id": list(movies), "qtype": ["who"] * len(movies)}).write_parquet(data / "qa_pairs/qa.parquet")
    (data / "eval_scores").mkdir(parents=True, exist_ok=True)
    (data / "eval_scores/metrics.json").write_text('{"counts": {"qa_pairs": %d}}' % len(movies))
    (root / "params.yaml").write_text(yaml.safe_dump({"qa_pairs": {"seed": 0}}))
    return root


def plant(root: Path, path: str, column: str, value: str, row: int = 0) -> None:
    """Overwrite one cell of a table of the working tree."""
    df = pl.read_parquet(root / path)
    cell = pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(column))
    df.with_columns(cell.alias(column)).write_parquet(root / path)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("path, column, value, row", [
    ("data/movie_plots/movies.parquet", "movie_id", "../../evil", 0),
    ("data/movie_plots/frames.parquet", "movie_id", "/etc/passwd", 0),
    ("data/qa_pairs/qa.parquet", "movie_id", "Evil Movie", 0),
    ("data/keyframes/keyframes.parquet", "movie_id", "../" * 8 + "tmp/evil", 1),
    ("data/keyframes/keyframes.parquet", "shard", "../../../../../etc/passwd", 0),
    ("data/keyframes/keyframes.parquet", "shard", "shards/other-movie-000000.tar", 0),
    ("data/keyframes/keyframes.parquet", "member", "../evil.png", 1),
    ("data/keyframes/keyframes.parquet", "member", f"/{GOOD}/00001.png", 1),
    ("data/keyframes/keyframes.parquet", "member", f"{GOOD}/../00001.png", 1),
    ("data/keyframes/keyframes.parquet", "member", "other-movie-000000/00000.png", 0),
])
def test_diff_refuses_a_planted_path_in_one_line(tmp_path, path, column, value, row):
    root = write_version(tmp_path / "project", {GOOD: {"title": "Harbor", "theme": "A quiet harbor"}})
    plant(root, path, column, value, row)
    before = files_under(tmp_path)
    with pytest.raises(DiffError) as info:
        run_diff(root, None, None, html_out=tmp_path / "report" / "diff.html")
    message = str(info.value)
    assert "\n" not in message
    assert path in message and "working tree" in message and repr(value) in message
    assert files_under(tmp_path) == before  # no report, nothing anywhere else


def test_diff_refuses_a_malformed_file_in_one_line(tmp_path):
    root = write_version(tmp_path / "project", {GOOD: {"title": "Harbor", "theme": "A quiet harbor"}})
    (root / "data/qa_pairs/qa.parquet").write_bytes(b"not parquet\n" * 3)
    with pytest.raises(DiffError, match=r"^data/qa_pairs/qa\.parquet in working tree: not a readable Parquet") as info:
        load_version(root)
    assert "\n" not in str(info.value)
    write_version(root, {GOOD: {"title": "Harbor", "theme": "A quiet harbor"}})
    (root / "params.yaml").write_text("- a list\n- not a mapping\n")
    with pytest.raises(DiffError, match=r"^params\.yaml in working tree: expected a mapping, got list$"):
        load_version(root)
    (root / "params.yaml").write_text("a: [unclosed\nb: 1\n")
    with pytest.raises(DiffError, match=r"^params\.yaml in working tree: not readable") as info:
        load_version(root)
    assert "\n" not in str(info.value)


def test_diff_report_shows_theme_and_title_as_text(tmp_path):
    """A theme or title is text in the report, never markup: a script shows as its characters."""
    a = load_version(write_version(tmp_path / "a", {GOOD: {"title": "Harbor", "theme": "A quiet harbor"}}))
    evil = {"title": '"><img src=x onerror=alert(2)>', "theme": XSS}
    b = load_version(write_version(tmp_path / "b", {GOOD: {"title": "Harbor", "theme": "A quiet harbor"},
                                                    "script-alert-1-9f8e7d": evil}))
    diff = compare(a, b)
    assert diff.added == ["script-alert-1-9f8e7d"]
    doc = html_report(diff, a, b, tmp_path / "diff.html").read_text()
    assert "<script" not in doc and "<img src=x" not in doc and "onerror=alert(2)>" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc  # shown, as text, in the movies table
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in doc  # the title: in the table, caption and alt text
    assert doc.count("<img ") == doc.count('src="data:image/png;base64,')  # every image is one of ours


@pytest.mark.integration
def test_diff_refuses_a_planted_id_in_a_committed_revision(tmp_path):
    """The same rule for a version read from git through DVC: the message names the revision."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    root = write_version(tmp_path / "repo", {GOOD: {"title": "Harbor", "theme": "A quiet harbor"}})
    plant(root, "data/movie_plots/movies.parquet", "movie_id", "../../evil")
    for cmd in (["git", "init", "-q"], [str(bin_dir / "dvc"), "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "planted"], ["git", "tag", "v1"]):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
    shutil.rmtree(root / "data")  # the version is read from the commit, not the working tree
    with pytest.raises(DiffError) as info:
        load_version(root, "v1")
    message = str(info.value)
    assert "\n" not in message
    assert re.match(r"data/movie_plots/movies\.parquet in v1 \([0-9a-f]{7}\): movie_id '\.\./\.\./evil' "
                    r"is not a movie id", message), message


# ---------------------------------------------------------------- exports
@pytest.mark.integration
def test_export_refuses_a_planted_movie_id(built_project, tmp_path):
    plant(built_project, "data/movie_plots/movies.parquet", "movie_id", "../../evil")
    out = tmp_path / "out"
    before = files_under(tmp_path)
    with pytest.raises(ContractError) as info:
        export.export_all(built_project, out, ["llava", "hf"])
    message = str(info.value)
    assert "movies.parquet" in message and "'../../evil'" in message and "movie_id" in message
    assert files_under(tmp_path) - before <= {"out"}  # the output folder, empty: nothing written
    assert not any(out.iterdir())


@pytest.mark.integration
def test_export_refuses_a_shard_member_that_is_not_a_keyframe_name(built_project, tmp_path):
    movies = list(read_plots(built_project))
    mid = movies[-1]
    shard = built_project / "data/keyframes/shards" / f"{mid}.tar"
    members = store.read_shard(shard)
    named = sorted(members)
    planted = [("../../evil.png" if name == named[1] else name, members[name]) for name in named]
    shard.write_bytes(pack_shard(planted))
    out = tmp_path / "out"
    before = files_under(tmp_path)
    with pytest.raises(ContractError) as info:
        export.export_frames(built_project, out)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"data/keyframes/shards/{mid}.tar: holds '../../evil.png', not a keyframe of movie {mid!r}")
    made = files_under(tmp_path) - before
    assert made and all(name == "out" or name.startswith("out/") for name in made)
    assert not list(tmp_path.rglob("evil.png")) and not list(built_project.rglob("evil.png"))
    assert not (out / "frames" / mid).exists()  # the planted movie wrote nothing


def test_keyframe_member_rule():
    assert store.keyframe_member(GOOD, 7) == f"{GOOD}/00007.png"
    assert store.keyframe_member_problem(f"{GOOD}/00007.png", GOOD) == ""
    for bad in (f"{GOOD}/7.png", f"{GOOD}/00007.png/x", f"./{GOOD}/00007.png", f"{GOOD}/../00007.png",
                f"/{GOOD}/00007.png", f"{GOOD}-x/00007.png", "../00007.png", f"{GOOD}\\00007.png", None, 7):
        assert store.keyframe_member_problem(bad, GOOD), bad
