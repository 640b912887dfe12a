"""Backends by name: what ``params.yaml`` may choose for each stage.

Each stage talks to its backend through one small method (``write``, ``learn``,
``render``, ``answer``) plus ``identity()``, a string that names the backend and
its settings and goes into every cache key, so switching backends never reuses
another backend's results. Real model backends register here beside the
embedded offline ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.params import Params, ParamsError, load_params

LLM_CACHE = ".dreamframe/llm"  # every model response, so none is paid for twice
EMBED_CACHE = ".dreamframe/embeddings"  # one sentence embedding per unique text


def _story_offline(params, root: Path):
    from ..story.offline import OfflineStoryWriter

    return OfflineStoryWriter()


def _story_llm(params, root: Path):
    from ..story.llm import LLMStoryWriter

    return LLMStoryWriter(params, cache_dir=Path(root) / LLM_CACHE)


def _style_offline(params, root: Path):
    from ..style.offline import OfflineStyleLearner

    return OfflineStyleLearner()


def _style_textual_inversion(params, root: Path):
    from ..core.ids import movie_id_for
    from ..style.textual_inversion import TextualInversionLearner

    # The authors' style embeddings: <story>.pt beside an imported <story>.json.
    folder = Path(root) / params.embeddings_dir
    imported = {"story-" + movie_id_for(p.stem): p for p in sorted(folder.glob("*.pt"))} if folder.is_dir() else {}
    return TextualInversionLearner(params, imported=imported)


def _render_offline(params, root: Path):
    from ..render.offline import OfflineRenderer

    return OfflineRenderer()


def _render_diffusion(params, root: Path):
    from ..render.diffusion import DiffusionRenderer

    return DiffusionRenderer(params)


def _qa_offline(params, root: Path):
    from ..qa.offline import OfflineQAWriter

    return OfflineQAWriter()


def _qa_llm(params, root: Path):
    from ..qa.llm import LLMQAWriter

    return LLMQAWriter(params, cache_dir=Path(root) / LLM_CACHE)


def _answerer(name: str) -> Callable[[Any, Path], Any]:
    def make(params, root: Path):
        if name == "random":
            from ..evaluate.chance import RandomAnswerer

            return RandomAnswerer(params.seed)
        if name == "oracle":
            from ..qa.oracle import OracleAnswerer

            return OracleAnswerer()
        if name == "blind":
            from ..evaluate.blind import BlindAnswerer

            return BlindAnswerer(params, cache_dir=Path(root) / EMBED_CACHE, llm_cache_dir=Path(root) / LLM_CACHE)
        if name == "pixel":
            from ..evaluate.pixel import PixelAnswerer

            return PixelAnswerer()
        from ..evaluate.vlm import VLMAnswerer

        return VLMAnswerer(params)

    return make


# Each factory takes the stage's params group and the project root.
STORY_WRITERS: dict[str, Callable[[Any, Path], Any]] = {"offline": _story_offline, "llm": _story_llm}
STYLE_LEARNERS: dict[str, Callable[[Any, Path], Any]] = {
    "offline": _style_offline,
    "textual_inversion": _style_textual_inversion,
}
RENDERERS: dict[str, Callable[[Any, Path], Any]] = {"offline": _render_offline, "diffusion": _render_diffusion}
QA_WRITERS: dict[str, Callable[[Any, Path], Any]] = {"offline": _qa_offline, "llm": _qa_llm}
ANSWERERS: dict[str, Callable[[Any, Path], Any]] = {
    n: _answerer(n) for n in ("random", "oracle", "blind", "pixel", "vlm")
}

# Per-movie stage -> (the params key naming its backend, the backends it may name).
STAGE_BACKENDS: dict[str, tuple[str, dict[str, Callable[[Any, Path], Any]]]] = {
    "movie_plots": ("writer", STORY_WRITERS), "style_banks": ("learner", STYLE_LEARNERS),
    "keyframes": ("renderer", RENDERERS), "qa_pairs": ("writer", QA_WRITERS),
}


def _check(key: str, name: str, known: dict) -> None:
    if name not in known:
        raise ParamsError(f"{key}: unknown backend {name!r} (known: {', '.join(sorted(known))})")


def checked_params(root: Path) -> Params:
    """``params.yaml`` of the project at ``root``, with every backend it names known."""
    params = load_params(root)
    check_names(params)
    return params


def check_names(params: Params) -> None:
    """Fail before any work if params.yaml names a backend that does not exist."""
    _check("movie_plots.writer", params.movie_plots.writer, STORY_WRITERS)
    _check("style_banks.learner", params.style_banks.learner, STYLE_LEARNERS)
    _check("keyframes.renderer", params.keyframes.renderer, RENDERERS)
    _check("qa_pairs.writer", params.qa_pairs.writer, QA_WRITERS)
    if not params.eval_scores.answerers:
        raise ParamsError("eval_scores.answerers: empty (name at least one, e.g. random)")
    for name in params.eval_scores.answerers:
        _check("eval_scores.answerers", name, ANSWERERS)
    if "vlm" in params.eval_scores.answerers and not params.eval_scores.vlm.model:
        raise ParamsError("eval_scores.vlm.model: the vlm answerer needs a model (hub id or folder)")
    for name in params.eval_scores.retrievers:
        if name not in ("text", "clip"):
            raise ParamsError(f"eval_scores.retrievers: unknown retriever {name!r} (known: clip, text)")
    if "clip" in params.eval_scores.retrievers and not params.eval_scores.clip_model:
        raise ParamsError("eval_scores.retrievers: clip needs eval_scores.clip_model (a CLIP hub id or folder)")
