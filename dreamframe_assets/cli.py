"""dreamframe: build, inspect, compare and export DreamFrame video-QA datasets.

Every command works on the project folder (the one holding params.yaml): the current directory unless --root or $DREAMFRAME_ROOT says otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from typer._click import exceptions as click_errors
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .core.params import ParamsError
from .pipeline.backends import checked_params
from .pipeline.code import STAGES
from .resources import project_root

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(soft_wrap=True)  # a line stays one line, whatever the terminal's width
err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("dreamframe")
LOG_FILE = ".dreamframe/logs/dreamframe.log"  # every run's details and stack traces, newest last
MAX_LINE = 400  # characters of one error line (a message can quote a huge theme or answer)
VERBOSE = {"on": False, "cli": False}  # cli: run as the ``dreamframe`` program (main), not called in process


@app.callback()
def options(verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show Dagster's step logs and stack traces (always kept in .dreamframe/logs).")] = False,
) -> None:
    VERBOSE["on"] = verbose
    _log_to(project_root(None))


def _log_to(root: Path) -> None:
    """Warnings on stderr as one line each; everything, traces included, in the project's log file.
    Only for the ``dreamframe`` program: a caller that runs the app in its own process keeps its
    own logging."""
    if not VERBOSE["cli"]:
        return
    log.setLevel(logging.DEBUG)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    screen = logging.StreamHandler()
    screen.setLevel(logging.DEBUG if VERBOSE["on"] else logging.WARNING)
    screen.setFormatter(_LowerLevel("%(message)s"))
    log.addHandler(screen)
    if (root / "params.yaml").exists():
        path = root / LOG_FILE
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            file = logging.FileHandler(path, encoding="utf-8")
        except OSError:
            return  # a read-only project still runs; its details go to the screen with --verbose
        file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(file)


class _LowerLevel(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()} {super().format(record)}"


def _line(text: str) -> str:
    """One line of an error: its first line, cut to MAX_LINE characters."""
    first = (text.strip().splitlines() or [""])[0]
    return first if len(first) <= MAX_LINE else first[:MAX_LINE] + "..."


def _error(message: str, hint: str = "") -> None:
    """An error on stderr: its first line after "error", the lines it lists (movies, keys) below,
    each cut to one screen line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()] or [""]
    err.print(f"[red]error[/red] {escape(_line(lines[0]))}" + escape(hint if len(lines) == 1 else ""), highlight=False)
    for line in lines[1:21]:
        err.print(f"  {escape(_line(line))}", highlight=False)
    if len(lines) > 21:
        err.print(f"  ... and {len(lines) - 21} more", highlight=False)
    if hint and len(lines) > 1:
        err.print(escape(hint.strip()), highlight=False)


def _details_hint() -> str:
    return "" if VERBOSE["on"] else f" (details: {LOG_FILE}, or run with --verbose)"

RootOption = Annotated[Optional[Path], typer.Option("--root", help="Project folder (default: $DREAMFRAME_ROOT or cwd).")]


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
            log.debug("%s failed:\n%s", event.step_key, error.to_string())
            while error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
                error = error.cause
            text = re.sub(rf"^[\w.]*\b{re.escape(error.cls_name)}: ", "", error.message.strip())
            if error.cls_name not in ("Failure", "StepError", "DagsterExecutionStepExecutionError"):
                text = f"{error.cls_name}: {text}"  # e.g. an OSError: its kind is part of the message
            messages.append(f"{event.step_key}: {text}")
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                messages.append(f"check {evaluation.check_name} failed: {evaluation.description}")
    return messages


def run_dagster(root: Path, assets: list[str], movies: list[str] | None = None, retry: bool = False,
                checks_only: bool = False, every: bool = False) -> bool:
    """Materialize assets (a run per stage over its stale movies, or ``movies``, or ``every`` one) in the project's instance; print what failed."""

    from .runs import UpToDate, check_assets, materialize_stages

    # Dagster's console shows each failure with its stack trace: only with --verbose; the
    # run's events (traces included) stay in the instance, and the lines below say what failed.
    level = os.environ.get("DREAMFRAME_LOG_LEVEL", "INFO" if VERBOSE["on"] else "CRITICAL")
    if checks_only:
        results = [check_assets(root, assets, log_level=level)]
    else:
        results = materialize_stages(root, assets, movies=movies, retry=retry, log_level=level, every=every)
    for result in results:
        if isinstance(result, UpToDate):
            step = result.step
            console.print(f"[green]{step.stage}[/green]: {step.counts.get('movies', 0)} movies, none stale (no run); "
                          f"{len(step.written)} file(s) written; {step.seconds:.1f}s", highlight=False)
            continue
        seen = set()
        for event in result.get_asset_materialization_events():
            mat = event.event_specific_data.materialization
            md = {k: v.value for k, v in mat.metadata.items()}
            if mat.asset_key in seen or "cache_hits" not in md:
                continue
            seen.add(mat.asset_key)
            counts = ", ".join(f"{v} {k[6:]}" for k, v in md.items()
                               if k.startswith("count_") and k not in ("count_files_written", "count_redone"))
            written = md.get("count_files_written", len(md.get("files_written", [])))
            state = "unchanged" if md.get("no_op") else f"{written} file(s) written"
            console.print(
                f"[green]{mat.asset_key.to_user_string()}[/green]: {counts}; cache {md.get('cache_hits', 0)} hit(s), "
                f"{md.get('cache_misses', 0)} miss(es); {state}; {md.get('seconds', 0):.1f}s",
                highlight=False,
            )
        failures = _failures(result)
        for message in failures:
            _error(message)
        if failures:
            err.print(f"run {result.run_id[:8]} in the Dagster instance{_details_hint()}", highlight=False)
    return bool(results) and all(r.success for r in results)


@app.command()
def materialize(
    assets: Annotated[Optional[list[str]], typer.Argument(help=f"Assets to build (default all): {', '.join(STAGES)}")] = None,
    movie: Annotated[Optional[list[str]], typer.Option("--movie", help="Only this movie (its partition); repeat for several.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every movie, not only the stale ones.")] = False,
    root: RootOption = None,
) -> None:
    """Materialize assets through Dagster, recorded in the project's instance: each per-movie
    asset in one run over its stale movie partitions (``--all``: every one; ``--movie``: those)."""
    root = project_root(root)
    _checked(root, stages=_selection(assets or []))
    try:
        ok = run_dagster(root, _selection(assets or []), movies=movie or None, every=every)
    except ValueError as exc:  # an unknown movie
        _error(str(exc))
        raise typer.Exit(2) from None
    if not ok:
        raise typer.Exit(1)


@app.command()
def run(
    assets: Annotated[Optional[list[str]], typer.Argument(help=f"Assets to build (default all, in order): {', '.join(STAGES)}")] = None,
    root: RootOption = None,
) -> None:
    """Build the dataset (or the named assets) asset by asset, with progress; unchanged items come from the cache."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    root = project_root(root)
    selected = [s for s in STAGES if s in _selection(assets or [])]
    _checked(root, stages=selected)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} assets"),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("building", total=len(selected))
        for stage in selected:
            progress.update(task, description=f"building {stage}")
            if not run_dagster(root, [stage]):
                raise typer.Exit(1)
            progress.advance(task)
    console.print(f"built {', '.join(selected)} in {root / 'data'}")


@app.command()
def retry(
    movies: Annotated[Optional[list[str]], typer.Argument(help="Movie ids to redo (default: the ones the flags pick).")] = None,
    quarantined: Annotated[bool, typer.Option("--quarantined", help="Movies a model could not fully write.")] = False,
    failed: Annotated[bool, typer.Option("--failed", help="Movies whose last run failed.")] = False,
    stage: Annotated[Optional[list[str]], typer.Option("--stage", help="Only these per-movie assets (default all).")] = None,
    root: RootOption = None,
) -> None:
    """Redo movies with a fresh attempt: new cache keys and model seeds, so the model is asked
    again instead of its cached answers being replayed (those stay on disk, for the record).
    Each movie is redone in the first asset where it is not done, then everything below it."""
    from .pipeline.movies import movie_ids, read_status
    from .pipeline.steps import PER_MOVIE

    root = project_root(root)
    ids = movie_ids(root, _checked(root, stages=list(STAGES)))
    if not (movies or quarantined or failed):
        raise typer.BadParameter("name movies, or pass --quarantined and/or --failed")
    unknown = [m for m in movies or [] if m not in ids]
    if unknown:
        raise typer.BadParameter(f"unknown movie(s) {unknown}; see: dreamframe status")
    wrong = [s for s in stage or [] if s not in PER_MOVIE]
    if wrong:
        raise typer.BadParameter(f"--stage {wrong}: choose from {', '.join(PER_MOVIE)}")
    stages = [s for s in PER_MOVIE if not stage or s in stage]
    picked = (("quarantined",) if quarantined else ()) + (("failed",) if failed else ()) or ("quarantined", "failed")
    statuses = {name: read_status(root, name) for name in stages}
    plan: dict[str, list[str]] = {}
    for mid in movies or ids:
        where = next((name for name in stages if statuses[name].get(mid, {}).get("state") in picked), None)
        if where is None and movies and not (quarantined or failed):
            where = stages[0]  # named, and done everywhere: redo it from the first asset
        if where:
            plan.setdefault(where, []).append(mid)
    if not plan:
        console.print("nothing to retry")
        return
    for name in STAGES[min(STAGES.index(s) for s in plan):]:  # stops at the first failure, as a build does
        redo = plan.get(name, [])
        others = [m for m in ids if m not in redo]
        if redo:
            console.print(f"{name}: retrying {len(redo)} movie(s): {', '.join(redo)}")
            if not run_dagster(root, [name], movies=redo, retry=True):
                raise typer.Exit(1)
        if (others or name not in PER_MOVIE) and not run_dagster(root, [name], movies=others if name in PER_MOVIE else None):
            raise typer.Exit(1)  # the rest below a redone movie (unchanged ones are cache hits)


@app.command()
def status(root: RootOption = None) -> None:
    """Each movie's state in each per-movie asset: done, quarantined or failed, and its attempt."""
    from .pipeline.movies import movie_ids, read_status
    from .pipeline.steps import PER_MOVIE

    root = project_root(root)
    ids = movie_ids(root, _checked(root))
    table = Table(title="Movies", show_header=True)
    table.add_column("movie")
    for name in PER_MOVIE:
        table.add_column(name)
    problems = []
    statuses = {name: read_status(root, name) for name in PER_MOVIE}
    for mid in ids:
        cells = []
        for name in PER_MOVIE:
            s = statuses[name].get(mid)
            cells.append("-" if s is None else s["state"] + (f" (attempt {s['attempt']})" if s["attempt"] else ""))
            if s and s["error"]:
                problems.append(f"{name} {mid}: {s['error'].splitlines()[0][:200]}")
        table.add_row(mid, *cells)
    console.print(table)
    for line in problems:
        console.print(escape(line), highlight=False)


def _checked(root: Path, stages: list[str] | None = None):
    """params.yaml checked before any work, and for ``stages`` (the ones about to be built) the
    servers and model folders they use; each theme left out is one warning line."""
    from .pipeline.movies import read_sources

    _log_to(root)
    try:
        params = checked_params(root)  # bad params fail here, before any work
        _, left_out = read_sources(root, params)
        if stages:
            from .pipeline.backends import preflight

            preflight(params, root, stages=stages)
    except ParamsError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    for line in left_out:
        err.print(f"[yellow]warning[/yellow] {escape(_line(line))}", highlight=False)
    return params


@app.command()
def validate(
    assets: Annotated[Optional[list[str]], typer.Argument(help="Assets whose checks to run (default all).")] = None,
    root: RootOption = None,
) -> None:
    """Check existing data: table contracts, oracle grounding, duplicates, language bias.
    Nothing is built or rewritten."""
    from .assets.common import STAGE_TABLES, contract_check
    from .assets.qa_pairs import grounded_check

    root = project_root(root)
    params = _checked(root)
    results = []
    for name in _selection(assets or []):
        if name in STAGE_TABLES:
            results.append((name, contract_check(root, name, STAGE_TABLES[name])))
        if name == "qa_pairs" and results[-1][1].passed:
            from .pipeline.steps import read_qa

            written = sorted({qa.movie_id for qa in read_qa(root)})
            try:
                results.append((name, grounded_check(root, params, written)))
            except Exception as exc:  # noqa: BLE001 - e.g. a plot gone since the QA was written
                _error(f"qa_pairs: cannot check the QA against its plots: {exc}")
                raise typer.Exit(1) from None
    passed = all(r.passed for _, r in results)
    for name, r in results:
        if not r.passed:
            _error(f"{name}: {r.description}")
    if "eval_scores" in _selection(assets or []):
        passed &= run_dagster(root, ["eval_scores"], checks_only=True)
    if not passed:
        raise typer.Exit(1)
    console.print("all checks passed")


app.command("check", hidden=True)(validate)


@app.command()
def show(
    movie: Annotated[str, typer.Argument(help="A movie id, or a unique part of one.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Where to write the contact sheet PNG.")] = None,
    questions: Annotated[int, typer.Option("--questions", help="How many QA pairs to print.")] = 8,
    root: RootOption = None,
) -> None:
    """One movie: its plot, some QA pairs, and a contact sheet of its keyframes."""
    from PIL import Image

    from .core.cache import write_atomic
    from .core.store import contact_sheet, png_bytes, read_plots
    from .pipeline.steps import read_keyframes, read_qa

    root = project_root(root)
    plots = read_plots(root)
    matches = [m for m in plots if m.startswith(movie)] or [m for m in plots if movie in m]
    if len(matches) != 1:
        known = ", ".join(sorted(plots)[:12])
        raise typer.BadParameter(f"{movie!r} matches {len(matches)} movies; movies: {known}")
    plot = plots[matches[0]]
    m = plot.movie
    console.print(f"[bold]{escape(m.title)}[/bold]  ({m.movie_id}; {escape(m.genre)}; {escape(m.style_keyword)} style)")
    console.print(escape(f"theme: {m.theme}\n\n{m.overview}\n"))
    for c in m.characters:
        console.print(escape(f"  {c.name}: {c.appearance}"))
    for sub in plot.substories:
        console.print(f"\n[bold]{sub.substory_index + 1}. {escape(sub.title)}[/bold] at {escape(sub.scene)}: {escape(sub.content)}")
    table = Table(title="QA pairs", show_lines=False)
    for col in ("qtype", "question", "answer", "frames"):
        table.add_column(col)
    qas = read_qa(root, [m.movie_id])
    for qa in qas[:questions]:
        table.add_row(qa.qtype, escape(qa.question), escape(qa.answer), ",".join(str(f + 1) for f in qa.evidence_frames[:6]))
    console.print(table)
    images = read_keyframes(root, m.movie_id)
    small = [np.asarray(Image.fromarray(img).resize((160, max(1, img.shape[0] * 160 // img.shape[1])))) for img in images]
    path = out or Path(f"{m.movie_id}.png")
    write_atomic(path, png_bytes(contact_sheet(small, columns=6)))
    console.print(f"{len(qas)} QA pairs; {len(images)} keyframes; contact sheet: {path}")


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
        ("qa_pairs", "data/qa_pairs/qa.parquet", "QA with 3 or 4 options and evidence frames"),
        ("eval_scores", "data/eval_scores/metrics.json", "metrics (dvc metrics show)"),
    ]:
        files.add_row(stage, path, what)
    console.print(files)
    scores = Table(title="Scores", show_header=True)
    scores.add_column("metric")
    scores.add_column("value", justify="right")
    for name, acc in m["accuracy"].items():
        scores.add_row(f"accuracy.{name}.overall", f"{acc['overall']:.3f}")
    if "language_bias_gap" in m:
        scores.add_row(f"language_bias_gap ({m['language_bias_probe']} - chance)", f"{m['language_bias_gap']:+.3f}")
    for key, value in m["style_consistency"].items():
        scores.add_row(f"style_consistency.{key}", f"{value:.3f}")
    for qtype, share in m["qtype_share"].items():
        scores.add_row(f"qtype_share.{qtype}", f"{share:.3f}")
    console.print(scores)


@app.command()
def diff(
    rev_a: Annotated[Optional[str], typer.Argument(help="A git revision whose data DVC holds (default HEAD).")] = "HEAD",
    rev_b: Annotated[Optional[str], typer.Argument(help="Another revision (default: the working tree).")] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write a self-contained HTML report here.")] = None,
    root: RootOption = None,
) -> None:
    """Compare two dataset versions: movies added / removed / changed, QA and qtype mix,
    metrics and params; read through DVC, never by re-running the pipeline."""
    from .dataset.diff import DiffError, run_diff

    try:
        run_diff(project_root(root), rev_a, rev_b, html_out=html, console=console)
    except DiffError as exc:
        _error(str(exc))
        raise typer.Exit(1) from None
    if html:
        console.print(f"report: {html}")


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="Folder to write into.")],
    format: Annotated[list[str], typer.Option("--format", "-f", help="llava, videochatgpt, hf, mp4 or authors; repeat for several.")] = ["hf"],
    fps: Annotated[float, typer.Option(help="mp4: keyframes per second.")] = 2.0,
    subtitles: Annotated[bool, typer.Option(help="mp4: burn dialogue lines into the frames (and write .srt).")] = True,
    frames_as: Annotated[str, typer.Option(help="llava: point at a frame 'folder' or the 'video'.")] = "folder",
    license: Annotated[str, typer.Option(help="hf: the dataset card's license.")] = "cc-by-4.0",
    questions: Annotated[str, typer.Option(
        help="llava / hf: multiple_choice (llava.json), open_ended (llava_open_ended.json: the question "
             "alone, the answer as text) or both files; the hf card says which.")] = "multiple_choice",
    root: RootOption = None,
) -> None:
    """Export the dataset for training: LLaVA / LLaMA-VID conversations, Video-ChatGPT QA,
    a Hugging Face Parquet dataset with a card, mp4 per movie, or the paper authors' story JSON."""
    from rich.progress import Progress

    from .dataset.export import FORMATS, QUESTIONS, export_all

    root = project_root(root)
    unknown = [f for f in format if f not in (*FORMATS, "authors")]
    if unknown:
        raise typer.BadParameter(f"unknown format(s) {unknown}; choose from {', '.join((*FORMATS, 'authors'))}")
    if questions not in QUESTIONS:
        raise typer.BadParameter(f"unknown --questions {questions!r}; choose from {', '.join(QUESTIONS)}")
    out.mkdir(parents=True, exist_ok=True)
    if "authors" in format:
        from .core.cache import write_atomic
        from .core.store import read_plots
        from .story.authors import export_story

        plots = read_plots(root)
        for movie_id, plot in plots.items():
            write_atomic(out / f"{movie_id}.json",
                         (json.dumps(export_story(plot), indent=2, ensure_ascii=False) + "\n").encode())
        console.print(f"authors: {len(plots)} story file(s) in {out}")
    formats = [f for f in format if f != "authors"]
    if formats:
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("exporting", total=None)
            summaries = export_all(root, out, formats, fps=fps, subtitles=subtitles, license=license,
                                   frames_as=frames_as, questions=questions, on_item=lambda done, total: progress.update(task, completed=done, total=total))
        for summary in summaries.values():
            console.print(f"{summary['format']}: {summary['counts']} -> {len(summary['files'])} file(s) in {out}")


@app.command()
def observe(root: RootOption = None) -> None:
    """Record the data on disk in the project's Dagster instance where it differs from what the
    instance last recorded: after dvc checkout, dvc exp apply, git checkout + dvc checkout, or a
    dvc repro served from DVC's run-cache (no Dagster run), so the UI shows the files that are there."""
    from .runs import observe as observe_disk

    root = project_root(root)
    _checked(root)
    recorded = observe_disk(root)
    for stage in STAGES:
        events = [e for e in recorded if e.asset_key.to_user_string() == stage]
        if events:
            what = f"{len(events)} movie(s) differ" if events[0].partition else "differs"
            console.print(f"{stage}: {what} from the last materialization; recorded", highlight=False)
    if not recorded:
        console.print("all assets agree with the instance")


@app.command()
def themes(
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many themes.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Another seed, other themes.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="The themes file to write (movie_plots.themes_file reads it).")] = Path("themes.txt"),
    force: Annotated[bool, typer.Option("--force", help="Replace a themes file that holds other themes.")] = False,
    writer: Annotated[str, typer.Option("--writer", help="offline, or llm: the movie_plots.llm model, asked in "
                                        "batches, near-duplicates dropped.")] = "offline",
    root: RootOption = None,
) -> None:
    """Write a themes file of COUNT varied one-line themes (offline: a protagonist, a goal, a place
    and a time, no two alike; or written by the movie_plots.llm model, near-duplicates dropped),
    e.g. for a paper-scale build: dreamframe themes --count 1000."""
    from .core.cache import write_atomic

    if writer not in ("offline", "llm"):
        raise typer.BadParameter(f"--writer {writer!r}: choose offline or llm")
    home = project_root(root)
    path = out if out.is_absolute() else home / out
    command = f"dreamframe themes --count {count} --seed {seed}"
    try:
        if writer == "llm":
            made, model, report = _llm_themes(home, count, seed)
            command += f" --writer llm (model {model or '-'})"
        else:
            from .story.themes import offline_themes

            made, report = offline_themes(count, seed), ""
    except ParamsError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    except ValueError as exc:
        _error(str(exc))
        raise typer.Exit(1 if writer == "llm" else 2) from None
    text = (f"# {count} themes written by: {command}\n" + "\n".join(made) + "\n").encode()
    if path.exists() and path.read_bytes() != text and not force:
        _error(f"{out}: exists and holds other themes; pass --force to replace it, or --out another file")
        raise typer.Exit(2)
    write_atomic(path, text)
    if report:
        console.print(escape(report), highlight=False)
    console.print(f"{count} themes in {path}", highlight=False)


def _llm_themes(root: Path, count: int, seed: int) -> tuple[list[str], str, str]:
    """(themes, model, one line on what was asked and dropped) from the project's movie_plots.llm,
    answers kept in the project's LLM cache; near-duplicates by the QA gates' embedder and threshold.
    Its server is checked first, so an unreachable one is one error line naming its key."""
    from .models.embed import TextEmbedder
    from .models.llm import CachedChat, LLMError, check_server, make_client
    from .pipeline.backends import EMBED_CACHE, LLM_CACHE
    from .story.themes import llm_themes

    _log_to(root)
    params = checked_params(root)
    llm = params.movie_plots.llm
    if llm.client == "openai":
        check_server(llm, "movie_plots.llm")
    client = make_client(llm, "movie_plots.llm")
    chat = CachedChat(client, root / LLM_CACHE)
    embedder = TextEmbedder(params.qa_pairs.embedder, root / EMBED_CACHE)
    try:
        made = llm_themes(chat, count, llm.seed + seed, embedder, params.qa_pairs.near_duplicate_threshold)
    except LLMError as exc:  # the server failed for good: a runtime failure, like a shortfall
        raise ValueError(f"movie_plots.llm: {exc}") from None
    finally:
        if hasattr(client, "close"):
            client.close()
    report = (f"llm: {made.asked} themes asked in {made.requests} request(s) ({chat.requests_sent} sent, "
              f"{chat.cache_hits} from the cache); {made.written} written, {len(made.themes)} kept; dropped "
              f"{made.near_duplicates} near-duplicates, {made.repeated} repeated, {made.invalid} invalid")
    return made.themes, llm.model, report


def main() -> None:
    """Entry point: an error is one line naming its culprit and a non-zero exit; the stack
    trace goes to the project's log (and to the screen with --verbose)."""
    from .core.schemas import ContractError
    from .story.authors import StoryFormatError

    VERBOSE["cli"] = True
    try:
        code = app(standalone_mode=False)  # errors come here, not to click's or typer's handlers
    except typer.Abort:
        err.print("[red]aborted[/red]")
        raise SystemExit(130) from None
    except click_errors.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except (ParamsError, ContractError, StoryFormatError, FileNotFoundError) as exc:
        log.debug("error", exc_info=True)
        _error(str(exc))
        raise SystemExit(1) from None
    except Exception as exc:  # noqa: BLE001 - anything else: one line, the trace in the log
        log.error("%s: %s", type(exc).__name__, exc, exc_info=True) if VERBOSE["on"] else \
            log.debug("unexpected error", exc_info=True)
        _error(f"{type(exc).__name__}: {exc}", _details_hint())
        raise SystemExit(1) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)
