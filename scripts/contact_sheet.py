"""The README's keyframe picture: a few frames of a few movies, one movie per row.

    .venv/bin/python scripts/contact_sheet.py                       # this repo -> docs/keyframes.png
    .venv/bin/python scripts/contact_sheet.py --root DIR --movies 4 --frames 6 --out sheet.png

Reads the built dataset (`data/keyframes/shards/<movie>.tar`, as `dvc repro` or `make run` left it).
Movies are taken in dataset order, preferring different genres; each row shows `--frames`
keyframes spread evenly over the movie, from its first frame to its last, downscaled to `--size` px.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from dreamframe_assets.core.store import contact_sheet, stage_dir
from dreamframe_assets.pipeline.steps import read_keyframes

REPO = Path(__file__).resolve().parents[1]


def pick_movies(root: Path, count: int) -> list[str]:
    """The first `count` movies that have keyframes, one per genre while genres last."""
    movies = pl.read_parquet(stage_dir(root, "movie_plots") / "movies.parquet")
    drawn = {p.stem for p in (stage_dir(root, "keyframes") / "shards").glob("*.tar")}
    rows = [r for r in movies.select("movie_id", "genre").iter_rows(named=True) if r["movie_id"] in drawn]
    picked: list[str] = []
    genres: set[str] = set()
    for row in rows:
        if len(picked) < count and row["genre"] not in genres:
            picked.append(row["movie_id"])
            genres.add(row["genre"])
    for row in rows:  # fewer genres than movies wanted: fill in order
        if len(picked) < count and row["movie_id"] not in picked:
            picked.append(row["movie_id"])
    return picked


def downscale(image: np.ndarray, width: int) -> np.ndarray:
    h, w, _ = image.shape
    size = (width, max(1, round(h * width / w)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def sheet(root: Path, movie_ids: list[str], frames: int, size: int) -> np.ndarray:
    images = []
    for movie_id in movie_ids:
        keyframes = read_keyframes(root, movie_id)
        if len(keyframes) < frames:
            raise SystemExit(f"{movie_id} has {len(keyframes)} keyframes, fewer than --frames {frames}")
        for i in np.linspace(0, len(keyframes) - 1, frames).round().astype(int):
            images.append(downscale(keyframes[i], size))
    return contact_sheet(images, columns=frames)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO, help="project folder with a built data/ (default: this repo)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "keyframes.png")
    parser.add_argument("--movies", type=int, default=3, help="how many movies (rows)")
    parser.add_argument("--movie", action="append", default=[], help="a movie id to show (repeatable; overrides --movies)")
    parser.add_argument("--frames", type=int, default=5, help="keyframes per movie (columns)")
    parser.add_argument("--size", type=int, default=160, help="frame width in the sheet, px")
    args = parser.parse_args(argv)

    root = args.root.resolve()
    if not (stage_dir(root, "keyframes") / "shards").is_dir():
        raise SystemExit(f"no keyframes under {root}/data: build the dataset first (`make run`)")
    movie_ids = args.movie or pick_movies(root, args.movies)
    if not movie_ids:
        raise SystemExit(f"no movies with keyframes under {root}/data")
    image = sheet(root, movie_ids, args.frames, args.size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(args.out, optimize=True)
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]}): {', '.join(movie_ids)}", file=sys.stderr)


if __name__ == "__main__":
    main()
