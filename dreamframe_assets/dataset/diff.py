"""Compare two dataset versions: movies, QA mix, metrics and params, in the terminal or one HTML file.

A version is read through DVC, never rebuilt: ``rev=None`` is the working tree, a git
revision is read with ``dvc.api`` from the DVC cache (or remote) as that commit's
``dvc.lock`` names it, and ``metrics.json`` / ``params.yaml`` from git. So comparing
v1 with v2 costs reading a few Parquet files, and images only for the movies that differ.

Another revision's tables are data from outside this checkout, and they may predate
today's schemas, so what becomes a path (a movie id, a shard, a shard member) is held
to its rule before anything is read by it: a bad value stops the diff with one line
naming the file, the version and the value.
"""

from __future__ import annotations

import base64
import html
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
import yaml
from PIL import Image, ImageDraw

from ..core.cache import digest, write_atomic
from ..core.ids import is_movie_id
from ..core.store import DATA_DIR, PLOT_TABLES, keyframe_member_problem, shard_members

MOVIE_COLUMNS = ("movie_id", "title", "theme", "genre")
SHEET_FRAMES = 12  # keyframes per side of a contact sheet
SHEET_COLUMNS = 4
THUMB_WIDTH = 96


class DiffError(RuntimeError):
    """A version cannot be read (no such revision, its data is in no cache, or a file is malformed)."""


@dataclass
class Version:
    """What a comparison needs of one dataset version; images stay unread until a sheet asks."""

    label: str
    movies: pl.DataFrame  # movie_id, title, theme, genre
    hashes: dict[str, str]  # movie_id -> hash of its plot rows, keyframe shas and QA rows
    qa: pl.DataFrame  # the qa table
    keyframes: pl.DataFrame  # the keyframes index (movie_id, frame_index, member, sha, ...)
    metrics: dict[str, Any]
    params: dict[str, Any]
    read: Callable[[str], bytes] = field(repr=False)  # a repo-relative path's bytes at this version


@dataclass(frozen=True)
class MovieChange:
    movie_id: str
    status: str  # added | removed | changed
    title: str
    theme: str
    genre: str


@dataclass(frozen=True)
class QtypeDelta:
    qtype: str
    count_a: int
    count_b: int
    share_a: float
    share_b: float

    @property
    def delta(self) -> float:
        return self.share_b - self.share_a


@dataclass(frozen=True)
class MetricDelta:
    key: str  # dotted path into metrics.json
    a: float | None  # None: not in that version
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def differs(self) -> bool:
        return self.a != self.b


@dataclass(frozen=True)
class ParamDelta:
    key: str  # dotted path into params.yaml
    status: str  # changed | added | removed
    a: Any
    b: Any


@dataclass
class Diff:
    label_a: str
    label_b: str
    movies: list[MovieChange]  # every movie that is not unchanged
    unchanged: int
    qa_a: int
    qa_b: int
    qtypes: list[QtypeDelta]
    metrics: list[MetricDelta]  # every numeric metric of either version; ``differs`` picks the changes
    params: list[ParamDelta]  # only keys that differ

    def ids(self, status: str) -> list[str]:
        return [m.movie_id for m in self.movies if m.status == status]

    @property
    def added(self) -> list[str]:
        return self.ids("added")

    @property
    def removed(self) -> list[str]:
        return self.ids("removed")

    @property
    def changed(self) -> list[str]:
        return self.ids("changed")


# ---------------------------------------------------------------- loading
def _reader(root: Path, rev: str | None) -> tuple[Callable[[str], bytes], str]:
    """A function reading repo-relative paths at ``rev``, and the version's label.

    One ``dvc.api.DVCFileSystem`` per version, what ``dvc.api.read`` builds on every call
    (reusing it makes ten files ~10x faster): git-tracked files come from the commit,
    DVC outputs from the local cache or the remote, as that commit's ``dvc.lock`` names them.
    """
    if rev is None:
        return (lambda path: (Path(root) / path).read_bytes()), "working tree"
    from dvc.api import DVCFileSystem

    try:
        fs = DVCFileSystem(repo=str(root), rev=rev)
        sha = fs.repo.scm.resolve_rev(rev)
    except Exception as e:  # dvc raises its own error types for a bad repo or revision
        raise DiffError(f"cannot open revision {rev!r} of {root}: {e}") from e

    def read(path: str) -> bytes:
        try:
            return fs.read_bytes(path)
        except FileNotFoundError:
            raise
        except Exception as e:
            raise DiffError(f"{path} at {rev}: not readable through DVC ({e}); "
                            f"`dvc fetch --all-commits` brings old versions' data into the cache") from e

    label = rev if sha.startswith(rev) else f"{rev} ({sha[:7]})"
    return read, label


def _line(text: str, limit: int = 120) -> str:
    """Text as part of a one-line error: whitespace (line breaks too) collapsed, cut to ``limit``."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _shown(value: Any) -> str:
    """A value from a file as it goes into an error line: its repr, cut to 80 characters."""
    return _line(repr(value), 80)


def _read_table(read: Callable[[str], bytes], path: str, label: str) -> pl.DataFrame:
    """A table of this version whose every ``movie_id`` is a movie id (ids name files and shards)."""
    try:
        df = pl.read_parquet(io.BytesIO(read(path)))
    except FileNotFoundError as e:
        raise DiffError(f"{path}: missing in {label}; was the pipeline run (`dvc repro`) and committed?") from e
    except (OSError, pl.exceptions.PolarsError) as e:
        raise DiffError(f"{path} in {label}: not a readable Parquet table ({_line(str(e))})") from None
    if "movie_id" not in df.columns:
        raise DiffError(f"{path} in {label}: has no movie_id column")
    for value in df["movie_id"].unique(maintain_order=True).to_list():
        if not (isinstance(value, str) and is_movie_id(value)):
            raise DiffError(f"{path} in {label}: movie_id {_shown(value)} is not a movie id "
                            "(lower-case words joined by '-'); refusing to read this version")
    return df


def _check_keyframes(df: pl.DataFrame, path: str, label: str) -> None:
    """Each row's shard is its movie's ``shards/<movie_id>.tar`` and its member ``<movie_id>/<5 digits>.png``:
    the contact sheets read those names, so none may point elsewhere."""
    for column in ("frame_index", "shard", "member"):
        if column not in df.columns:
            raise DiffError(f"{path} in {label}: has no {column} column")
    for row in df.select("movie_id", "shard", "member").iter_rows(named=True):
        mid, shard, member = row["movie_id"], row["shard"], row["member"]
        if shard != f"shards/{mid}.tar":
            raise DiffError(f"{path} in {label}: movie {mid!r} names shard {_shown(shard)}, "
                            f"not shards/{mid}.tar; refusing to read this version")
        problem = keyframe_member_problem(member, mid)
        if problem:
            raise DiffError(f"{path} in {label}: {problem}; refusing to read this version")


def _mapping(data: bytes, path: str, label: str, parse: Callable[[bytes], Any]) -> dict[str, Any]:
    """A JSON or YAML file of this version that must hold a mapping (empty: none)."""
    try:
        value = parse(data)
    except (ValueError, yaml.YAMLError) as e:
        raise DiffError(f"{path} in {label}: not readable ({_line(str(e))})") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DiffError(f"{path} in {label}: expected a mapping, got {type(value).__name__}")
    return value


def _rows_by_movie(df: pl.DataFrame) -> dict[str, list[str]]:
    """Each movie's rows as canonical JSON, sorted, so row order in the file does not matter."""
    out: dict[str, list[str]] = {}
    for row in df.iter_rows(named=True):
        out.setdefault(row["movie_id"], []).append(json.dumps(row, sort_keys=True, default=str))
    return {mid: sorted(rows) for mid, rows in out.items()}


def load_version(root: Path, rev: str | None = None) -> Version:
    """Read one version's tables, metrics and params, without running any stage."""
    read, label = _reader(Path(root), rev)
    tables = {name: _read_table(read, f"{DATA_DIR}/movie_plots/{name}.parquet", label) for name in PLOT_TABLES}
    keyframes = _read_table(read, f"{DATA_DIR}/keyframes/keyframes.parquet", label)
    _check_keyframes(keyframes, f"{DATA_DIR}/keyframes/keyframes.parquet", label)
    qa = _read_table(read, f"{DATA_DIR}/qa_pairs/qa.parquet", label)
    parts = {**{f"movie_plots/{n}": df for n, df in tables.items()}, "keyframes": keyframes, "qa": qa}
    grouped = {name: _rows_by_movie(df) for name, df in parts.items()}
    movies = tables["movies"].select(MOVIE_COLUMNS)
    hashes = {mid: digest({name: rows.get(mid, []) for name, rows in grouped.items()})
              for mid in movies["movie_id"]}
    try:
        metrics = _mapping(read(f"{DATA_DIR}/eval_scores/metrics.json"), f"{DATA_DIR}/eval_scores/metrics.json",
                           label, json.loads)
    except FileNotFoundError:
        metrics = {}
    params = _mapping(read("params.yaml"), "params.yaml", label, yaml.safe_load)
    return Version(label, movies, hashes, qa, keyframes, metrics, params, read)


# ---------------------------------------------------------------- comparing
def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _numeric(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _qtype_counts(qa: pl.DataFrame) -> dict[str, int]:
    return dict(qa["qtype"].value_counts().iter_rows()) if qa.height else {}


def compare(a: Version, b: Version) -> Diff:
    """What changed from ``a`` to ``b``: movies by content hash, QA mix, metrics, params."""
    info = {r["movie_id"]: r for df in (a.movies, b.movies) for r in df.iter_rows(named=True)}
    movies: list[MovieChange] = []
    unchanged = 0
    for mid in sorted(set(a.hashes) | set(b.hashes)):
        if mid not in a.hashes:
            status = "added"
        elif mid not in b.hashes:
            status = "removed"
        elif a.hashes[mid] != b.hashes[mid]:
            status = "changed"
        else:
            unchanged += 1
            continue
        r = info[mid]
        movies.append(MovieChange(mid, status, r["title"], r["theme"], r["genre"]))
    movies.sort(key=lambda m: (("added", "removed", "changed").index(m.status), m.movie_id))

    ca, cb = _qtype_counts(a.qa), _qtype_counts(b.qa)
    qtypes = [QtypeDelta(q, ca.get(q, 0), cb.get(q, 0), ca.get(q, 0) / max(a.qa.height, 1),
                         cb.get(q, 0) / max(b.qa.height, 1)) for q in sorted(set(ca) | set(cb))]

    ma = {k: _numeric(v) for k, v in flatten(a.metrics).items()}
    mb = {k: _numeric(v) for k, v in flatten(b.metrics).items()}
    metrics = [MetricDelta(k, ma.get(k), mb.get(k)) for k in sorted(set(ma) | set(mb))
               if ma.get(k) is not None or mb.get(k) is not None]

    pa, pb = flatten(a.params), flatten(b.params)
    params = []
    for k in sorted(set(pa) | set(pb)):
        if k not in pa:
            params.append(ParamDelta(k, "added", None, pb[k]))
        elif k not in pb:
            params.append(ParamDelta(k, "removed", pa[k], None))
        elif pa[k] != pb[k]:
            params.append(ParamDelta(k, "changed", pa[k], pb[k]))
    return Diff(a.label, b.label, movies, unchanged, a.qa.height, b.qa.height, qtypes, metrics, params)


def run_diff(root: Path, rev_a: str | None = "HEAD", rev_b: str | None = None, html_out: Path | None = None,
             console: Any = None) -> Diff:
    """What the CLI calls: load both versions, print the diff, write the HTML report if asked."""
    from rich.console import Console

    a, b = load_version(root, rev_a), load_version(root, rev_b)
    diff = compare(a, b)
    console = console or Console()
    print_diff(diff, console)
    if html_out is not None:
        html_report(diff, a, b, Path(html_out))
        console.print(f"report: {html_out}")
    return diff


# ---------------------------------------------------------------- terminal
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    text = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _param_values(a: Any, b: Any) -> tuple[str, str]:
    """Two values of a key; of two lists only the items one has and the other lacks."""
    if isinstance(a, list) and isinstance(b, list):
        only_a, only_b = [x for x in a if x not in b], [x for x in b if x not in a]
        if only_a or only_b:
            return "; ".join(f"- {_fmt(x)}" for x in only_a) or "-", "; ".join(f"+ {_fmt(x)}" for x in only_b) or "-"
    return _fmt(a), _fmt(b)


def _signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.4g}"


def _sections(diff: Diff) -> list[tuple[str, list[str], list[list[str]]]]:
    """The diff as (title, header, rows) tables, shared by the terminal and the HTML report."""
    changed_metrics = [m for m in diff.metrics if m.differs]
    return [
        (f"Movies ({len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed, "
         f"{diff.unchanged} unchanged)",
         ["status", "movie_id", "title", "genre", "theme"],
         [[m.status, m.movie_id, m.title, m.genre, m.theme] for m in diff.movies]),
        (f"QA pairs: {diff.qa_a} -> {diff.qa_b} ({diff.qa_b - diff.qa_a:+d})",
         ["qtype", "count a", "count b", "share a", "share b", "delta"],
         [[q.qtype, str(q.count_a), str(q.count_b), f"{q.share_a:.3f}", f"{q.share_b:.3f}", f"{q.delta:+.3f}"]
          for q in diff.qtypes]),
        (f"Metrics ({len(changed_metrics)} of {len(diff.metrics)} differ)",
         ["metric", "a", "b", "delta"],
         [[m.key, _fmt(m.a), _fmt(m.b), _signed(m.delta)] for m in changed_metrics]),
        (f"Params ({len(diff.params)} differ)",
         ["key", "status", "a", "b"],
         [[p.key, p.status, *_param_values(p.a, p.b)] for p in diff.params]),
    ]


def print_diff(diff: Diff, console: Any) -> None:
    """The diff as rich tables."""
    from rich.table import Table

    console.print(f"[bold]{diff.label_a}[/] -> [bold]{diff.label_b}[/]")
    for title, header, rows in _sections(diff):
        table = Table(title=title, title_justify="left")
        for name in header:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table if rows else f"{title}: none")


# ---------------------------------------------------------------- report
def _png(fig) -> bytes:
    from ..evaluate.charts import _figure

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    _figure().close(fig)
    return buf.getvalue()


def qtype_chart(diff: Diff) -> bytes:
    """The qtype mix of both versions, side by side per qtype."""
    from ..evaluate.charts import _figure

    plt = _figure()
    names = [q.qtype for q in diff.qtypes][::-1]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(names) + 1.2))
    ax.barh(y + 0.2, [q.share_a for q in diff.qtypes][::-1], height=0.4, color="#8c8c8c", label=diff.label_a)
    ax.barh(y - 0.2, [q.share_b for q in diff.qtypes][::-1], height=0.4, color="#4c72b0", label=diff.label_b)
    ax.set_yticks(y, names)
    ax.set_xlabel("share of QA pairs")
    ax.set_title("Question types")
    ax.legend(loc="lower right")
    return _png(fig)


def metric_chart(diff: Diff, top: int = 20) -> bytes | None:
    """The largest changes of rates and shares (b minus a); counts, on another scale, are in the table."""
    from ..evaluate.charts import _figure

    moved = sorted((m for m in diff.metrics if m.delta and not m.key.startswith("counts.")),
                   key=lambda m: -abs(m.delta))[:top]
    if not moved:
        return None
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(moved) + 1.2))
    ax.barh([m.key for m in moved][::-1], [m.delta for m in moved][::-1],
            color=["#55a868" if m.delta > 0 else "#c44e52" for m in moved][::-1])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"{diff.label_b} minus {diff.label_a}")
    ax.set_title(f"Metric deltas (largest {len(moved)})")
    return _png(fig)


def _thumbnails(version: Version, movie_id: str) -> list[Image.Image]:
    """Up to SHEET_FRAMES of the movie's keyframes, evenly spaced, read from its shard at this version."""
    rows = version.keyframes.filter(pl.col("movie_id") == movie_id).sort("frame_index")
    if rows.height == 0:
        return []
    pick = sorted({int(i) for i in np.linspace(0, rows.height - 1, min(SHEET_FRAMES, rows.height)).round()})
    path = f"{DATA_DIR}/keyframes/{rows['shard'][0]}"  # shards/<movie_id>.tar: checked by load_version
    try:
        members = shard_members(version.read(path))
    except (tarfile.TarError, EOFError) as e:
        raise DiffError(f"{path} in {version.label}: not a readable tar shard ({_line(str(e))})") from None
    names = rows["member"].to_list()
    thumbs = []
    for i in pick:
        if names[i] not in members:
            raise DiffError(f"{path} in {version.label}: has no member {names[i]!r} (the keyframes index names it)")
        try:
            img = Image.open(io.BytesIO(members[names[i]])).convert("RGB")
        except OSError as e:
            raise DiffError(f"{path} in {version.label}: {names[i]} is not an image ({_line(str(e))})") from None
        img.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 4))
        thumbs.append(img)
    return thumbs


def _panel(thumbs: list[Image.Image], caption: str) -> Image.Image:
    """One side of a sheet: a caption over a grid of thumbnails."""
    pad, head = 4, 18
    w = max((t.width for t in thumbs), default=THUMB_WIDTH)
    h = max((t.height for t in thumbs), default=THUMB_WIDTH // 2)
    rows = max(1, -(-len(thumbs) // SHEET_COLUMNS))
    panel = Image.new("RGB", (SHEET_COLUMNS * (w + pad) + pad, head + rows * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(panel)
    draw.text((pad, 3), caption, fill="black")
    if not thumbs:
        draw.text((pad, head + h // 2 - 5), "(not in this version)", fill="#888888")
    for i, t in enumerate(thumbs):
        r, c = divmod(i, SHEET_COLUMNS)
        panel.paste(t, (pad + c * (w + pad), head + pad + r * (h + pad)))
    return panel


def contact_sheet(a: Version, b: Version, movie_id: str) -> bytes:
    """A movie's keyframes at version a (left) and b (right), as one PNG."""
    left = _panel(_thumbnails(a, movie_id), f"a: {a.label}")
    right = _panel(_thumbnails(b, movie_id), f"b: {b.label}")
    gap = 12
    sheet = Image.new("RGB", (left.width + gap + right.width, max(left.height, right.height)), "#dddddd")
    sheet.paste(left, (0, 0))
    sheet.paste(right, (left.width + gap, 0))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p class=none>none</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
th{background:#f2f2f2}.none{color:#888}.summary td:first-child{font-weight:bold}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}img{max-width:100%}
"""


def html_report(diff: Diff, a: Version, b: Version, path: Path) -> Path:
    """One self-contained HTML file: summary, tables, charts and contact sheets, images inline."""
    t = html.escape
    summary = [["versions", f"a = {diff.label_a}, b = {diff.label_b}"],
               ["movies", f"{a.movies.height} -> {b.movies.height}: {len(diff.added)} added, "
                          f"{len(diff.removed)} removed, {len(diff.changed)} changed, {diff.unchanged} unchanged"],
               ["QA pairs", f"{diff.qa_a} -> {diff.qa_b} ({diff.qa_b - diff.qa_a:+d})"],
               ["metrics", f"{sum(m.differs for m in diff.metrics)} of {len(diff.metrics)} differ"],
               ["params", f"{len(diff.params)} keys differ"]]
    parts = [f"<h1>Dataset diff: {t(diff.label_a)} &rarr; {t(diff.label_b)}</h1>",
             '<table class="summary">' + "".join(f"<tr><td>{t(k)}</td><td>{t(v)}</td></tr>" for k, v in summary)
             + "</table>"]
    for title, header, rows in _sections(diff):
        parts += [f"<h2>{t(title)}</h2>", _html_table(header, rows)]
    parts.append("<h2>Charts</h2>")
    if diff.qtypes:
        parts.append(f"<figure>{_img(qtype_chart(diff), 'qtype mix')}</figure>")
    chart = metric_chart(diff)
    if chart is not None:
        parts.append(f"<figure>{_img(chart, 'metric deltas')}</figure>")
    if diff.movies:
        parts.append("<h2>Keyframes of the movies that differ (a left, b right)</h2>")
    for m in diff.movies:
        caption = f"{m.status}: {m.title} ({m.movie_id})"
        parts.append(f"<figure>{_img(contact_sheet(a, b, m.movie_id), caption)}"
                     f"<figcaption>{t(caption)}</figcaption></figure>")
    doc = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Dataset diff</title>"
           f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, doc.encode("utf-8"))
    return path
