"""Which movies the dataset has, and what each has on disk: its files in a stage's folder,
its last state in each stage, and its attempts (``retries.yaml``)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.cache import bytes_digest, digest, write_atomic
from ..core.ids import movie_id_for
from ..core.params import Params, ParamsError, read_themes, story_files

STATUS_DIR = ".dreamframe/status"  # each movie's last state and attempt, per stage
# Movies redone with a fresh attempt, per stage. An input like params.yaml (a DVC dep,
# kept in git): a clone rebuilds the same attempts, so the same data.
RETRIES_FILE = "retries.yaml"


@dataclass
class MovieState:
    """How one movie came out of a stage this run."""

    movie_id: str
    # done | quarantined (a model could not write part of it) | failed | skipped (its upstream
    # was quarantined: the movie has no output here, and that is not an error)
    state: str
    attempt: int = 0
    cached: bool = False
    version: str = ""  # the data version of the files its item made (``files_version``); see ``movie_version``
    error: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    key: str = ""  # the item key its files were made from (a done movie)
    stamp: list = field(default_factory=list)  # [path in the stage folder, size, mtime_ns] of each of its files


def movie_sources(root: Path, params: Params) -> dict[str, tuple[str, str]]:
    """Every movie of the dataset: id -> ("theme", text) or ("story", path of an authors' file)."""
    return read_sources(root, params)[0]


def read_sources(root: Path, params: Params) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """The dataset's movies, and one line per theme or story file left out (see
    ``params.read_themes``; two sources whose ids collide: the second is left out)."""
    p = params.movie_plots
    themes, rejected = read_themes(root, p)
    sources: dict[str, tuple[str, str]] = {}
    found = [(movie_id_for(theme), ("theme", theme)) for theme in themes]
    # the paper authors' story files, imported as they are
    found += [("story-" + movie_id_for(path.stem), ("story", str(path))) for path in story_files(root, p)]
    for mid, source in found:
        if mid in sources:
            rejected.append(f"{source[0]} {source[1][:60]!r} gets the movie id {mid!r} of "
                            f"{sources[mid][0]} {sources[mid][1][:60]!r}; left out (reword it)")
            continue
        sources[mid] = source
    return sources, rejected


def movie_ids(root: Path, params: Params) -> list[str]:
    """The dataset's movie ids, in params order: the partition keys of every per-movie asset."""
    return list(movie_sources(root, params))


def status_path(root: Path, stage: str) -> Path:
    return Path(root) / STATUS_DIR / f"{stage}.json"


def read_status(root: Path, stage: str) -> dict[str, dict]:
    """Each movie's last state, attempt and error in ``stage`` (empty before the first run)."""
    path = status_path(root, stage)
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (ValueError, OSError) as exc:  # only a record of the last run: rebuilt by the next one
        logging.getLogger("dreamframe").warning("%s: unreadable (%s); starting it afresh", path, exc)
        return {}


def status_entry(s: MovieState) -> dict:
    return {"state": s.state, "attempt": s.attempt, "error": s.error, "version": s.version,
            **({"key": s.key, "stamp": s.stamp} if s.state != "failed" else {})}


def write_status(root: Path, stage: str, status: dict[str, dict]) -> None:
    write_atomic(status_path(root, stage), (json.dumps(status, indent=1, sort_keys=True) + "\n").encode())


def read_retries(root: Path) -> dict[str, dict[str, int]]:
    """``{stage: {movie_id: attempt}}`` from retries.yaml (empty when there is none)."""
    import yaml

    path = Path(root) / RETRIES_FILE
    data = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    bad = [k for k, v in data.items() if not isinstance(v, dict) or not all(isinstance(a, int) for a in v.values())]
    if bad:
        raise ParamsError(f"{RETRIES_FILE}: {bad}: expected 'stage: {{movie id: attempt number}}'")
    return data


def record_attempt(root: Path, stage: str, movie_id: str, attempt: int) -> None:
    """Note a movie's new attempt in retries.yaml (under a lock: runs of other stages write it too)."""
    from filelock import FileLock

    lock = Path(root) / STATUS_DIR / "retries.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        retries = read_retries(root)
        retries.setdefault(stage, {})[movie_id] = attempt
        write_retries(root, retries)


def write_retries(root: Path, retries: dict[str, dict[str, int]]) -> None:
    import yaml

    head = ("# Movies redone with a fresh attempt (dreamframe retry), per asset: movie id -> attempt.\n"
            "# An input of the pipeline, like params.yaml: commit it with the data.\n")
    body = yaml.safe_dump({k: dict(sorted(v.items())) for k, v in sorted(retries.items()) if v}, sort_keys=False)
    write_atomic(Path(root) / RETRIES_FILE, (head + (body if body.strip() != "{}" else "")).encode())


def movie_of(name: str, is_dir: bool) -> str:
    """The movie an entry of a stage's ``<kind>/`` folder belongs to: ``<movie_id>/`` or ``<movie_id>.<ext>``."""
    return name if is_dir else name.split(".")[0]


def movie_files(folder: Path, movie_id: str) -> list[Path]:
    """A movie's files in a stage folder: ``<kind>/<movie_id>.<ext>`` and ``<kind>/<movie_id>/...``."""
    found: list[Path] = []
    for sub in sorted(p for p in folder.glob("*") if p.is_dir()):
        for path in sub.glob(f"{movie_id}*"):
            if movie_of(path.name, path.is_dir()) != movie_id:
                continue
            found += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return found


def file_stamps(folder: Path, paths: Iterable[Path]) -> list[list]:
    """What a stage's run last wrote for a movie, cheaply recognised again: each file's path
    in the folder, size and modification time (what DVC's and make's up-to-date checks read)."""
    stamps = []
    for path in paths:
        st = path.stat()
        stamps.append([path.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns])
    return sorted(stamps)


def stamps_on_disk(folder: Path) -> dict[str, list[list]]:
    """``file_stamps`` of every movie's files in a stage folder, read in one walk of it."""
    found: dict[str, list[list]] = {}
    for sub in (e for e in os.scandir(folder) if e.is_dir()) if folder.is_dir() else ():
        for entry in os.scandir(sub.path):
            if entry.name.startswith("."):
                continue
            mid = movie_of(entry.name, entry.is_dir())
            if entry.is_dir():
                files = [Path(d, f) for d, _, names in os.walk(entry.path) for f in names if not f.startswith(".")]
            else:
                files = [Path(entry.path)]
            try:
                found.setdefault(mid, []).extend(file_stamps(folder, files))
            except FileNotFoundError:  # removed meanwhile (a run of the stage at work): stale either way
                found[mid] = [["(changing)", -1, -1]]
    return {mid: sorted(stamps) for mid, stamps in found.items()}


def files_version(folder: Path, files: Iterable[tuple[Path, bytes]]) -> str:
    """The data version of files in a stage folder: a digest of their paths in it and their contents.
    A run records it from the bytes it writes and ``disk_version`` reads it back from disk, so the
    same files have the same version however they got there (a run, ``dvc checkout``, DVC's run-cache)."""
    return digest(sorted((p.relative_to(folder).as_posix(), bytes_digest(data)) for p, data in files))


def disk_version(folder: Path, movie_id: str | None = None) -> str:
    """The data version of a movie's files in a stage folder as they are on disk (``NO_FILES`` when
    it has none); without ``movie_id``, of every file in the folder (eval_scores, not per movie)."""
    paths = movie_files(folder, movie_id) if movie_id else sorted(
        p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return files_version(folder, ((p, p.read_bytes()) for p in paths))


NO_FILES = files_version(Path(), [])  # the version of a movie with no files in a stage


def movie_version(folder: Path, m: MovieState) -> str:
    """A movie's data version after a run of a stage: a done movie's from the files the run just
    wrote (``MovieState.version``), any other's (quarantined, skipped: one file or none) read back."""
    return m.version if m.state == "done" else disk_version(folder, m.movie_id)


def remove_files(paths: list[Path], folder: Path) -> list[str]:
    """Delete a movie's files (and its emptied ``<kind>/<movie_id>/`` folder); their paths from the root."""
    for path in paths:
        path.unlink(missing_ok=True)
        parent = path.parent
        if parent.parent.parent == folder and parent.exists() and not any(parent.iterdir()):
            parent.rmdir()
    return [str(p.relative_to(folder.parents[1])) for p in paths]


def remove_other_movies(folder: Path, keep: set[str], root: Path) -> list[str]:
    """Files of movies no longer in the dataset (a removed theme takes its data with it)."""
    gone = []
    for sub in (p for p in folder.glob("*") if p.is_dir()):
        for path in sub.iterdir():
            if not path.name.startswith(".") and path.name.split(".")[0] not in keep:
                gone.append(str(path.relative_to(root)))
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    return gone
