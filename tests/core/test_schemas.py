import re

import polars as pl
import pytest

from dreamframe_assets.core.schemas import ContractError, validate
from dreamframe_assets.core.store import plot_rows, rows_table


def frames_table(plot) -> pl.DataFrame:
    return rows_table("frames", plot_rows(plot)["frames"])


def test_plot_tables_match_their_schemas(plot):
    for table, rows in plot_rows(plot).items():
        validate(table, rows_table(table, rows))


def test_a_bad_value_names_table_column_and_rows(plot):
    df = frames_table(plot).with_columns(
        pl.when(pl.col("frame_index").is_in([1, 4])).then(pl.lit("fly")).otherwise(pl.col("action")).alias("action")
    )
    with pytest.raises(ContractError) as info:
        validate("frames", df, where="movie_plots/frames.parquet")
    message = str(info.value)
    assert "table 'frames' (movie_plots/frames.parquet)" in message
    assert "column 'action'" in message and "[1, 4]" in message and "fly" in message


def test_row_rules_and_missing_columns_are_reported(plot):
    df = frames_table(plot)
    hug_alone = df.with_columns(characters=pl.when(pl.col("action") == "hug").then(pl.lit(["c0"])).otherwise(pl.col("characters")))
    with pytest.raises(ContractError, match="hug needs two people"):
        validate("frames", hug_alone)
    with pytest.raises(ContractError, match="prompt"):
        validate("frames", df.drop("prompt"))


def test_qa_answer_must_be_the_indexed_option():
    row = dict(movie_id="m", qa_id="m-q0", level="grounded", qtype="count", question="How many?",
               answer="two", options=["one", "two", "three", "four"], answer_index=2, evidence_frames=[0],
               subject=None, source="frame:0:count")
    with pytest.raises(ContractError, match="answer is the indexed option"):
        validate("qa", rows_table("qa", [row]))
    validate("qa", rows_table("qa", [{**row, "answer_index": 1}]))


@pytest.mark.parametrize("change, rule", [
    ({"movie_id": "../../etc"}, "movie_id"),
    ({"movie_id": "Movie_1"}, "movie_id"),
    ({"shard": "../shards/m-1.tar"}, "shard is shards/<movie_id>.tar"),
    ({"shard": "shards/other-movie.tar"}, "shard is shards/<movie_id>.tar"),
    ({"member": "/etc/passwd"}, "member is <movie_id>/<5 digits>.png"),
    ({"member": "m-1/../../x.png"}, "member is <movie_id>/<5 digits>.png"),
    ({"member": "other-movie/00001.png"}, "member is <movie_id>/<5 digits>.png"),
])
def test_keyframe_rows_name_only_their_own_files(change, rule):
    """Paths are built from the keyframes table: a row that points elsewhere breaks its contract."""
    row = {"movie_id": "m-1", "frame_index": 0, "shard": "shards/m-1.tar", "member": "m-1/00000.png",
           "width": 8, "height": 8, "sha": "ab"}
    validate("keyframes", rows_table("keyframes", [row]))
    with pytest.raises(ContractError, match=re.escape(rule)):
        validate("keyframes", rows_table("keyframes", [{**row, **change}]))
