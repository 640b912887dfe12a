"""Data contracts: one pandera schema per table, checked at every asset boundary.

A stage validates the tables it writes (as a blocking Dagster asset check) and
the upstream tables it reads, so a corrupted table stops the graph with a message
that names the table, the column and the rows, instead of flowing into training data.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from .ids import MAX_MOVIE_ID, MOVIE_ID
from .vocabulary import (
    ACTIONS,
    CLOTHING_COLOURS,
    EXPRESSIONS,
    LOCATION_KINDS,
    MAX_OPTIONS,
    MIN_OPTIONS,
    OBJECTS,
    PLOT_LEVELS,
    PLOT_QTYPES,
    QA_GATES,
    QA_LEVELS,
    QTYPES,
)

Str = pl.Utf8
Int = pl.Int64
StrList = pl.List(pl.Utf8)
IntList = pl.List(pl.Int64)


class ContractError(ValueError):
    """A table breaks its schema; the message names the table, columns and rows."""


def _text(**kw) -> pa.Column:
    return pa.Column(Str, pa.Check.str_length(min_value=1), **kw)


def _movie_id(**kw) -> pa.Column:
    """A movie id as ``core.ids`` makes it: a file name in every stage folder, never a path."""
    return pa.Column(Str, [pa.Check.str_length(min_value=1, max_value=MAX_MOVIE_ID),
                           pa.Check.str_matches(f"^{MOVIE_ID.pattern}$")], **kw)


def _index() -> pa.Column:
    return pa.Column(Int, pa.Check.ge(0))


def _frame_check(name: str, expr: pl.Expr) -> pa.Check:
    return pa.Check(lambda data: data.lazyframe.select(expr), name=name)


SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "movies": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(unique=True),
            "theme": _text(),
            "title": _text(),
            "genre": _text(),
            "overview": _text(),
            "style_description": _text(),
            "style_keyword": pa.Column(Str, pa.Check.str_matches(r"^[A-Za-z][A-Za-z-]*$")),
            "locations": pa.Column(StrList),
            "location_kinds": pa.Column(StrList),
        },
        strict=True,
        checks=[
            _frame_check(
                "one kind per location",
                pl.col("locations").list.len() == pl.col("location_kinds").list.len(),
            ),
            _frame_check("at least 12 locations", pl.col("locations").list.len() >= 12),
        ],
    ),
    "characters": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(),
            "char_id": _text(),
            "name": _text(),
            "appearance": _text(),
            "clothing_colour": pa.Column(Str, pa.Check.isin(list(CLOTHING_COLOURS))),
        },
        strict=True,
        unique=["movie_id", "char_id"],
    ),
    "substories": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(),
            "substory_index": _index(),
            "title": _text(),
            "scene": _text(),
            "content": _text(),
            "cause": _text(),
            "outcome": _text(),
        },
        strict=True,
        unique=["movie_id", "substory_index"],
    ),
    "tinystories": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(),
            "substory_index": _index(),
            "tinystory_index": _index(),
            "title": _text(),
            "scene": _text(),
            "content": _text(),
        },
        strict=True,
        unique=["movie_id", "substory_index", "tinystory_index"],
    ),
    "frames": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(),
            "frame_index": _index(),
            "substory_index": _index(),
            "tinystory_index": _index(),
            "location": _text(),
            "location_kind": pa.Column(Str, pa.Check.isin(list(LOCATION_KINDS))),
            "characters": pa.Column(StrList),
            "action": pa.Column(Str, pa.Check.isin(list(ACTIONS))),
            "expression": pa.Column(Str, pa.Check.isin(list(EXPRESSIONS))),
            "held_object": pa.Column(Str, pa.Check.isin(list(OBJECTS)), nullable=True),
            "prompt": _text(),
        },
        strict=True,
        unique=["movie_id", "frame_index"],
        checks=[
            _frame_check("someone in every frame", pl.col("characters").list.len() >= 1),
            _frame_check(
                "hug needs two people",
                (pl.col("action") != "hug") | (pl.col("characters").list.len() >= 2),
            ),
            _frame_check(
                "hold needs an object",
                (pl.col("action") != "hold") | pl.col("held_object").is_not_null(),
            ),
        ],
    ),
    "dialogue": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(),
            "line_index": _index(),
            "after_frame": _index(),
            "speaker": _text(),
            "text": _text(),
        },
        strict=True,
        unique=["movie_id", "line_index"],
    ),
    "plot_qa": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(),
            "level": pa.Column(Str, pa.Check.isin(list(PLOT_LEVELS))),
            "qtype": pa.Column(Str, pa.Check.isin(list(PLOT_QTYPES))),
            "question": _text(),
            "answer": _text(),
            "evidence_frames": pa.Column(IntList),
            "source": _text(),
        },
        strict=True,
    ),
    "quarantine": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(),
            "stage": pa.Column(Str, pa.Check.isin(["movie_plots", "qa_pairs"])),
            "step": _text(),
            "prompt": pa.Column(Str),
            "response": pa.Column(Str),
            "reason": _text(),
        },
        strict=True,
    ),
    "dropped": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(),
            "qa_id": _text(),
            "gate": pa.Column(Str, pa.Check.isin(list(QA_GATES))),
            "reason": _text(),
            "level": pa.Column(Str),
            "qtype": pa.Column(Str),
            "question": pa.Column(Str),
            "answer": pa.Column(Str),
        },
        strict=True,
    ),
    "styles": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(unique=True),
            "learner": _text(),
            "references": pa.Column(Int, pa.Check.ge(1)),
            "reference_sheet": _text(),
            "style_keyword": _text(),
            "palette": pa.Column(StrList),
            "line_weight": pa.Column(Int, pa.Check.ge(0)),
            "texture_kind": _text(),
            "texture": pa.Column(pl.Float64, pa.Check.in_range(0.0, 1.0)),
            "lighting": pa.Column(pl.Float64, pa.Check.in_range(0.0, 1.0)),
            "grain": pa.Column(pl.Float64, pa.Check.ge(0.0)),
            "params_json": _text(),
        },
        strict=True,
    ),
    "keyframes": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(),
            "frame_index": _index(),
            "shard": _text(),
            "member": _text(),
            "width": pa.Column(Int, pa.Check.ge(1)),
            "height": pa.Column(Int, pa.Check.ge(1)),
            "sha": _text(),
        },
        strict=True,
        unique=["movie_id", "frame_index"],
        checks=[
            # paths are built from these: only the movie's own shard and frame names
            _frame_check("shard is shards/<movie_id>.tar",
                         pl.col("shard") == pl.lit("shards/") + pl.col("movie_id") + pl.lit(".tar")),
            _frame_check("member is <movie_id>/<5 digits>.png",
                         (pl.col("member").str.head(pl.col("movie_id").str.len_chars() + 1)
                          == pl.col("movie_id") + pl.lit("/"))
                         & pl.col("member").str.contains(r"^[a-z0-9-]+/\d{5}\.png$")),
        ],
    ),
    "qa": pa.DataFrameSchema(
        {
            "movie_id": _movie_id(),
            "qa_id": _text(unique=True),
            "level": pa.Column(Str, pa.Check.isin(list(QA_LEVELS))),
            "qtype": pa.Column(Str, pa.Check.isin(list(QTYPES))),
            "question": _text(),
            "answer": _text(),
            "options": pa.Column(StrList),
            "answer_index": pa.Column(Int, pa.Check.in_range(0, MAX_OPTIONS - 1)),
            "evidence_frames": pa.Column(IntList),
            "subject": pa.Column(Str, nullable=True),
            "source": _text(),
        },
        strict=True,
        checks=[
            _frame_check(f"{MIN_OPTIONS} to {MAX_OPTIONS} options",
                         pl.col("options").list.len().is_between(MIN_OPTIONS, MAX_OPTIONS)),
            _frame_check(
                "options distinct", pl.col("options").list.unique().list.len() == pl.col("options").list.len()
            ),
            _frame_check(
                "answer is the indexed option",
                pl.col("options").list.get(pl.col("answer_index"), null_on_oob=True)
                == pl.col("answer"),
            ),
            _frame_check("has evidence frames", pl.col("evidence_frames").list.len() >= 1),
        ],
    ),
}


def validate(table: str, df: pl.DataFrame, where: str = "") -> pl.DataFrame:
    """Check ``df`` against the ``table`` schema; raise ContractError naming what failed."""
    try:
        return SCHEMAS[table].validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise ContractError(describe_failures(table, exc.failure_cases, where)) from None
    except pa.errors.SchemaError as exc:  # a structural error (e.g. missing column)
        raise ContractError(f"table {table!r}{f' ({where})' if where else ''}: {exc}") from None


def describe_failures(table: str, cases: pl.DataFrame, where: str = "") -> str:
    place = f" ({where})" if where else ""
    lines = [f"table {table!r}{place} breaks its contract:"]
    for (column, check), group in cases.group_by(["column", "check"], maintain_order=True):
        rows = [int(i) for i in group["index"].to_list() if i is not None]
        values = group["failure_case"].head(3).to_list()
        col = f"column {column!r}" if column else "rows"
        shown = ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")
        lines.append(f"  {col}: check {check} fails on {len(rows) or len(group)} row(s) [{shown}], e.g. {values}")
    return "\n".join(lines)
