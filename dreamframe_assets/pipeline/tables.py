"""A per-movie stage's dataset tables, assembled from its movies' files.

At paper scale, a stage that recomputed one movie would parse the files of all 1,000
movies again to write its tables (9 s for the plot tables). Instead the tables on disk
are reused: a record in ``.dreamframe/cache/tables``, kept under the digest of those exact
table files and of the stage's code, says from which bytes of which movie's files their
rows came, in what order and how many in each table. A movie whose files are the same
bytes keeps its rows from there; the others are parsed. The result is what a full parse
gives: the same rows in the same order (the movies in ``ids`` order, each movie's rows in
its own), so the same table bytes. A table
changed behind the record's back (a DVC checkout) has another digest and no record: it is
parsed in full, unless a record of that version is kept too.
"""

from __future__ import annotations

import io
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
        found = [(p.relative_to(folder).as_posix(), bytes_digest(p.read_bytes())) for p in sources(mid) if p.exists()]
        if found:
            current[mid] = digest(found)
    old, before = _record(cache, code, folder, tables)
    kept = {mid for mid in current if mid in before and before[mid]["sources"] == current[mid]}
    notes: dict[str, Any] = {}
    counts: dict[str, dict[str, int]] = {}  # movie -> its rows in each table
    rows: dict[str, list[dict]] = {name: [] for name in tables}
    for mid in current:
        if mid in kept:
            notes[mid], counts[mid] = before[mid]["note"], before[mid]["rows"]
            continue
        movie_rows, note = parse(mid)
        counts[mid] = {name: len(movie_rows.get(name, [])) for name in tables}
        for name in tables:
            rows[name].extend(movie_rows.get(name, []))
        notes[mid] = json.loads(json.dumps(note))  # as a kept note reads back
    frames, data = {}, {}
    for name, schema in tables.items():
        df = rows_table(schema, rows[name])
        if any(counts[mid][name] for mid in kept):  # each movie's slice, from the old table or the parsed rows
            reused = pl.read_parquet(io.BytesIO(old[name])).select(df.columns).cast(df.schema)
            start, offset = {}, 0
            for mid, entry in before.items():
                start[mid], offset = offset, offset + entry["rows"][name]
            parts, fresh = [], 0
            for mid in current:
                n = counts[mid][name]
                if mid in kept:
                    parts.append(reused.slice(start[mid], n))
                else:
                    parts.append(df.slice(fresh, n))
                    fresh += n
            df = pl.concat(parts).rechunk()
        frames[name] = validate(schema, df, where=f"{stage}/{name}.parquet")
        data[folder / f"{name}.parquet"] = table_bytes(df)
    made = json.dumps([{"movie": mid, "sources": current[mid], "note": notes[mid], "rows": counts[mid]}
                       for mid in current]).encode()
    key = _key(code, folder, {p.stem: bytes_digest(b) for p, b in data.items()})
    if cache.get(key) != made:
        cache.put(key, made, item="tables")
    return frames, data, notes


def _key(code: str, folder: Path, digests: dict[str, str]) -> str:
    return digest("tables", folder.name, code, sorted(digests.items()))


def _record(cache: ItemCache, code: str, folder: Path, tables: dict[str, str]) -> tuple[dict[str, bytes], dict[str, dict]]:
    """The tables on disk, read once, and what they were assembled from: each movie, in their
    order, with its files' digest, its note and its rows in each table; ({}, {}) where there
    is no record of those exact tables."""
    paths = {name: folder / f"{name}.parquet" for name in tables}
    if not all(p.exists() for p in paths.values()):
        return {}, {}
    old = {name: p.read_bytes() for name, p in paths.items()}
    data = cache.get(_key(code, folder, {name: bytes_digest(b) for name, b in old.items()}))
    if data is None:
        return {}, {}
    return old, {entry["movie"]: entry for entry in json.loads(data)}
