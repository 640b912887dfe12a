"""A per-movie stage's dataset tables, assembled from its movies' files.

At paper scale, a stage that recomputed one movie would parse the files of all 1,000
movies again to write its tables (9 s for the plot tables). Instead the tables on disk
are reused: a record in ``.dreamframe/cache/tables``, kept under the digest of those exact
table files and of the stage's code, says from which bytes of which movie's files their
rows came. A movie whose files are the same bytes keeps its rows from there; the others
are parsed. The result is what a full parse gives: the same rows in the same order (the
movies in ``ids`` order, each movie's rows in its own), so the same table bytes. A table
changed behind the record's back (a DVC checkout) has another digest and no record: it is
parsed in full.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from ..core.cache import ItemCache, bytes_digest, digest
from ..core.schemas import validate
from ..core.store import rows_table, table_bytes

# a movie -> (its rows per table, a note of it the caller needs beside the rows, or None)
Parse = Callable[[str], tuple[dict[str, list[dict]], Any]]


def assemble(root: Path, stage: str, code: str, folder: Path, ids: list[str], tables: dict[str, str],
             sources: Callable[[str], list[Path]], parse: Parse) -> tuple[dict[str, pl.DataFrame], dict[Path, bytes],
                                                                           dict[str, Any]]:
    """The tables (file name -> schema name) of the movies in ``ids`` with any of their
    ``sources`` on disk, validated -> (tables, their Parquet bytes by path, each movie's note).
    A movie's rows and note must be a function of its source files' bytes alone."""
    cache = ItemCache(root, "tables")  # beside the stages' items, not among them
    current = {}
    for mid in ids:
        found = [(p.name, bytes_digest(p.read_bytes())) for p in sources(mid) if p.exists()]
        if found:
            current[mid] = digest(found)
    record = _record(cache, code, folder, tables)
    kept = [mid for mid in current if mid in record and record[mid][0] == current[mid]]
    notes: dict[str, Any] = {}
    rows: dict[str, list[dict]] = {name: [] for name in tables}
    for mid in current:
        if mid in record and record[mid][0] == current[mid]:
            notes[mid] = record[mid][1]
            continue
        movie_rows, note = parse(mid)
        notes[mid] = json.loads(json.dumps(note))  # as a kept note reads back
        for name in tables:
            rows[name].extend(movie_rows.get(name, []))
    order = {mid: i for i, mid in enumerate(current)}
    frames, data = {}, {}
    for name, schema in tables.items():
        df = rows_table(schema, rows[name])
        if kept:
            old = pl.read_parquet(folder / f"{name}.parquet").select(df.columns).cast(df.schema)
            df = (pl.concat([old.filter(pl.col("movie_id").is_in(kept)), df])
                  .with_columns(pl.col("movie_id").replace_strict(order, return_dtype=pl.Int64).alias("_order"))
                  .sort("_order", maintain_order=True).drop("_order").rechunk())
        frames[name] = validate(schema, df, where=f"{stage}/{name}.parquet")
        data[folder / f"{name}.parquet"] = table_bytes(df)
    key = _key(code, folder, {p.stem: bytes_digest(b) for p, b in data.items()})
    if not cache.has(key):
        cache.put(key, json.dumps({mid: [current[mid], notes[mid]] for mid in current}).encode(), item="tables")
    return frames, data, notes


def _key(code: str, folder: Path, digests: dict[str, str]) -> str:
    return digest("tables", folder.name, code, sorted(digests.items()))


def _record(cache: ItemCache, code: str, folder: Path, tables: dict[str, str]) -> dict[str, list]:
    """What the tables on disk were assembled from (movie -> [sources digest, note]), or {}."""
    paths = [folder / f"{name}.parquet" for name in tables]
    if not all(p.exists() for p in paths):
        return {}
    data = cache.get(_key(code, folder, {p.stem: bytes_digest(p.read_bytes()) for p in paths}))
    return json.loads(data) if data is not None else {}
