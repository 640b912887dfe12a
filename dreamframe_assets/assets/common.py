"""What every asset does with a step's result: data version, metadata, contract check."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from ..core.schemas import ContractError
from ..core.store import read_table, stage_dir
from ..pipeline.code import code_version
from ..pipeline.steps import StepResult

__all__ = ["code_version", "contract_check", "image_md", "to_result"]


def _table(df: pl.DataFrame) -> dg.TableMetadataValue:
    df = df.head(10)
    columns = [dg.TableColumn(name, "string") for name in df.columns]
    records = [dg.TableRecord({k: str(v)[:120] for k, v in row.items()}) for row in df.iter_rows(named=True)]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def image_md(title: str, png: bytes) -> dg.MarkdownMetadataValue:
    """A PNG inline in the UI's metadata panel."""
    return dg.MetadataValue.md(f"### {title}\n![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


def to_result(result: StepResult, root: Path, params: Any = None, **extra: Any) -> dg.MaterializeResult:
    """A step's result as a materialization: content-hash data version plus metadata
    (counts, preview, cache hits and misses, timings, the stage's params, and ``extra``)."""
    metadata: dict = {
        "path": dg.MetadataValue.path(str(stage_dir(root, result.stage))),
        "no_op": result.misses == 0 and not result.written,
        "cache_hits": result.hits,
        "cache_misses": result.misses,
        "redone": dg.MetadataValue.json(result.redone),
        "files_written": dg.MetadataValue.json(result.written),
        "seconds": round(result.seconds, 3),
        **{f"count_{k}": v for k, v in result.counts.items()},
    }
    if result.preview is not None:
        metadata["preview"] = _table(result.preview)
    for key, value in result.extra.items():
        metadata[key] = dg.MetadataValue.json(value)
    if params is not None:
        metadata["params"] = dg.MetadataValue.json(params.model_dump())
    metadata.update(extra)
    return dg.MaterializeResult(data_version=dg.DataVersion(result.data_version), metadata=metadata)


def contract_check(root: Path, stage: str, tables: tuple[str, ...], files: tuple[str, ...] = ()) -> dg.AssetCheckResult:
    """Re-read the stage's tables from disk and validate them against their schemas."""
    folder = stage_dir(root, stage)
    problems = []
    rows = {}
    for table, name in zip(tables, files or tuple(f"{t}.parquet" for t in tables)):
        try:
            rows[name] = read_table(folder / name, table).height
        except (ContractError, FileNotFoundError, OSError) as exc:
            problems.append(str(exc))
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="\n".join(problems) or f"{len(tables)} table(s) match their schemas",
        metadata={"rows": dg.MetadataValue.json(rows)},
    )
