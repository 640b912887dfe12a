"""A no-op re-run of style_banks with the textual-inversion learner rewrites nothing, whether
the movie comes from the item cache or is learned again: DVC and Dagster see the same files,
and the learned embedding keeps its inode and mtime."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from dreamframe_assets.core.cache import CACHE_DIR

from ..conftest import materialize, metadata

pytest.importorskip("diffusers")

pytestmark = pytest.mark.integration


def stamps(folder: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file under ``folder``: a rewrite, even of the same bytes, changes one."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_textual_inversion_run_rewrites_no_file(project, tiny_sd, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DREAMFRAME_ROOT", str(project))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["movie_plots"]["themes"] = params["movie_plots"]["themes"][:1]
    params["style_banks"].update(learner="textual_inversion", references=1, size=64)
    params["style_banks"]["diffusion"].update(model=str(tiny_sd), steps=2, batch_size=4)
    params["style_banks"]["textual_inversion"].update(steps=2, gradient_accumulation=1, resolution=64)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    first = materialize(project, ["movie_plots", "style_banks"])
    assert first.success
    folder = project / "data/style_banks"
    [embedding] = folder.glob("embeddings/*/embedding.safetensors")
    assert str(embedding.relative_to(project)) in metadata(first, "style_banks")["files_written"]
    before, held = stamps(folder), embedding.stat()

    again = materialize(project, ["style_banks"])
    assert again.success
    meta = metadata(again, "style_banks")
    assert meta["cache_misses"] == 0 and meta["files_written"] == []
    assert stamps(folder) == before
    now = embedding.stat()
    assert (now.st_ino, now.st_mtime_ns) == (held.st_ino, held.st_mtime_ns)

    # learned again (no item cache, as in a fresh clone): the same vectors, the same bytes, nothing rewritten
    shutil.rmtree(project / CACHE_DIR / "style_banks")
    third = materialize(project, ["style_banks"])
    assert third.success
    meta = metadata(third, "style_banks")
    assert meta["cache_misses"] == 1 and meta["files_written"] == []
    assert stamps(folder) == before
