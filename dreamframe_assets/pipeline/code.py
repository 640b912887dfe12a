"""Which code each stage runs: what decides when a stage's output is stale.

``code_files(stage)`` is the one answer. It is read from the source: the stage's entry
modules (its backends and helpers) and every module they import, anywhere in the file
(in functions too), followed to the end; plus the modules the steps import when they
load, and the prompt files when an LLM client is among them. Three things use it:
each item's cache key (through ``code_version``), the asset's ``code_version`` in the
Dagster UI, and the stage's ``deps`` in ``dvc.yaml`` (a test holds the file equal to
``dvc_deps``). An edit to any module an item can run redoes that item, and only the
items of stages that can run it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import xxhash

PACKAGE = Path(__file__).resolve().parents[1]
NAME = PACKAGE.name

# The modules that run a stage's movies: imported when they load (not inside their functions,
# which belong to one stage or another), for every stage.
SHARED: tuple[str, ...] = ("pipeline/steps.py", "pipeline/tables.py", "pipeline/movies.py", "pipeline/executor.py",
                           "pipeline/backends.py", "pipeline/code.py")
# Each stage's entry points: the backends params.yaml may name for it and the helpers its steps
# call; everything they import counts. Paths relative to the package; a folder means its modules.
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "movie_plots": ("story",),
    "style_banks": ("style", "render/look.py"),
    "keyframes": ("render", "models/diffusion.py"),
    "qa_pairs": ("qa/offline.py", "qa/llm.py", "qa/gates.py", "evaluate/faithfulness.py", "models/embed.py"),
    "eval_scores": ("evaluate", "qa/gates.py", "qa/oracle.py", "models/embed.py", "models/clip.py",
                    "models/detector.py"),
}
STAGES: tuple[str, ...] = tuple(STAGE_CODE)  # in the order they run
PROMPTS = "prompts"  # read by the LLM client (``models/llm.py``)

# What runs a stage without changing its data: DVC re-runs the stage when they change too.
RUNNER: tuple[str, ...] = ("assets/common.py", "assets/movies.py", "resources.py", "runs.py", "cli.py")


def module_name(path: Path) -> str:
    parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(module: str) -> Path:
    base = PACKAGE.parent / module.replace(".", "/")
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Modules of the package that ``path`` imports: anywhere in the file, or only when it loads."""
    stat = path.stat()
    return set(_imports(path, stat.st_mtime_ns, stat.st_size, top_level_only))


@cache
def _imports(path: Path, mtime_ns: int, size: int, top_level_only: bool) -> frozenset[str]:
    me = module_name(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    tree = ast.parse(path.read_text())
    nodes = _top_level(tree) if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == NAME}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.split(".")[0] != NAME:
                continue
            for alias in node.names:  # "from . import gates" imports a module
                sub = f"{target}.{alias.name}"
                found.add(sub if module_path(sub).exists() else target)
    return frozenset(found - {".".join(me)})


def _top_level(tree: ast.Module):
    """The statements that run when a module loads (not function bodies; ``if``/``try`` bodies are)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            continue  # TYPE_CHECKING imports never run
        stack.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def with_parents(module: str) -> set[str]:
    """A module and the packages above it (their ``__init__`` runs when it is imported)."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(modules: set[str], top_level_only: bool = False) -> set[str]:
    """``modules`` and every module of the package they import, followed to the end."""
    seen: set[str] = set()
    todo = [m for module in modules for m in with_parents(module)]
    while todo:
        module = todo.pop()
        if module in seen or not module_path(module).exists():
            continue
        seen.add(module)
        todo += [m for target in imports(module_path(module), top_level_only) for m in with_parents(target)]
    return seen


def _modules(rel: str) -> set[str]:
    path = PACKAGE / rel
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return {module_name(p) for p in files}


def code_files(stage: str) -> tuple[Path, ...]:
    """Every source file (``.py``, prompt ``.md``) that can run for one of the stage's items, sorted."""
    shared = closure({m for rel in SHARED for m in _modules(rel)}, top_level_only=True)
    modules = shared | closure({m for rel in STAGE_CODE[stage] for m in _modules(rel)})
    files = {module_path(m) for m in modules}
    if f"{NAME}.models.llm" in modules:
        files |= set((PACKAGE / PROMPTS).rglob("*.md"))
    return tuple(sorted(files))


def dvc_deps(stage: str) -> list[str]:
    """The paths ``dvc.yaml`` lists as the stage's code deps: ``code_files`` plus the runner,
    a folder where every module in it is listed."""
    files = {p.relative_to(PACKAGE) for p in code_files(stage)} | {Path(r) for r in (*RUNNER, f"assets/{stage}.py")}
    deps: set[Path] = set()
    for rel in files:
        folder = next((parent for parent in reversed(rel.parents[:-1])
                       if all(p.relative_to(PACKAGE) in files for p in (PACKAGE / parent).rglob("*")
                              if p.is_file() and p.suffix in (".py", ".md"))), None)
        deps.add(folder or rel)
    return sorted(f"{NAME}/{d.as_posix()}" for d in deps)


def code_version(stage: str) -> str:
    """Hash of the code the stage runs, so the UI marks the asset unsynced when it changes."""
    h = xxhash.xxh3_64()
    for path in code_files(stage):
        h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()
