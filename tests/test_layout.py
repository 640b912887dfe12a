"""The package's rooms and the way their imports point, read from the source.

Rooms are ranked: a module may import its own room or a lower-ranked one, never a
higher one, so domain rooms (story, style, render, qa, evaluate, models) never import
the pipeline, the Dagster assets or the CLI. Every import counts, also the ones inside
functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

from dreamframe_assets.pipeline.code import NAME, PACKAGE, imports, module_name

RANK = {
    "core": 0,  # params, plot types, vocabulary, schemas, cache, store, ids
    "models": 1,  # clients and loaders: LLM, diffusion, CLIP, VLM, embeddings, device
    "story": 2,  # story writers and the authors' importer
    "render": 2,  # keyframe renderers
    "qa": 2,  # QA writers, the oracle and the gates
    "style": 3,  # style learners (they draw their references with the renderer)
    "evaluate": 4,  # answerers, metrics, charts
    "pipeline": 5,  # backends by name, the steps, which code each stage runs
    "dataset": 6, "resources": 6,  # the built dataset: diff, export; Dagster resources
    "assets": 7, "definitions": 8, "runs": 9, "cli": 10, "__main__": 11,
}


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def room(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_module_lives_in_a_ranked_room():
    loose = [m for m in GRAPH if m != NAME and room(m) not in RANK]
    assert not loose, f"modules outside the rooms (add them to a room): {loose}"


def test_imports_point_down_the_rooms():
    wrong = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items() if m != NAME
        for t in targets
        if room(t) != room(m) and RANK.get(room(t), 99) >= RANK[room(m)]
    ]
    assert not wrong, "imports against the rooms' direction:\n  " + "\n  ".join(wrong)


def test_no_import_cycles():
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for t in sorted(GRAPH.get(m, ())):
            if seen.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in seen:
                visit(t)
        stack.pop()
        seen[m] = 2

    for m in GRAPH:
        if m not in seen:
            visit(m)
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_the_graph_is_read():
    """The reader sees real edges (a reader that finds none would pass everything above)."""
    assert "dreamframe_assets.core.plot" in GRAPH["dreamframe_assets.story.offline"]
    assert "dreamframe_assets.qa.gates" in GRAPH["dreamframe_assets.pipeline.steps"]
    assert "dreamframe_assets.models.llm" in GRAPH["dreamframe_assets.evaluate.choice"]
