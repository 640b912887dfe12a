"""``params.yaml``: every knob of the pipeline, grouped by stage, checked before any work.

Each group is what one DVC stage lists under ``params``, so changing a key re-runs
only the stages that read it. Validation is strict (unknown keys, wrong types and
negative counts are errors) and errors name the key, because a typo that silently
falls back to a default would cost a whole dataset build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

PARAMS_FILE = "params.yaml"

Count = Annotated[int, Field(gt=0)]
Seed = Annotated[int, Field(ge=0)]
Pixels = Annotated[int, Field(ge=32, le=4096)]


class ParamsError(ValueError):
    """params.yaml (or a themes file) is wrong; the message names the key."""


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LLMParams(_Group):
    """A chat model: an OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenAI) or local transformers."""

    client: Literal["openai", "transformers"] = "openai"
    model: str = ""  # server model name, or a hub id / local folder for transformers
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"  # the NAME of the environment variable holding the key
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    max_tokens: Count = 4096
    seed: Seed = 0
    concurrency: Count = 8  # requests in flight at once
    timeout: Annotated[float, Field(gt=0.0)] = 120.0  # seconds per request
    max_retries: Annotated[int, Field(ge=0)] = 5  # on 429, 5xx and timeouts
    json_mode: bool = True  # ask the server for structured (JSON) output
    device: str = "auto"  # transformers only
    dtype: str = "auto"  # transformers only
    batch_size: Count = 8  # transformers only: prompts generated together


class DiffusionParams(_Group):
    """A diffusers text-to-image pipeline (SD 1.x / 2.x / SDXL, hub id or local folder)."""

    model: str = "stabilityai/stable-diffusion-xl-base-1.0"
    pipeline: Literal["auto", "sd", "sdxl"] = "auto"
    refiner: str = ""  # e.g. stabilityai/stable-diffusion-xl-refiner-1.0: base + refiner ensemble
    refiner_start: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.75  # the base denoises to here
    steps: Count = 40
    guidance_scale: Annotated[float, Field(ge=0.0)] = 7.5
    negative_prompt: str = ""
    batch_size: Count = 4
    device: str = "auto"
    dtype: str = "auto"
    attention_slicing: bool = False
    cpu_offload: bool = False
    character_seeds: bool = False  # keyframes: fixed per-character seed offsets


class TextualInversionParams(_Group):
    """Learning one style token per movie (the method's Style Immobilization)."""

    steps: Count = 400  # optimizer steps
    learning_rate: Annotated[float, Field(gt=0.0)] = 1e-3
    final_learning_rate: Annotated[float, Field(gt=0.0)] = 3e-4
    gradient_accumulation: Count = 2
    resolution: Annotated[int, Field(ge=32, le=2048)] = 768


class EmbedderParams(_Group):
    """Sentence embeddings for near-duplicates, the blind answerer and evidence retrieval."""

    model: str = "minilm"  # minilm: the packaged all-MiniLM-L6-v2 (offline); or a sentence-transformers folder / hub id
    batch_size: Count = 64
    device: str = "cpu"


class BlindParams(_Group):
    """The text-only answerer: sees the question and options, never the frames."""

    backend: Literal["embedding", "llm"] = "embedding"
    llm: LLMParams = LLMParams()


class VLMParams(_Group):
    """A transformers image-text-to-text model shown sampled keyframes of the movie."""

    model: str = ""  # hub id or local folder
    frames: Count = 8  # keyframes shown per question (the evidence frames first)
    max_new_tokens: Count = 16
    device: str = "auto"
    dtype: str = "auto"


class MoviePlotsParams(_Group):
    themes: list[str] = []
    themes_file: str = "themes.txt"  # one theme a line; '#' starts a comment
    stories_dir: str = "stories"  # story files in the paper authors' JSON format, imported as movies
    substories: Count = 3  # l: substories per movie (level 1)
    tinystories: Count = 4  # m: tinystories per substory (level 2)
    frames: Count = 4  # n: frames per tinystory (level 3)
    seed: Seed = 0
    writer: str = "offline"  # offline | llm
    llm: LLMParams = LLMParams()


class StyleBanksParams(_Group):
    learner: str = "offline"  # offline | textual_inversion
    embeddings_dir: str = "stories"  # <story>.pt: the authors' style embedding for an imported <story>.json
    references: Count = 6  # style reference images per movie
    size: Pixels = 128  # reference image side, px
    seed: Seed = 0
    diffusion: DiffusionParams = DiffusionParams()
    textual_inversion: TextualInversionParams = TextualInversionParams()


class KeyframesParams(_Group):
    renderer: str = "offline"  # offline | diffusion
    width: Pixels = 256
    height: Pixels = 256
    seed: Seed = 0
    diffusion: DiffusionParams = DiffusionParams()


class QAPairsParams(_Group):
    writer: str = "offline"  # offline | llm
    max_qtype_share: Annotated[float, Field(gt=0.0, le=1.0)] = 0.3
    grounded_per_frame: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0  # a keyframe answers one question at most
    seed: Seed = 0
    llm: LLMParams = LLMParams()
    # quality gates: what fails one is dropped into dropped.parquet with its reason
    near_duplicate_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.95  # cosine of question embeddings
    min_answer_words: Annotated[int, Field(ge=1)] = 1
    max_answer_words: Count = 200
    embedder: EmbedderParams = EmbedderParams()
    # blocking checks on the written table (they stop eval_scores)
    min_oracle_accuracy: Annotated[float, Field(ge=0.0, le=1.0)] = 0.99
    max_duplicate_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02


class EvalScoresParams(_Group):
    answerers: list[str] = ["random", "oracle", "blind", "pixel"]  # also: vlm
    seed: Seed = 0
    blind: BlindParams = BlindParams()
    vlm: VLMParams = VLMParams()
    retrievers: list[str] = ["text"]  # evidence-frame retrieval: text, clip
    clip_model: str = ""  # a CLIP hub id / folder: CLIP retrieval and CLIP style consistency
    embedder: EmbedderParams = EmbedderParams()
    # blocking check: questions answerable without looking are a defect of video QA data.
    # The best text-only probe may beat chance by at most this, overall ...
    max_language_bias_gap: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    # ... and by at most this on any qtype with at least min_probe_questions QAs (fewer: noise)
    max_language_bias_gap_qtype: Annotated[float, Field(ge=0.0, le=1.0)] = 0.10
    min_probe_questions: Annotated[int, Field(ge=1)] = 50


class ExecutorParams(_Group):
    """Where per-movie work runs. Outputs are the same bytes whatever is chosen here."""

    kind: Literal["local", "ray"] = "local"
    workers: Annotated[int, Field(gt=0)] | Literal["auto"] = "auto"  # local: processes for CPU-bound movies
    address: str = ""  # ray: "" starts a local cluster, "auto" joins the running one, or ray://host:10001


class Params(_Group):
    executor: ExecutorParams = ExecutorParams()
    movie_plots: MoviePlotsParams = MoviePlotsParams()
    style_banks: StyleBanksParams = StyleBanksParams()
    keyframes: KeyframesParams = KeyframesParams()
    qa_pairs: QAPairsParams = QAPairsParams()
    eval_scores: EvalScoresParams = EvalScoresParams()


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    got = error.get("input")
    return f"{key}: {error['msg']} (got {got!r})"


def parse_params(raw: Any, source: str = PARAMS_FILE) -> Params:
    """Validate a loaded params mapping; raise ParamsError naming every bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of stage groups, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e) for e in exc.errors())
        raise ParamsError(f"{source} is invalid:\n  {lines}") from None


def load_params(root: Path) -> Params:
    path = Path(root) / PARAMS_FILE
    if not path.exists():
        raise ParamsError(f"{path}: not found (every knob of the pipeline lives there)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, str(path))


def load_themes(root: Path, params: MoviePlotsParams) -> list[str]:
    """The inline themes, then the themes file's; blank, duplicate or no themes are errors."""
    themes = [(t, "movie_plots.themes") for t in params.themes]
    if params.themes_file:
        path = Path(root) / params.themes_file
        if not path.exists():
            raise ParamsError(f"movie_plots.themes_file: {params.themes_file!r} does not exist")
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                themes.append((text, f"{params.themes_file}:{number}"))
    seen: dict[str, str] = {}
    for theme, where in themes:
        if not theme.strip():
            raise ParamsError(f"{where}: a theme is blank")
        key = " ".join(theme.lower().split())
        if key in seen:
            raise ParamsError(f"{where}: theme {theme!r} is given twice (also at {seen[key]})")
        seen[key] = where
    if not themes and not story_files(root, params):
        raise ParamsError(
            "movie_plots.themes: no themes (give some inline or in movie_plots.themes_file)"
        )
    return [" ".join(t.split()) for t, _ in themes]


def story_files(root: Path, params: MoviePlotsParams) -> list[Path]:
    """The authors'-format story files to import (``*.json`` in ``stories_dir``), sorted."""
    folder = Path(root) / params.stories_dir
    if params.stories_dir and folder.exists() and not folder.is_dir():
        raise ParamsError(f"movie_plots.stories_dir: {params.stories_dir!r} is not a folder")
    return sorted(folder.glob("*.json")) if params.stories_dir and folder.is_dir() else []
