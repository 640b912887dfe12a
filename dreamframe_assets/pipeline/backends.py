"""Backends by name: what ``params.yaml`` may choose for each stage.

Each stage talks to its backend through one small method (``write``, ``learn``,
``render``, ``answer``) plus ``identity()``, a string that names the backend and
its settings and goes into every cache key, so switching backends never reuses
another backend's results. Real model backends register here beside the
embedded offline ones.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from ..core.params import Params, ParamsError, load_params, verifier_names

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
    ip = params.keyframes.ip_adapter
    if ip.model:
        if params.keyframes.renderer != "diffusion":
            raise ParamsError("keyframes.ip_adapter.model: character references need keyframes.renderer: diffusion "
                              f"(it is {params.keyframes.renderer}); set model: \"\" to turn them off")
        if not ip.weight_name.endswith(".safetensors"):
            raise ParamsError(f"keyframes.ip_adapter.weight_name: {ip.weight_name!r} is not a .safetensors file "
                              "(other formats are pickles, which can run code when loaded)")
        try:
            ip.reference_prompt.format(appearance="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ParamsError(f"keyframes.ip_adapter.reference_prompt: {ip.reference_prompt!r} may name "
                              f"{{appearance}} only ({type(exc).__name__}: {exc})") from None
    faithful = params.qa_pairs.faithfulness
    names = verifier_names(faithful, params.keyframes.renderer)
    if "pixel" in names and params.keyframes.renderer != "offline":
        raise ParamsError("qa_pairs.faithfulness.verifiers: pixel reads the embedded renderer's frames only; "
                          f"with keyframes.renderer: {params.keyframes.renderer} use clip or vlm (or [] for none)")
    if "clip" in names and not faithful.clip_model:
        raise ParamsError("qa_pairs.faithfulness.clip_model: the clip verifier needs a CLIP hub id or local folder")
    if "vlm" in names and not faithful.vlm.model:
        raise ParamsError("qa_pairs.faithfulness.vlm.model: the vlm verifier needs an image-text model (hub id or folder)")
    if not params.eval_scores.answerers:
        raise ParamsError("eval_scores.answerers: empty (name at least one, e.g. random)")
    for name in params.eval_scores.answerers:
        _check("eval_scores.answerers", name, ANSWERERS)
    if "vlm" in params.eval_scores.answerers and not params.eval_scores.vlm.model:
        raise ParamsError("eval_scores.vlm.model: the vlm answerer needs a model (hub id or folder)")
    for name in params.eval_scores.retrievers:
        if name not in ("text", "clip"):
            raise ParamsError(f"eval_scores.retrievers: unknown retriever {name!r} (known: clip, text)")
    if params.eval_scores.person_detector and not params.eval_scores.clip_model:
        raise ParamsError("eval_scores.person_detector: its crops are compared by CLIP: set eval_scores.clip_model too")
    if "clip" in params.eval_scores.retrievers and not params.eval_scores.clip_model:
        raise ParamsError("eval_scores.retrievers: clip needs eval_scores.clip_model (a CLIP hub id or folder)")


def preflight(params: Params, root: Path, timeout: float = 5.0, stages: Collection[str] | None = None) -> None:
    """Fail before any work when a backend ``params`` chooses (for ``stages``, default all) cannot
    run: its OpenAI-compatible server does not answer, or its model is neither a folder nor in
    the Hugging Face cache.

    Cheap, so a long build never dies an hour in on a typo: one GET per server (any HTTP
    answer will do, ``timeout`` seconds at most) and a look at the disk per model; no model
    is loaded and nothing is downloaded. Relative folders are read from ``root``. Raises
    ParamsError naming the key and its value.
    """
    from ..core.params import LLMParams
    from ..models.embed import PACKAGED
    from ..models.llm import check_server

    servers: dict[tuple, tuple[str, LLMParams]] = {}  # one GET per server, under its first key
    models: list[tuple[str, str]] = []

    def chat(where: str, llm: LLMParams) -> None:
        if stages is not None and where.split(".")[0] not in stages:
            return
        if llm.client == "openai":
            servers.setdefault((llm.base_url.rstrip("/"), llm.api_key_env, llm.allow_plain_http_key), (where, llm))
        else:
            models.append((f"{where}.model", llm.model))

    if params.movie_plots.writer == "llm":
        chat("movie_plots.llm", params.movie_plots.llm)
    for stage, diffusion, used in (
        ("style_banks", params.style_banks.diffusion, params.style_banks.learner == "textual_inversion"),
        ("keyframes", params.keyframes.diffusion, params.keyframes.renderer == "diffusion"),
    ):
        if used:
            models.append((f"{stage}.diffusion.model", diffusion.model))
            if diffusion.refiner:
                models.append((f"{stage}.diffusion.refiner", diffusion.refiner))
    if params.keyframes.renderer == "diffusion" and params.keyframes.ip_adapter.model:
        models.append(("keyframes.ip_adapter.model", params.keyframes.ip_adapter.model))
    if params.qa_pairs.writer == "llm":
        chat("qa_pairs.llm", params.qa_pairs.llm)
    faithful = params.qa_pairs.faithfulness
    verifiers = verifier_names(faithful, params.keyframes.renderer)
    if "clip" in verifiers:
        models.append(("qa_pairs.faithfulness.clip_model", faithful.clip_model))
    if "vlm" in verifiers:
        models.append(("qa_pairs.faithfulness.vlm.model", faithful.vlm.model))
    scores = params.eval_scores
    if "blind" in scores.answerers and scores.blind.backend == "llm":
        chat("eval_scores.blind.llm", scores.blind.llm)
    if "vlm" in scores.answerers:
        models.append(("eval_scores.vlm.model", scores.vlm.model))
    if scores.clip_model:
        models.append(("eval_scores.clip_model", scores.clip_model))
    if scores.person_detector:
        models.append(("eval_scores.person_detector", scores.person_detector))
    for where, embedder in (("qa_pairs.embedder.model", params.qa_pairs.embedder),
                            ("eval_scores.embedder.model", scores.embedder)):
        if embedder.model != PACKAGED:
            models.append((where, embedder.model))

    if stages is not None:
        models = [(where, value) for where, value in models if where.split(".")[0] in stages]
    for where, value in models:
        if not value.strip():
            raise ParamsError(f"{where}: empty (name a hub id or a local folder)")
        path = Path(value).expanduser()
        path = path if path.is_absolute() else Path(root) / path
        if value.startswith(("/", "./", "../", "~")) or path.exists():
            if not path.is_dir():
                raise ParamsError(f"{where}: {value!r} is not a folder ({path} {'is a file' if path.exists() else 'does not exist'})")
            continue
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(value, local_files_only=True)
        except (OSError, ValueError):  # not cached, or not a hub id at all
            raise ParamsError(f"{where}: {value!r} is not a folder and not in the Hugging Face cache "
                              f"(download it first: hf download {value})") from None
    for where, llm in servers.values():
        check_server(llm, where, timeout)
