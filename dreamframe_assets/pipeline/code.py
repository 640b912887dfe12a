"""Which code each stage runs: the list that decides when a stage's output is stale.

Paths are relative to the package. Every stage also runs ``SHARED`` (the core types,
cache and store, and the steps). ``dvc.yaml`` lists the same paths as each stage's
``deps`` (a test holds the two together), and the asset's ``code_version`` hashes
them, so DVC and the Dagster UI agree on when code changed.
"""

from __future__ import annotations

from pathlib import Path

import xxhash

PACKAGE = Path(__file__).resolve().parents[1]

SHARED: tuple[str, ...] = ("core", "pipeline")
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "movie_plots": ("story", "models/llm.py", "models/answers.py", "models/device.py", "prompts"),
    "style_banks": ("style", "render", "models/diffusion.py", "models/device.py"),
    "keyframes": ("render", "models/diffusion.py", "models/device.py"),
    "qa_pairs": ("qa", "models/llm.py", "models/answers.py", "models/embed.py", "models/device.py", "prompts"),
    "eval_scores": ("evaluate", "qa", "models", "prompts"),
}
STAGES: tuple[str, ...] = tuple(STAGE_CODE)  # in the order they run


# What runs a stage without changing its data: DVC re-runs the stage when they change too.
RUNNER: tuple[str, ...] = ("assets/common.py", "resources.py", "cli.py")


def dvc_deps(stage: str) -> list[str]:
    """The package paths ``dvc.yaml`` lists as the stage's code deps."""
    return [f"{PACKAGE.name}/{rel}" for rel in (*SHARED, *STAGE_CODE[stage], f"assets/{stage}.py", *RUNNER)]


def code_files(stage: str) -> list[Path]:
    """Every source file (``.py``, prompt ``.md``) the stage runs, sorted."""
    files: set[Path] = set()
    for rel in (*SHARED, *STAGE_CODE[stage]):
        path = PACKAGE / rel
        files |= {p for p in path.rglob("*") if p.suffix in (".py", ".md") and p.is_file()} if path.is_dir() else {path}
    return sorted(files)


def code_version(stage: str) -> str:
    """Hash of the code the stage runs, so the UI marks the asset unsynced when it changes."""
    h = xxhash.xxh3_64()
    for path in code_files(stage):
        h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()
