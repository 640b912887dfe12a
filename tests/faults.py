"""Fault injection: ``kill -9`` of ``dreamframe run`` at random points of each asset, then a
re-run, on a project folder. Used by tests/pipeline/test_faults.py and bench/bench_faults.py.

What a kill must never cost: a movie whose files were on disk when the process died is not
computed again (its item was cached before its files were written), and the finished
dataset is byte for byte the dataset of a run that was never killed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STAGES = ("movie_plots", "style_banks", "keyframes", "qa_pairs", "eval_scores")
PER_MOVIE = STAGES[:4]
DREAMFRAME = str(Path(sys.executable).parent / "dreamframe")


def env(root: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("DREAMFRAME_CACHE", "DREAMFRAME_LOG_LEVEL")}
    return {**e, "DREAMFRAME_ROOT": str(root), "DAGSTER_HOME": str(root / ".dagster"), "DAGSTER_DISABLE_TELEMETRY": "1"}


def start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([DREAMFRAME, "run", *args], cwd=root, env=env(root), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finished(root: Path, stage: str) -> set[str]:
    """What of ``stage`` is on disk: its movies' files (per-movie stages) or its cached items (eval_scores)."""
    if stage in PER_MOVIE:
        return {p.stem for p in (root / "data" / stage / "movies").glob("*.json")}
    return {p.name for p in (root / ".dreamframe/cache" / stage).rglob("*") if p.is_file() and not p.name.startswith(".")}


def _started(root: Path, stage: str, since: float) -> bool:
    """Whether this run has reached ``stage``: it holds the stage's lock (see ``steps.stage_lock``)
    or has written the stage's status."""
    for mark in (f"{stage}.holder", f"{stage}.json"):  # the stage's lock, or its status at its end
        path = root / ".dreamframe/status" / mark
        try:
            if path.stat().st_mtime >= since:
                return True
        except FileNotFoundError:
            pass
    return False


@dataclass
class Fault:
    stage: str  # where the kill was aimed
    after: int  # ... after this many of its items were on disk (plus a random delay)
    killed: bool = False  # False: the run ended before the kill
    at: float = 0.0  # when
    running: str = ""  # the stage in progress at the kill (holding its lock), else the one aimed at
    on_disk: dict[str, set[str]] = field(default_factory=dict)  # per stage, at the kill


def kill_during(root: Path, stage: str, rng: random.Random, items: int) -> Fault:
    """Run ``dreamframe run`` and SIGKILL it (and its workers) once ``stage`` has 0..items-1 items
    on disk, plus a random delay of up to 50 ms."""
    fault = Fault(stage, rng.randrange(items))
    since = time.time() - 0.01
    proc = start(root)
    while proc.poll() is None:
        if _started(root, stage, since) and len(finished(root, stage)) >= fault.after:
            time.sleep(rng.uniform(0, 0.05))
            fault.on_disk = {s: finished(root, s) for s in STAGES}
            fault.at = time.time()
            fault.running = next((s for s in STAGES if (root / ".dreamframe/status" / f"{s}.holder").exists()), stage)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
                fault.killed = True
            except ProcessLookupError:
                pass
            break
        time.sleep(0.002)
    proc.communicate()
    fault.killed = fault.killed and proc.returncode == -signal.SIGKILL
    return fault


def _materializations(root: Path, stage: str, since: float) -> list:
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(root / ".dagster"))
    records = instance.fetch_materializations(dg.AssetKey(stage), limit=10_000).records
    return [r for r in records if r.timestamp >= since]


def redone(root: Path, since: float) -> dict[str, set[str]]:
    """Per stage, the items the runs recorded since ``since`` computed (not taken from the cache)."""
    out: dict[str, set[str]] = {}
    for stage in STAGES:
        for record in _materializations(root, stage, since):
            value = record.asset_materialization.metadata.get("redone")
            out.setdefault(stage, set()).update(value.value if value is not None else [])
    return out


def recovered(root: Path, fault: Fault) -> bool:
    """Whether a later run built the stage the kill cut short (its materialization is recorded)."""
    return bool(_materializations(root, fault.running, fault.at))


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "data").rglob("*")) if p.is_file()}


@dataclass
class Report:
    faults: int = 0  # kills that landed in a run
    recovered: int = 0  # kills after which a later run built the stage that was cut short
    lost: list[str] = field(default_factory=list)  # items on disk at a kill, computed again after it
    log: list[str] = field(default_factory=list)


def inject(root: Path, rounds: int, seed: int, items: int = 3) -> Report:
    """``rounds`` kills aimed at the assets in turn, each followed by the next (re-)run; then a
    run to the end. Returns what was killed, recovered and lost."""
    rng = random.Random(seed)
    report = Report()
    pending: Fault | None = None
    landed: list[Fault] = []
    for i in range(rounds):
        since = time.time() - 0.01
        fault = kill_during(root, STAGES[i % len(STAGES)], rng, items)
        _settle(root, pending, since, report, items)
        pending = fault if fault.killed else None
        landed += [fault] if fault.killed else []
        report.faults += fault.killed
        report.log.append(f"kill aimed at {fault.stage} after {fault.after}: {f'landed in {fault.running}' if fault.killed else 'run ended first'}")
    since = time.time() - 0.01
    proc = start(root)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise AssertionError(f"the run after the faults failed:\n{out}\n{err}")
    _settle(root, pending, since, report, items)
    report.recovered = sum(recovered(root, f) for f in landed)
    return report


def _settle(root: Path, fault: Fault | None, since: float, report: Report, items: int) -> None:
    """After a run that followed a kill: nothing on disk at the kill was computed again."""
    if fault is None:
        return
    for stage, names in redone(root, since).items():
        on_disk = fault.on_disk.get(stage, set())
        if stage in PER_MOVIE:
            report.lost += [f"{stage}: {name}" for name in names if name in on_disk]
        elif len(names) > items - len(on_disk):  # eval_scores' items are named by key, not movie
            report.lost.append(f"{stage}: {len(names) - (items - len(on_disk))} item(s)")
