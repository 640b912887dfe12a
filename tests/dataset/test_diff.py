"""Dataset diff: two committed versions and the working tree of a temporary git+DVC repo.

One test builds the versions (each `dvc repro` starts five Python processes, so the
scenario runs once, in order) and checks our diff against the files themselves and
against `dvc metrics/params/plots diff`; the other checks `compare` on hand-made versions.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from rich.console import Console

from dreamframe_assets.core.ids import movie_id_for
from dreamframe_assets.dataset.diff import (
    Version,
    compare,
    flatten,
    html_report,
    load_version,
    print_diff,
    run_diff,
)

from ..conftest import TINY_THEMES, materialize
from ..pipeline.test_dvc import BIN, repo, sh  # noqa: F401  (repo: the project in a fresh git + DVC repo)

NEW_THEME = "A kite maker races the autumn wind"

pytestmark = pytest.mark.integration


def edit_params(root: Path, edit) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    edit(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def snapshot(root: Path, into: Path) -> tuple[pl.DataFrame, dict]:
    """This build's qa table and metrics, kept outside the repo for the later comparisons."""
    into.mkdir()
    shutil.copy(root / "data/qa_pairs/qa.parquet", into / "qa.parquet")
    return pl.read_parquet(into / "qa.parquet"), json.loads((root / "data/eval_scores/metrics.json").read_text())


def stamps(root: Path) -> dict[str, int]:
    """mtimes of everything a stage writes, and dvc.lock: a stage run changes some."""
    files = [p for p in (root / "data").rglob("*") if p.is_file()] + [root / "dvc.lock"]
    return {str(p): p.stat().st_mtime_ns for p in files}


def build(root: Path) -> None:
    """Build the dataset through Dagster in this process, then record it in dvc.lock and DVC's
    cache (``dvc commit``: what DVC would record after running the stages; ``test_dvc`` runs them)."""
    assert materialize(root).success
    sh(root, str(BIN / "dvc"), "commit", "-f", "-q")


def test_diff_between_committed_versions_and_the_working_tree(repo, tmp_path_factory, monkeypatch):
    root = repo
    monkeypatch.setenv("DREAMFRAME_ROOT", str(root))
    keep = tmp_path_factory.mktemp("snapshots")
    dvc = str(BIN / "dvc")

    # v1: the tiny dataset
    build(root)
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "v1")
    sh(root, "git", "tag", "v1")
    qa1, metrics1 = snapshot(root, keep / "v1")

    # v2: one theme replaced, and a qa_pairs knob that changes no QA (a blocking check's threshold)
    def v2(p):
        p["movie_plots"]["themes"][2] = NEW_THEME
        p["qa_pairs"]["max_duplicate_rate"] = 0.03
    edit_params(root, v2)
    build(root)
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "v2")
    sh(root, "git", "tag", "v2")
    qa2, metrics2 = snapshot(root, keep / "v2")

    # working tree: uncommitted, every movie's QA changes
    edit_params(root, lambda p: p["qa_pairs"].update(seed=7))
    build(root)
    qa3 = pl.read_parquet(root / "data/qa_pairs/qa.parquet")
    before = stamps(root)

    # ---- v1 -> v2, both read from git and the DVC cache (the working tree holds neither)
    a, b = load_version(root, "v1"), load_version(root, "v2")
    diff = compare(a, b)
    old, new = movie_id_for(TINY_THEMES[2]), movie_id_for(NEW_THEME)
    assert diff.added == [new] and diff.removed == [old]
    assert diff.changed == [] and diff.unchanged == 2
    assert (diff.qa_a, diff.qa_b) == (qa1.height, qa2.height)
    for q in diff.qtypes:
        assert q.count_a == qa1.filter(pl.col("qtype") == q.qtype).height
        assert q.count_b == qa2.filter(pl.col("qtype") == q.qtype).height
        assert abs(q.delta - (q.count_b / qa2.height - q.count_a / qa1.height)) < 1e-12
    assert {q.qtype for q in diff.qtypes} == set(qa1["qtype"]) | set(qa2["qtype"])
    metric = {m.key: m for m in diff.metrics}
    assert (metric["counts.qa_pairs"].a, metric["counts.qa_pairs"].b) == (qa1.height, qa2.height)
    assert metric["counts.qa_pairs"].delta == qa2.height - qa1.height
    assert metric["counts.qa_pairs"].a == metrics1["counts"]["qa_pairs"]
    assert {p.key: p.status for p in diff.params} == {"movie_plots.themes": "changed",
                                                      "qa_pairs.max_duplicate_rate": "changed"}

    console = Console(file=io.StringIO(), width=160)
    print_diff(diff, console)
    shown = console.file.getvalue()
    assert new in shown and "qa_pairs.max_duplicate_rate" in shown and "counts.qa_pairs" in shown

    report = html_report(diff, a, b, tmp_path_factory.mktemp("report") / "diff.html")
    assert [p.name for p in report.parent.iterdir()] == ["diff.html"]
    doc = report.read_text()
    # qtype chart, metric chart, and one sheet each for the added and the removed movie
    assert doc.count("data:image/png;base64,") == 4
    # nothing fetched from elsewhere (base64 may spell "http", never "://")
    assert "://" not in doc and "<script" not in doc and "<link" not in doc

    # ---- DVC's own diffs name the same metrics and params
    dvc_metrics = json.loads(sh(root, dvc, "metrics", "diff", "v1", "v2", "--all", "--json"))
    counts = dvc_metrics["data/eval_scores/metrics.json"]["counts.qa_pairs"]
    assert (counts["old"], counts["new"]) == (qa1.height, qa2.height)
    dvc_params = json.loads(sh(root, dvc, "params", "diff", "v1", "v2", "--json"))
    assert set(dvc_params["params.yaml"]) == {p.key for p in diff.params}
    plots = json.loads(sh(root, dvc, "plots", "diff", "v1", "v2", "--json"))["data"]
    mix = next(v for k, v in plots.items() if k.endswith("qtype_mix.csv"))[0]
    assert mix["revisions"] == ["v1", "v2"]
    shares = {(r["rev"], r["qtype"]): float(r["share"]) for r in mix["content"]["data"]["values"]}
    for q in diff.qtypes:
        assert abs(shares.get(("v2", q.qtype), 0.0) - q.share_b) < 1e-3

    # ---- HEAD (v2) -> the uncommitted working tree
    console = Console(file=io.StringIO(), width=160)
    diff = run_diff(root, "HEAD", None, html_out=keep / "wt.html", console=console)
    assert diff.label_b == "working tree" and diff.label_a.startswith("HEAD (")
    assert diff.added == [] and diff.removed == []
    assert sorted(diff.changed) == sorted(set(qa3["movie_id"])) and diff.unchanged == 0
    assert (diff.qa_a, diff.qa_b) == (qa2.height, qa3.height)
    assert [p.key for p in diff.params] == ["qa_pairs.seed"]
    assert {m.key: m for m in diff.metrics}["counts.qa_pairs"].b == qa3.height
    doc = (keep / "wt.html").read_text()
    assert doc.count("data:image/png;base64,") == 2 + len(diff.changed)
    assert "://" not in doc

    # reading versions ran no stage: no output and no dvc.lock was rewritten
    assert stamps(root) == before
    assert "up to date" in sh(root, dvc, "status")


def version(label: str, movies: dict[str, str], qtypes: list[str], metrics: dict, params: dict) -> Version:
    table = pl.DataFrame({"movie_id": list(movies), "title": list(movies), "theme": list(movies),
                          "genre": ["Drama"] * len(movies)})
    qa = pl.DataFrame({"movie_id": ["m"] * len(qtypes), "qtype": qtypes}, schema={"movie_id": pl.String,
                                                                                  "qtype": pl.String})
    return Version(label, table, movies, qa, pl.DataFrame(), metrics, params, read=lambda path: b"")


def test_compare_by_content_hash_and_dotted_keys():
    a = version("a", {"m1": "h1", "m2": "h2", "m3": "h3"}, ["who", "who", "why", "count"],
                {"counts": {"qa_pairs": 4}, "acc": {"oracle": 1.0}, "gone": 0.5},
                {"qa_pairs": {"seed": 0, "llm": {"model": "x"}}, "old": 1})
    b = version("b", {"m1": "h1", "m2": "h2x", "m4": "h4"}, ["who", "why"],
                {"counts": {"qa_pairs": 2}, "acc": {"oracle": 1.0}, "new": 0.25},
                {"qa_pairs": {"seed": 1, "llm": {"model": "x"}}, "new": [1]})
    d = compare(a, b)
    assert (d.added, d.removed, d.changed, d.unchanged) == (["m4"], ["m3"], ["m2"], 1)
    q = {x.qtype: x for x in d.qtypes}
    assert (q["count"].count_a, q["count"].count_b, q["count"].delta) == (1, 0, -0.25)
    assert q["who"].share_a == 0.5 and q["who"].share_b == 0.5 and q["who"].delta == 0
    m = {x.key: x for x in d.metrics}
    assert m["counts.qa_pairs"].delta == -2 and not m["acc.oracle"].differs
    assert (m["gone"].b, m["gone"].delta, m["new"].a) == (None, None, None)
    assert [(p.key, p.status) for p in d.params] == [("new", "added"), ("old", "removed"), ("qa_pairs.seed", "changed")]
    assert flatten({"a": {"b": {"c": 1}}, "d": [1, {"e": 2}], "f": {}}) == {"a.b.c": 1, "d": [1, {"e": 2}], "f": {}}
    console = Console(file=io.StringIO(), width=160)
    print_diff(d, console)
    assert re.search(r"qa_pairs\.seed\s.*changed", console.file.getvalue())
