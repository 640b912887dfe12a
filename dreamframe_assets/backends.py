"""Backends by name: what ``params.yaml`` may choose for each stage.

Each stage talks to its backend through one small method (``write``, ``learn``,
``render``, ``answer``) plus ``identity()``, a string that names the backend and
its settings and goes into every cache key, so switching backends never reuses
another backend's results. Real model backends register here beside the
embedded offline ones.
"""

from __future__ import annotations

from typing import Any, Callable

from .params import Params, ParamsError


def _story_offline():
    from .story import OfflineStoryWriter

    return OfflineStoryWriter()


def _style_offline():
    from .style import OfflineStyleLearner

    return OfflineStyleLearner()


def _render_offline():
    from .render import OfflineRenderer

    return OfflineRenderer()


def _qa_offline():
    from .qa import OfflineQAWriter

    return OfflineQAWriter()


def _answerer(name: str) -> Callable[[int], Any]:
    def make(seed: int):
        from . import answer

        return {"random": answer.RandomAnswerer, "oracle": answer.OracleAnswerer}[name](seed)

    return make


STORY_WRITERS: dict[str, Callable[[], Any]] = {"offline": _story_offline}
STYLE_LEARNERS: dict[str, Callable[[], Any]] = {"offline": _style_offline}
RENDERERS: dict[str, Callable[[], Any]] = {"offline": _render_offline}
QA_WRITERS: dict[str, Callable[[], Any]] = {"offline": _qa_offline}
ANSWERERS: dict[str, Callable[[int], Any]] = {n: _answerer(n) for n in ("random", "oracle")}


def _check(key: str, name: str, known: dict) -> None:
    if name not in known:
        raise ParamsError(f"{key}: unknown backend {name!r} (known: {', '.join(sorted(known))})")


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
