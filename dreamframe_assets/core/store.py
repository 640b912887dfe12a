"""Where the dataset lives on disk, and how its pieces are read and written.

Asset key = DVC stage = folder: ``data/<asset>/``. Tables are Parquet; keyframes
are one tar shard of PNGs per movie, so DVC tracks files in proportion to movies,
not frames. Every write goes through ``write_if_changed``: re-materializing an
unchanged asset rewrites nothing.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from .plot import (
    Character,
    DialogueLine,
    Frame,
    Location,
    Movie,
    MoviePlot,
    PlotQA,
    Quarantined,
    Substory,
    Tinystory,
    as_row,
    plain,
)
from .cache import bytes_digest
from .schemas import SCHEMAS, ContractError, validate

DATA_DIR = "data"
MOVIES = "movies"  # data/<stage>/movies/<movie_id>.json: one movie's output of the stage
PLOT_TABLES = ("movies", "characters", "substories", "tinystories", "frames", "dialogue", "plot_qa", "quarantine")


def stage_dir(root: Path, stage: str) -> Path:
    return Path(root) / DATA_DIR / stage


# ---------------------------------------------------------------- tables
def table_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd", statistics=False)
    return buf.getvalue()


def empty_table(table: str) -> pl.DataFrame:
    schema = SCHEMAS[table]
    return pl.DataFrame(schema={name: col.dtype.type for name, col in schema.columns.items()})


def rows_table(table: str, rows: list[dict]) -> pl.DataFrame:
    """Rows as a table with exactly the schema's columns and dtypes. Tables with list columns
    are built by Arrow (polars builds a Series per list from Python: several times slower)."""
    if not rows:
        return empty_table(table)
    schema = {name: col.dtype.type for name, col in SCHEMAS[table].columns.items()}
    if any(dtype.is_nested() for dtype in schema.values()):
        import pyarrow as pa

        try:
            return pl.from_arrow(pa.Table.from_pylist(rows, schema=empty_table(table).to_arrow().schema))
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass  # a value of the wrong type: polars' error names its column
    return pl.DataFrame(rows, schema=schema, orient="row")


def read_table(path: Path, table: str) -> pl.DataFrame:
    """Read and validate an upstream table (the contract at the asset boundary)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; materialize the upstream asset first")
    try:
        df = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - polars raises several kinds for a damaged file
        raise ContractError(f"{path}: cannot be read as Parquet (damaged or truncated?): "
                            f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return validate(table, df, where=str(path))


# ---------------------------------------------------------------- plots
def plot_to_json(plot: MoviePlot) -> bytes:
    return json.dumps(plain(plot), sort_keys=True, separators=(",", ":")).encode()


def plot_from_json(data: bytes) -> MoviePlot:
    d = json.loads(data)
    m = d["movie"]
    movie = Movie(
        **{k: v for k, v in m.items() if k not in ("locations", "characters")},
        locations=tuple(Location(**x) for x in m["locations"]),
        characters=tuple(Character(**x) for x in m["characters"]),
    )
    return MoviePlot(
        movie=movie,
        substories=tuple(Substory(**x) for x in d["substories"]),
        tinystories=tuple(Tinystory(**x) for x in d["tinystories"]),
        frames=tuple(Frame(**{**x, "characters": tuple(x["characters"])}) for x in d["frames"]),
        dialogue=tuple(DialogueLine(**x) for x in d["dialogue"]),
        qa=tuple(PlotQA(**{**x, "evidence_frames": tuple(x["evidence_frames"])}) for x in d["qa"]),
        quarantine=tuple(Quarantined(**x) for x in d.get("quarantine", ())),
    )


def plot_rows(plot: MoviePlot) -> dict[str, list[dict]]:
    """One movie's plot as rows of the seven plot tables."""
    m = plot.movie
    movie_row = {
        "movie_id": m.movie_id,
        "theme": m.theme,
        "title": m.title,
        "genre": m.genre,
        "overview": m.overview,
        "style_description": m.style_description,
        "style_keyword": m.style_keyword,
        "locations": [loc.name for loc in m.locations],
        "location_kinds": [loc.kind for loc in m.locations],
    }
    return {
        "movies": [movie_row],
        "characters": [{"movie_id": m.movie_id, **as_row(c)} for c in m.characters],
        "substories": [as_row(x) for x in plot.substories],
        "tinystories": [as_row(x) for x in plot.tinystories],
        "frames": [as_row(x) for x in plot.frames],
        "dialogue": [as_row(x) for x in plot.dialogue],
        "plot_qa": [as_row(x) for x in plot.qa],
        "quarantine": [as_row(x) for x in plot.quarantine],
    }


def read_plots(root: Path) -> dict[str, MoviePlot]:
    """Every movie's plot from the validated ``movie_plots`` tables, by movie_id."""
    folder = stage_dir(root, "movie_plots")
    t = {name: read_table(folder / f"{name}.parquet", name) for name in PLOT_TABLES}
    by_movie = {name: _group(df) for name, df in t.items()}
    plots = {}
    for m in t["movies"].iter_rows(named=True):
        mid = m["movie_id"]
        rows = {name: by_movie[name].get(mid, []) for name in PLOT_TABLES}
        movie = Movie(
            movie_id=mid,
            theme=m["theme"],
            title=m["title"],
            genre=m["genre"],
            overview=m["overview"],
            style_description=m["style_description"],
            style_keyword=m["style_keyword"],
            locations=tuple(Location(n, k) for n, k in zip(m["locations"], m["location_kinds"])),
            characters=tuple(
                Character(**{k: v for k, v in r.items() if k != "movie_id"}) for r in rows["characters"]
            ),
        )
        frames = sorted(rows["frames"], key=lambda r: r["frame_index"])
        plots[mid] = MoviePlot(
            movie=movie,
            substories=tuple(Substory(**r) for r in sorted(rows["substories"], key=lambda r: r["substory_index"])),
            tinystories=tuple(
                Tinystory(**r)
                for r in sorted(rows["tinystories"], key=lambda r: (r["substory_index"], r["tinystory_index"]))
            ),
            frames=tuple(Frame(**{**r, "characters": tuple(r["characters"])}) for r in frames),
            dialogue=tuple(DialogueLine(**r) for r in sorted(rows["dialogue"], key=lambda r: r["line_index"])),
            qa=tuple(PlotQA(**{**r, "evidence_frames": tuple(r["evidence_frames"])}) for r in rows["plot_qa"]),
            quarantine=tuple(Quarantined(**r) for r in rows["quarantine"]),
        )
        if [f.frame_index for f in plots[mid].frames] != list(range(len(frames))):
            raise ValueError(f"movie_plots/frames.parquet: movie {mid!r} has gaps in frame_index")
    return plots


def _group(df: pl.DataFrame) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in df.iter_rows(named=True):
        out.setdefault(row["movie_id"], []).append(row)
    return out


# ---------------------------------------------------------------- images
def keyframe_member(movie_id: str, index: int) -> str:
    """A keyframe's name in its movie's shard, as the keyframes stage packs it."""
    return f"{movie_id}/{index:05d}.png"


def keyframe_member_problem(member: object, movie_id: str) -> str:
    """Why ``member`` is not a keyframe name of ``movie_id``'s shard ("" when it is): only
    ``<movie_id>/<5 digits>.png``, so never absolute, never ``..``, never another movie's."""
    if isinstance(member, str) and re.fullmatch(re.escape(movie_id) + r"/\d{5}\.png", member):
        return ""
    shown = repr(member)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"member {shown} of movie {movie_id!r} is not {movie_id}/<5 digits>.png"


def png_bytes(image: np.ndarray) -> bytes:
    """Lossless PNG at zlib level 1: frames carry film grain, which higher levels barely
    shrink (about the same size), at about twice the time."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def pack_shard(members: list[tuple[str, bytes]]) -> bytes:
    """A deterministic tar (fixed mtime, owner, mode): same frames, same bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def shard_members(shard: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(shard), mode="r") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def read_shard(path: Path) -> dict[str, bytes]:
    return shard_members(Path(path).read_bytes())


class DamagedFile(ContractError):
    """A file on disk is not what the pipeline wrote (unreadable, or its checksum differs)."""


def read_keyframe_pngs(root: Path, movie_id: str) -> list[bytes]:
    """One movie's keyframe PNGs in frame order, each checked against the checksum the keyframes
    stage recorded for it (``data/keyframes/movies/<movie_id>.json``, held to the keyframes
    contract): a damaged, altered or foreign shard is reported, never read as frames."""
    folder = stage_dir(root, "keyframes")
    index = folder / MOVIES / f"{movie_id}.json"
    if not index.exists():
        raise FileNotFoundError(f"{index}: missing; materialize keyframes for movie {movie_id!r} first")
    try:
        rows = sorted(json.loads(index.read_bytes()), key=lambda r: r["frame_index"])
    except (ValueError, TypeError, KeyError) as exc:
        raise DamagedFile(f"{index}: cannot be read ({exc}); rebuild it: dreamframe run keyframes") from None
    validate("keyframes", rows_table("keyframes", rows), where=str(index))
    path = folder / "shards" / f"{movie_id}.tar"
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    try:
        members = read_shard(path)
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise DamagedFile(f"{shown}: cannot be read ({' '.join(str(exc).split())}); "
                          "rebuild it: dreamframe run keyframes") from None
    extra = sorted(set(members) - {r["member"] for r in rows})
    if extra:
        raise DamagedFile(f"{shown}: holds {extra[0]!r}, not a keyframe of movie {movie_id!r}")
    for i, row in enumerate(rows):
        data = members.get(row["member"])
        if row["frame_index"] != i or row["member"] != keyframe_member(movie_id, i):
            raise DamagedFile(f"{index}: keyframe {i} is not {keyframe_member(movie_id, i)}")
        if data is None or bytes_digest(data) != row["sha"]:
            raise DamagedFile(f"{shown}: keyframe {row['member']} is "
                              f"{'missing' if data is None else 'damaged or altered (checksum differs)'}; "
                              "rebuild it: dreamframe run keyframes")
    return [members[row["member"]] for row in rows]


def load_image(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def contact_sheet(images: list[np.ndarray], columns: int) -> np.ndarray:
    """Images in a grid (all the same size), for reference sheets and previews."""
    h, w, _ = images[0].shape
    rows = -(-len(images) // columns)
    sheet = np.full((rows * h, columns * w, 3), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = img
    return sheet


def split_sheet(sheet: np.ndarray, count: int, size: int, columns: int) -> list[np.ndarray]:
    return [
        sheet[(i // columns) * size : (i // columns + 1) * size, (i % columns) * size : (i % columns + 1) * size]
        for i in range(count)
    ]
