"""The `keyframes` asset: every frame drawn in its movie's learned style: one tar shard of PNGs per movie plus keyframes.parquet."""

import dagster as dg

from ..pipeline.steps import read_keyframes
from ..resources import Workspace
from .common import image_md, movie_asset, run_movies


@movie_asset("keyframes", "render", "Every frame drawn in its movie's learned style: one tar shard of PNGs per "
             "movie plus keyframes.parquet.", deps=["movie_plots", "style_banks"])
def keyframes(context: dg.AssetExecutionContext, workspace: Workspace):
    root = workspace.path
    yield from run_movies(context, root, workspace.params(), "keyframes",
                          details=lambda result: {"contact_sheet": image_md("Keyframes", sample_sheet(root))})


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
