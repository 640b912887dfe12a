"""The `keyframes` asset: every frame drawn in its movie's learned style: one tar shard of PNGs per movie plus keyframes.parquet."""

import dagster as dg

from ..pipeline.code import code_version
from ..pipeline.steps import read_keyframes, render_keyframes
from ..resources import Workspace
from .common import contract_check, image_md, to_result


@dg.asset(group_name="render", deps=["movie_plots", "style_banks"], code_version=code_version("keyframes"), kinds={"polars"})
def keyframes(workspace: Workspace) -> dg.MaterializeResult:
    """Every frame drawn in its movie's learned style: one tar shard of PNGs per movie plus keyframes.parquet."""
    params = workspace.params()
    result = render_keyframes(workspace.path, params)
    return to_result(result, workspace.path, params.keyframes, contact_sheet=image_md("Keyframes", sample_sheet(workspace.path)))


def sample_sheet(root, movies: int = 3, frames: int = 6) -> bytes:
    """The first keyframes of a few movies, one movie a row, as a PNG."""
    import numpy as np
    from PIL import Image

    from ..core.store import contact_sheet, png_bytes, read_table, stage_dir

    ids = read_table(stage_dir(root, "keyframes") / "keyframes.parquet", "keyframes")["movie_id"].unique(maintain_order=True)
    rows = []
    for mid in ids.head(movies):
        for img in read_keyframes(root, mid)[:frames]:
            rows.append(np.asarray(Image.fromarray(img).resize((128, max(1, img.shape[0] * 128 // img.shape[1])))))
        rows += [np.full_like(rows[-1], 255)] * (-len(rows) % frames)
    return png_bytes(contact_sheet(rows, frames))


@dg.asset_check(asset=keyframes, blocking=True, description="Tables of keyframes match their pandera schemas.")
def keyframes_contract(workspace: Workspace) -> dg.AssetCheckResult:
    return contract_check(workspace.path, "keyframes", ("keyframes",))
