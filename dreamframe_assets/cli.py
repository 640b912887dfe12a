"""The ``dreamframe`` command: materialize assets (what each DVC stage runs), check, summarize."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from .params import ParamsError, load_params
from .resources import project_root

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
err = Console(stderr=True)

STAGES = ("movie_plots", "style_banks", "keyframes", "qa_pairs", "eval_scores")
DAGSTER_YAML = "telemetry:\n  enabled: false\n"

RootOption = Annotated[Optional[Path], typer.Option("--root", help="Project folder (default: $DREAMFRAME_ROOT or cwd).")]


def use_instance(root: Path):
    """The Dagster instance in the project (``.dagster``), the one ``make ui`` shows."""
    from dagster import DagsterInstance

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(root / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    return DagsterInstance.get()


def _selection(assets: list[str]) -> list[str]:
    unknown = [a for a in assets if a not in STAGES]
    if unknown:
        raise typer.BadParameter(f"unknown asset(s) {unknown}; choose from {', '.join(STAGES)}")
    return assets or list(STAGES)


def _failures(result) -> list[str]:
    """What went wrong, one message per failed asset or check, without Dagster's wrapping."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            if error.cls_name == "DagsterAssetCheckFailedError":
                continue  # reported from the check's own evaluation below
            while error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
                error = error.cause
            text = error.message.strip()
            text = text.split(": ", 1)[1] if text.startswith(f"{error.cls_name}: ") else text
            messages.append(f"{event.step_key}: {text}")
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                messages.append(f"check {evaluation.check_name} failed: {evaluation.description}")
    return messages


def run_dagster(root: Path, assets: list[str], checks_only: bool = False) -> bool:
    """Materialize (or only check) assets in the project's instance; print what failed."""
    import dagster as dg

    from .definitions import defs

    selection = dg.AssetSelection.assets(*assets)
    if checks_only:
        selection = dg.AssetSelection.checks_for_assets(*assets)
    os.environ["DREAMFRAME_ROOT"] = str(root)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=selection,
        instance=use_instance(root),
        resources={"workspace": defs.resources["workspace"]},
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": os.environ.get("DREAMFRAME_LOG_LEVEL", "WARNING")}}}},
    )
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        md = {k: v.value for k, v in mat.metadata.items()}
        counts = ", ".join(f"{v} {k[6:]}" for k, v in md.items() if k.startswith("count_"))
        state = "unchanged" if md.get("no_op") else f"{len(md.get('files_written', []))} file(s) written"
        console.print(
            f"[green]{mat.asset_key.to_user_string()}[/green]: {counts}; cache {md.get('cache_hits', 0)} hit(s), "
            f"{md.get('cache_misses', 0)} miss(es); {state}; {md.get('seconds', 0):.1f}s",
            highlight=False,
        )
    for message in _failures(result):
        err.print(f"[red]error[/red] {message}", highlight=False)
    return result.success


@app.command()
def materialize(
    assets: Annotated[Optional[list[str]], typer.Argument(help=f"Assets to build (default all): {', '.join(STAGES)}")] = None,
    root: RootOption = None,
) -> None:
    """Materialize assets through Dagster, recorded in the project's instance."""
    root = project_root(root)
    try:
        load_params(root)  # bad params fail here, before any work
    except ParamsError as exc:
        err.print(f"[red]error[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if not run_dagster(root, _selection(assets or [])):
        raise typer.Exit(1)


@app.command()
def check(
    assets: Annotated[Optional[list[str]], typer.Argument(help="Assets whose checks to run (default all).")] = None,
    root: RootOption = None,
) -> None:
    """Run the asset checks (table contracts, oracle grounding) on existing data."""
    root = project_root(root)
    if not run_dagster(root, _selection(assets or []), checks_only=True):
        raise typer.Exit(1)
    console.print("all checks passed")


@app.command()
def summary(root: RootOption = None) -> None:
    """Where the dataset is and what is in it."""
    root = project_root(root)
    metrics_path = root / "data" / "eval_scores" / "metrics.json"
    if not metrics_path.exists():
        err.print(f"[red]error[/red] {metrics_path} not found: build the dataset first (make run)")
        raise typer.Exit(1)
    m = json.loads(metrics_path.read_text())
    c = m["counts"]
    console.print(f"[bold]DreamFrame dataset[/bold] in {root / 'data'}")
    console.print(f"  {c['movies']} movies, {c['frames']} keyframes, {c['qa_pairs']} QA pairs, {c['dialogue_lines']} dialogue lines")
    files = Table(title="Files", show_header=True)
    files.add_column("asset")
    files.add_column("path")
    files.add_column("what")
    for stage, path, what in [
        ("movie_plots", "data/movie_plots/*.parquet", "movies, characters, substories, tinystories, frames, dialogue, plot_qa"),
        ("style_banks", "data/style_banks/", "styles.parquet + references/<movie>.png"),
        ("keyframes", "data/keyframes/", "keyframes.parquet + shards/<movie>.tar (PNGs)"),
        ("qa_pairs", "data/qa_pairs/qa.parquet", "QA with 4 options and evidence frames"),
        ("eval_scores", "data/eval_scores/metrics.json", "metrics (dvc metrics show)"),
    ]:
        files.add_row(stage, path, what)
    console.print(files)
    scores = Table(title="Scores", show_header=True)
    scores.add_column("metric")
    scores.add_column("value", justify="right")
    for name, acc in m["accuracy"].items():
        scores.add_row(f"accuracy.{name}.overall", f"{acc['overall']:.3f}")
    for key, value in m["style_consistency"].items():
        scores.add_row(f"style_consistency.{key}", f"{value:.3f}")
    for qtype, share in m["qtype_share"].items():
        scores.add_row(f"qtype_share.{qtype}", f"{share:.3f}")
    console.print(scores)


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="Folder to write into.")],
    format: Annotated[str, typer.Option("--format", help="authors: the paper authors' story JSON, one file per movie.")] = "authors",
    root: RootOption = None,
) -> None:
    """Export the built movies to another format."""
    from .authors import export_story
    from .store import read_plots

    if format != "authors":
        err.print(f"[red]error[/red] --format: unknown format {format!r} (known: authors)")
        raise typer.Exit(2)
    plots = read_plots(project_root(root))
    out.mkdir(parents=True, exist_ok=True)
    for movie_id, plot in plots.items():
        (out / f"{movie_id}.json").write_text(json.dumps(export_story(plot), indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote {len(plots)} movie(s) to {out}")
