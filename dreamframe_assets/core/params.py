"""``params.yaml``: every knob of the pipeline, grouped by stage, checked before any work.

Each group is what one DVC stage lists under ``params``, so changing a key re-runs
only the stages that read it. Validation is strict (unknown keys, keys given twice,
wrong types, out-of-range and non-finite numbers are errors) and each error is one line
naming the dotted key, because a typo that silently falls back to a default would cost
a whole dataset build.
"""

from __future__ import annotations

import logging
import re
import unicodedata
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
    # strict: no "256" for 256, no true for 1; no .nan / .inf where a number is asked
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class LLMParams(_Group):
    """A chat model: an OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenAI) or local transformers."""

    client: Literal["openai", "transformers"] = "openai"
    model: str = ""  # server model name, or a hub id / local folder for transformers
    base_url: str = "http://127.0.0.1:8000/v1"
    # The NAME of the environment variable holding this server's key; "" sends no key. A key goes
    # over https, or plain http to this machine (loopback) only, unless allow_plain_http_key says so.
    api_key_env: str = ""
    allow_plain_http_key: bool = False  # send the key over plain http to another host (readable on the way)
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    max_tokens: Count = 4096
    seed: Seed = 0
    concurrency: Count = 8  # requests in flight at once
    timeout: Annotated[float, Field(gt=0.0)] = 120.0  # seconds per request
    max_retries: Annotated[int, Field(ge=0)] = 5  # on 429, 5xx, timeouts and lost connections
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
    # auto: autocast in the pipeline's precision (float16 with a gradient scaler, bfloat16),
    # none for float32 weights; the trained row stays float32 either way
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    gradient_checkpointing: bool = False  # less activation memory, more UNet compute


class EmbedderParams(_Group):
    """Sentence embeddings for near-duplicates, the blind answerer and evidence retrieval."""

    model: str = "minilm"  # minilm: the packaged all-MiniLM-L6-v2 (offline); or a sentence-transformers folder / hub id
    batch_size: Count = 64
    device: str = "cpu"
    # auto: bfloat16 where the chip computes it natively (CPUs with AVX512-BF16 or AMX, GPUs),
    # about 1.6x faster on CPU with pair cosines within 0.003 of float32 (float16 on a GPU
    # without bfloat16); else float32. The vectors, and so near-threshold gate decisions, can
    # differ by machine: float32 reproduces a dataset on any machine
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


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


class IPAdapterParams(_Group):
    """Characters that stay themselves: one reference image per character, drawn once per
    movie; every frame the character is in is conditioned on it through IP-Adapter."""

    model: str = ""  # "" for none; a hub id or folder holding the adapter, e.g. h94/IP-Adapter
    subfolder: str = "sdxl_models"  # in h94/IP-Adapter: sdxl_models (SDXL) or models (SD 1.5); "" for the root
    weight_name: str = "ip-adapter_sdxl.safetensors"  # safetensors only (a .bin is a pickle)
    # the CLIP image encoder: a folder inside ``subfolder``, or a path from the adapter's root
    # when it holds a "/" (diffusers' rule), e.g. models/image_encoder for the ViT-H adapters
    image_encoder_folder: str = "image_encoder"
    scale: Annotated[float, Field(ge=0.0, le=2.0)] = 0.6  # how strongly the references steer a frame
    reference_prompt: str = "a full-body portrait of {appearance}, standing, plain background"


class KeyframesParams(_Group):
    renderer: str = "offline"  # offline | diffusion
    width: Pixels = 256
    height: Pixels = 256
    seed: Seed = 0
    # facts: the prompt asks for the frame's structured facts first (people, colours, action,
    # place, expression), then the writer's prose, cut to fit; prose: the writer's prose as it is
    prompt: Literal["facts", "prose"] = "facts"
    diffusion: DiffusionParams = DiffusionParams()
    ip_adapter: IPAdapterParams = IPAdapterParams()  # diffusion: character references (off by default)


class FaithfulnessParams(_Group):
    """Do the drawn frames show what the grounded QAs claim? (``evaluate/faithfulness.py``)"""

    # auto: pixel for the embedded renderer's frames; clip for diffusion frames when clip_model
    # is set (else none); or a list of pixel (embedded renderer only), clip, vlm; [] for none
    verifiers: Literal["auto"] | list[Literal["pixel", "clip", "vlm"]] = "auto"
    action: Literal["drop", "flag"] = "drop"  # drop: into dropped.parquet; flag: kept, listed in flagged.parquet
    clip_model: str = ""  # clip: a CLIP hub id or local folder
    clip_margin: Annotated[float, Field(ge=0.0)] = 0.0  # clip abstains unless its best caption wins by this
    device: str = "auto"
    vlm: VLMParams = VLMParams()  # vlm: asked about the evidence frame alone


def verifier_names(faithfulness: FaithfulnessParams, renderer: str) -> list[str]:
    """The verifiers that check frames drawn by ``renderer`` (``auto`` resolved)."""
    if faithfulness.verifiers != "auto":
        return list(faithfulness.verifiers)
    if renderer == "offline":
        return ["pixel"]
    return ["clip"] if faithfulness.clip_model else []


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
    faithfulness: FaithfulnessParams = FaithfulnessParams()
    # blocking checks on the written table (they stop eval_scores)
    min_oracle_accuracy: Annotated[float, Field(ge=0.0, le=1.0)] = 0.99
    max_duplicate_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02


class EvalScoresParams(_Group):
    answerers: list[str] = ["random", "oracle", "blind", "pixel"]  # also: vlm
    seed: Seed = 0
    blind: BlindParams = BlindParams()
    vlm: VLMParams = VLMParams()
    retrievers: list[str] = ["text"]  # evidence-frame retrieval: text, clip
    # the text retriever runs on at most this many movies, a fixed sample (0: all). Its frame
    # texts are most of what evaluation embeds; 200 movies hold ~20,000 questions at paper scale
    retrieval_movies: Annotated[int, Field(ge=0)] = 200
    clip_model: str = ""  # a CLIP hub id / folder: CLIP retrieval, CLIP style and identity consistency
    # identity consistency crops each character out of its frames with this object detector (a
    # transformers hub id / folder with a "person" class, e.g. hustvl/yolos-small); "": whole
    # one-person frames only
    person_detector: str = ""
    person_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
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


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(loc: tuple) -> str:
    """The dotted key an error is about: the fields walked down from ``Params`` (an unknown
    key ends the walk), list positions kept, the tags pydantic gives union members dropped."""
    model: Any = Params
    parts: list[str] = []
    for part in loc:
        if model is not None:
            parts.append(str(part))
            field = model.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                break
            kind = field.annotation
            model = kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None
        elif isinstance(part, int):
            parts.append(str(part))
    return ".".join(parts)


def _describe(key: str, errors: list[dict[str, Any]]) -> str:
    """One key's errors as ``key: what is wrong (got value)``; a union's alternatives joined by "or"."""
    first = errors[0]
    if first["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if first["type"] == "invalid_key":
        return f"{key}: keys must be text"
    if first["type"] == "model_type":
        return f"{key}: expected a mapping of its keys (got {_shown(first.get('input'))})"
    prefix = "Input should be "
    wants = list(dict.fromkeys(e["msg"] for e in errors))
    if all(w.startswith(prefix) for w in wants):
        what = "should be " + " or ".join(w.removeprefix(prefix) for w in wants)
    else:
        what = "; ".join(wants)
    return f"{key}: {what} (got {_shown(first.get('input'))})"


def parse_params(raw: Any, source: str = PARAMS_FILE) -> Params:
    """Validate a loaded params mapping; one ParamsError line naming every bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of stage groups, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for error in exc.errors():
            by_key.setdefault(_key(error["loc"]), []).append(error)
        raise ParamsError(f"{source}: " + "; ".join(_describe(k, e) for k, e in by_key.items())) from None


def _twice(node: yaml.Node | None, prefix: str = "", seen: set[int] | None = None) -> str:
    """The first key given twice in one mapping, as ``key: given twice (lines a and b)``; "" if none.
    yaml keeps the last silently, so the first value, maybe the one meant, would be dropped."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias: its node was checked where it was anchored
        return ""
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else ""
            if name and name in lines:
                return f"{prefix}{name}: given twice (lines {lines[name]} and {key.start_mark.line + 1})"
            lines[name] = key.start_mark.line + 1
            found = _twice(value, f"{prefix}{name}." if name else prefix, seen)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _twice(item, f"{prefix}{index}.", seen)
            if found:
                return found
    return ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: where, then what."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = getattr(exc, "problem", None) or str(exc)
    return where + " ".join(str(what).split())


def load_params(root: Path) -> Params:
    """``root``'s params.yaml, validated; every problem is one ParamsError line naming the key
    (or, for text that is not YAML, the line)."""
    path = Path(root) / PARAMS_FILE
    if not path.is_file():
        raise ParamsError(f"{path}: not found (every knob of the pipeline lives there)")
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
        twice = _twice(yaml.compose(text, Loader=yaml.SafeLoader))
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    if twice:
        raise ParamsError(f"{path}: {twice}")
    if raw is None:
        raise ParamsError(f"{path}: empty (every knob of the pipeline lives there; "
                          "start from the project's params.yaml)")
    return parse_params(raw, str(path))


MAX_THEME_CHARS = 1000  # a theme is one line; longer text is a story, not a theme
THEME_COMMENT = re.compile(r"(^|\s)#.*")  # in a themes file, a comment starts a line or follows a space


def _shown_theme(folded: str) -> str:
    return repr(folded[:60] + ("..." if len(folded) > 60 else ""))


def theme_problem(folded: str) -> str | None:
    """Why a theme (whitespace already folded) cannot make a movie, or None: blank, longer than
    one line, or holding control characters. One rule for themes read and themes written."""
    if not folded:
        return "a theme is blank"
    if len(folded) > MAX_THEME_CHARS:
        return f"theme {_shown_theme(folded)} has {len(folded):,} characters (at most {MAX_THEME_CHARS:,}: one line)"
    if any(unicodedata.category(c) == "Cc" for c in folded):
        return f"theme {_shown_theme(folded)} holds control characters"
    return None


def load_themes(root: Path, params: MoviePlotsParams) -> list[str]:
    """The usable themes (see ``read_themes``); each rejected one is logged as a warning."""
    themes, rejected = read_themes(root, params)
    for line in rejected:
        logging.getLogger("dreamframe").warning(line)
    return themes


def read_themes(root: Path, params: MoviePlotsParams) -> tuple[list[str], list[str]]:
    """The inline themes, then the themes file's, whitespace folded; and one line per theme
    left out (blank, too long, control characters, given twice), naming where it is. A bad
    theme never stops the others; no usable theme at all is an error."""
    themes = [(t, "movie_plots.themes") for t in params.themes]
    if params.themes_file:
        path = Path(root) / params.themes_file
        if not path.is_file():
            raise ParamsError(f"movie_plots.themes_file: {params.themes_file!r} does not exist")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ParamsError(f"{params.themes_file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        for number, line in enumerate(text.split("\n"), start=1):  # numbered as an editor shows them
            theme = THEME_COMMENT.sub("", line).strip()
            if theme:
                themes.append((theme, f"{params.themes_file}:{number}"))
    kept: list[str] = []
    rejected: list[str] = []
    seen: dict[str, str] = {}
    for theme, where in themes:
        folded = " ".join(theme.split())
        problem = theme_problem(folded)
        if not problem and folded.lower() in seen:
            problem = f"theme {_shown_theme(folded)} is given twice (also at {seen[folded.lower()]}); built once"
        if problem:
            rejected.append(f"{where}: {problem}" + ("" if problem.endswith("built once") else "; left out"))
            continue
        seen[folded.lower()] = where
        kept.append(folded)
    if not kept and not story_files(root, params):
        reason = f" ({len(rejected)} left out: {rejected[0]})" if rejected else ""
        raise ParamsError(f"movie_plots.themes: no themes (give some inline or in movie_plots.themes_file){reason}")
    return kept, rejected


def story_files(root: Path, params: MoviePlotsParams) -> list[Path]:
    """The authors'-format story files to import (``*.json`` in ``stories_dir``), sorted."""
    folder = Path(root) / params.stories_dir
    if params.stories_dir and folder.exists() and not folder.is_dir():
        raise ParamsError(f"movie_plots.stories_dir: {params.stories_dir!r} is not a folder")
    return sorted(folder.glob("*.json")) if params.stories_dir and folder.is_dir() else []
