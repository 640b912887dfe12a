"""Real diffusion backends: Style Immobilization (stage 2) and keyframes (stage 3).

Stage 2 learns one new token embedding per movie and text encoder by textual
inversion on a frozen Stable Diffusion / SDXL model, from reference images the same
model draws from the movie's style description. Stage 3 draws every frame with
that token in its prompt, optionally with the SDXL refiner as an ensemble of experts.

Everything here loads models with ``from_pretrained``, exactly as a user's model
loads (hub id or local folder), so the tests exercise the real loading code on tiny
models saved to a temporary folder. torch and diffusers are imported lazily: the
offline pipeline never pays for them.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps

from .cache import bytes_digest, digest
from .llm import auto_device
from .params import DiffusionParams, KeyframesParams, StyleBanksParams, TextualInversionParams
from .plot import Movie, MoviePlot

if TYPE_CHECKING:
    import torch

EMBEDDING_FILE = "embedding.safetensors"

# Training prompts: one drawn at random per step; "{}" is the new token. The first
# three are the ones the method names; the rest vary the subject the same way.
TEMPLATES: tuple[str, ...] = (
    "an image in {} style",
    "depicted in a {} style",
    "a picture of people walking in {} style",
    "a scene in {} style",
    "a picture of a place in {} style",
    "two people talking, in {} style",
    "a still frame from a movie in {} style",
    "a landscape painted in {} style",
)


# ---------------------------------------------------------------- loading
# Loading weights is the slow part, so pipelines are cached per loading settings
# for the life of the process. Generation settings (steps, guidance, batch size) are
# not part of the key: the style learner and the renderer share one loaded model.
_PIPELINES: dict[tuple, Any] = {}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def pipeline_kind(params: DiffusionParams) -> str:
    """"sd" or "sdxl". ``auto`` reads ``_class_name`` from a local folder's
    model_index.json; for a hub id it guesses SDXL when the id contains "xl"."""
    if params.pipeline != "auto":
        return params.pipeline
    index = Path(params.model) / "model_index.json"
    if index.is_file():
        name = json.loads(index.read_text()).get("_class_name", "")
        if name in ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"):
            return "sdxl"
        if name in ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"):
            return "sd"
        raise ValueError(f"{index}: pipeline class {name!r} is not Stable Diffusion 1.x/2.x or SDXL; "
                         "set diffusion.pipeline to sd or sdxl")
    return "sdxl" if "xl" in params.model.lower() else "sd"


def resolve_device(params: DiffusionParams) -> str:
    return auto_device(params.device)


def resolve_dtype(params: DiffusionParams) -> torch.dtype:
    """float16 on a GPU, float32 on a CPU (CPU half precision is slow and lossy)."""
    import torch

    if params.dtype == "auto":
        return torch.float16 if resolve_device(params).startswith("cuda") else torch.float32
    dtype = getattr(torch, params.dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"diffusion.dtype: {params.dtype!r} is not a torch dtype (try float16, bfloat16, float32)")
    return dtype


def _loading_key(params: DiffusionParams) -> tuple:
    return (params.model, pipeline_kind(params), resolve_device(params), str(resolve_dtype(params)),
            params.attention_slicing, params.cpu_offload)


def _place(pipe: Any, params: DiffusionParams) -> Any:
    """Device, memory options and a quiet progress bar."""
    device = resolve_device(params)
    if params.cpu_offload:
        if device == "cpu":
            raise ValueError("diffusion.cpu_offload needs a GPU device (it moves models to the GPU one at a time)")
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if params.attention_slicing:
        pipe.enable_attention_slicing()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_pipeline(params: DiffusionParams) -> Any:
    """The text-to-image pipeline ``params.model`` names, loaded once per process."""
    key = _loading_key(params)
    if key not in _PIPELINES:
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        cls = StableDiffusionXLPipeline if pipeline_kind(params) == "sdxl" else StableDiffusionPipeline
        pipe = cls.from_pretrained(params.model, dtype=resolve_dtype(params), local_files_only=_offline())
        _PIPELINES[key] = _place(pipe, params)
    return _PIPELINES[key]


def load_refiner(params: DiffusionParams) -> Any | None:
    """The SDXL refiner for the ensemble of experts, or None when ``params.refiner`` is empty.

    It shares text_encoder_2, tokenizer_2 and the VAE with the base (as the SDXL
    release does), so a style token loaded into the base reaches the refiner too.
    """
    if not params.refiner:
        return None
    base = load_pipeline(params)
    if not hasattr(base, "text_encoder_2"):
        raise ValueError(f"diffusion.refiner is set but {params.model!r} is not an SDXL pipeline")
    key = _loading_key(params) + ("refiner", params.refiner)
    if key not in _PIPELINES:
        from diffusers import StableDiffusionXLImg2ImgPipeline

        refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(
            params.refiner, text_encoder_2=base.text_encoder_2, tokenizer_2=base.tokenizer_2, vae=base.vae,
            dtype=resolve_dtype(params), local_files_only=_offline())
        _PIPELINES[key] = _place(refiner, params)
    return _PIPELINES[key]


def clear_pipelines() -> None:
    """Drop every cached pipeline (frees memory; the next call loads again)."""
    _PIPELINES.clear()


# ---------------------------------------------------------------- drawing
def _generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image: its noise is the same on every device and in any batch."""
    import torch

    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)


def draw(params: DiffusionParams, prompts: Sequence[str], seeds: Sequence[int], width: int, height: int) -> list[np.ndarray]:
    """One HxWx3 uint8 image per prompt, ``params.batch_size`` at a time.

    Image i depends only on (prompts[i], seeds[i]) and the settings, not on the
    batch it falls in: its noise comes from its own generator. Pixel values can
    still differ by one level here and there between batch sizes, because matrix
    kernels round differently for different batch shapes (on CPU and GPU alike). With a refiner: the base denoises to ``refiner_start`` and
    hands its latents to the refiner, which finishes (the paper: 40 steps, 0.75).
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    pipe, refiner = load_pipeline(params), load_refiner(params)
    images: list[np.ndarray] = []
    for start in range(0, len(prompts), params.batch_size):
        batch = list(prompts[start:start + params.batch_size])
        generators = _generators(seeds[start:start + params.batch_size])
        common = dict(prompt=batch, negative_prompt=[params.negative_prompt] * len(batch) if params.negative_prompt else None,
                      num_inference_steps=params.steps, guidance_scale=params.guidance_scale, generator=generators)
        if refiner is None:
            out = pipe(**common, width=width, height=height, output_type="np").images
        else:
            latents = pipe(**common, width=width, height=height, denoising_end=params.refiner_start,
                           output_type="latent").images
            out = refiner(**common, image=latents, denoising_start=params.refiner_start, output_type="np").images
        images.extend(_to_uint8(img) for img in out)
    return images


# ---------------------------------------------------------------- the learned style
def _encoders(pipe: Any) -> list[tuple[str, Any, Any]]:
    """(name, tokenizer, text_encoder) of every text encoder: clip_l, and clip_g on SDXL."""
    found = []
    if getattr(pipe, "text_encoder", None) is not None:
        found.append(("clip_l", pipe.tokenizer, pipe.text_encoder))
    if getattr(pipe, "text_encoder_2", None) is not None:
        found.append(("clip_g", pipe.tokenizer_2, pipe.text_encoder_2))
    return found


@dataclass(frozen=True, eq=False)
class TextualInversionStyle:
    """A movie's style as one learned token: a vector per text encoder, plus its keyword.

    ``to_dict`` is small and JSON-safe (for tables and cache keys: it carries a hash
    of the vectors, not the vectors); the vectors travel in ``files()``.
    """

    token: str  # e.g. "<df-movie-id>"
    embeddings: dict[str, np.ndarray]  # "clip_l" (SD / SDXL text_encoder), "clip_g" (SDXL text_encoder_2)
    keyword: str  # the movie's style keyword, written beside the token in prompts

    def __post_init__(self) -> None:
        if not self.embeddings or set(self.embeddings) - {"clip_l", "clip_g"}:
            raise ValueError(f"{self.token}: embeddings must be keyed clip_l / clip_g, got {sorted(self.embeddings)}")
        clean = {k: np.asarray(v, dtype=np.float32).reshape(-1) for k, v in self.embeddings.items()}
        object.__setattr__(self, "embeddings", clean)

    def content_hash(self) -> str:
        return bytes_digest(b"".join(k.encode() + self.embeddings[k].tobytes() for k in sorted(self.embeddings)))

    def to_dict(self) -> dict:
        return {"kind": "textual_inversion", "token": self.token, "keyword": self.keyword,
                "encoders": {k: int(v.shape[0]) for k, v in sorted(self.embeddings.items())},
                "sha": self.content_hash()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What diffusers' ``load_textual_inversion`` reads: ``{token: [1, d]}`` for SD;
        for SDXL ``{"clip_l": [1, 768], "clip_g": [1, 1280]}``, loaded once per encoder."""
        import torch

        vectors = {k: torch.from_numpy(v.copy()).reshape(1, -1) for k, v in self.embeddings.items()}
        if set(vectors) == {"clip_l"}:
            return {self.token: vectors["clip_l"]}
        return vectors

    def files(self) -> dict[str, bytes]:
        from safetensors.torch import save

        return {EMBEDDING_FILE: save(self.state_dict(), metadata={"token": self.token, "keyword": self.keyword})}

    @classmethod
    def from_dict(cls, d: dict, files: dict[str, bytes]) -> TextualInversionStyle:
        from safetensors.torch import load

        if d.get("kind") != "textual_inversion":
            raise ValueError(f"not a textual-inversion style: kind={d.get('kind')!r}")
        if EMBEDDING_FILE not in files:
            raise ValueError(f"{d['token']}: {EMBEDDING_FILE} is missing (have {sorted(files)})")
        tensors = load(files[EMBEDDING_FILE])
        if set(d["encoders"]) == {"clip_l"}:
            embeddings = {"clip_l": tensors[d["token"]].float().numpy()}
        else:
            embeddings = {k: tensors[k].float().numpy() for k in d["encoders"]}
        style = cls(token=d["token"], embeddings=embeddings, keyword=d["keyword"])
        if style.content_hash() != d["sha"]:
            raise ValueError(f"{d['token']}: {EMBEDDING_FILE} does not match the stored hash")
        return style

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextualInversionStyle) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _unload(pipe: Any, token: str, tokenizer: Any, text_encoder: Any) -> None:
    pipe.unload_textual_inversion(token, tokenizer=tokenizer, text_encoder=text_encoder)
    # diffusers shrinks the matrix but not the config; keep them in step
    text_encoder.config.vocab_size = text_encoder.get_input_embeddings().num_embeddings


@contextlib.contextmanager
def style_loaded(pipe: Any, style: TextualInversionStyle) -> Iterator[None]:
    """The style token in every text encoder of ``pipe`` for the block, removed after,
    so one loaded pipeline serves movie after movie."""
    encoders = _encoders(pipe)
    names = {name for name, _, _ in encoders}
    if names != set(style.embeddings):
        raise ValueError(f"style {style.token} has vectors for {sorted(style.embeddings)} "
                         f"but the pipeline's text encoders are {sorted(names)}")
    state = style.state_dict()
    loaded = []
    try:
        for name, tokenizer, text_encoder in encoders:
            vector = state[style.token] if name == "clip_l" and len(names) == 1 else state[name]
            pipe.load_textual_inversion(vector, token=style.token, tokenizer=tokenizer, text_encoder=text_encoder)
            loaded.append((tokenizer, text_encoder))
        yield
    finally:
        for tokenizer, text_encoder in loaded:
            _unload(pipe, style.token, tokenizer, text_encoder)


def load_authors_embedding(path: str | Path, token: str, keyword: str) -> TextualInversionStyle:
    """The DreamFrame authors' per-movie file ``{"emb": [768] or [1, 768], "emb2": [1280]}``
    (their SDXL CLIP-L and OpenCLIP-G vectors) as a style."""
    import torch

    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: cannot be read as a torch file of tensors: {exc}") from None
    if not isinstance(data, dict) or not {"emb", "emb2"} <= set(data):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: expected a dict with 'emb' (CLIP-L) and 'emb2' (OpenCLIP-G) tensors, got {keys}")
    embeddings = {}
    for key, name in (("emb", "clip_l"), ("emb2", "clip_g")):
        value = data[key]
        if not isinstance(value, torch.Tensor) or value.dim() not in (1, 2) or (value.dim() == 2 and value.shape[0] != 1):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{path}: {key!r} must be one vector ([d] or [1, d]), got {shape}")
        embeddings[name] = value.detach().float().reshape(-1).numpy()
    return TextualInversionStyle(token=token, embeddings=embeddings, keyword=keyword)


# ---------------------------------------------------------------- textual inversion
def _training_pixels(image: np.ndarray, resolution: int, flip: bool) -> np.ndarray:
    """The method's preprocessing: resize to the training resolution, autocontrast, flip."""
    pil = ImageOps.autocontrast(Image.fromarray(image).convert("RGB").resize((resolution, resolution), Image.BICUBIC))
    if flip:
        pil = ImageOps.mirror(pil)
    return np.asarray(pil, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0


def learn_token(pipe: Any, token: str, init_text: str, images: Sequence[np.ndarray],
                params: TextualInversionParams, seed: int) -> dict[str, np.ndarray]:
    """Textual inversion: one new embedding row per text encoder, everything else frozen.

    Standard noise-prediction loss on a DDPM schedule built from the model's own
    scheduler config (uniform timestep; v-prediction targets where the model uses
    them), AdamW, gradient clipping at 1.0, batch 1 with gradient accumulation. The
    token starts at the mean embedding of ``init_text``'s tokens (the style keyword).
    After every optimizer step all other rows are put back from a copy (weight decay
    touches them too), so only the token's row changes. One seeded generator draws
    every random choice: a run is deterministic on a CPU. The token is removed from
    ``pipe`` before returning, whether training succeeded or not.
    """
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    if not images:
        raise ValueError(f"{token}: textual inversion needs at least one image")
    encoders = _encoders(pipe)
    is_xl = any(name == "clip_g" for name, _, _ in encoders)
    device = pipe._execution_device
    unet, vae = pipe.unet, pipe.vae
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    gen = torch.Generator("cpu").manual_seed(int(seed))

    # 1. the new token in every tokenizer, its row initialised from the keyword
    added, rows, originals = [], [], []
    try:
        for name, tokenizer, text_encoder in encoders:
            if tokenizer.add_tokens(token) != 1:
                raise ValueError(f"{token!r} is already in the {name} tokenizer")
            added.append((tokenizer, text_encoder, text_encoder.dtype))
            text_encoder.to(dtype=torch.float32)  # the trained row lives in float32, as in the diffusers example
            text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            text_encoder.requires_grad_(False)
            weight = text_encoder.get_input_embeddings().weight
            init_ids = tokenizer(init_text, add_special_tokens=False).input_ids
            if not init_ids:
                raise ValueError(f"{token}: initializer text {init_text!r} has no tokens")
            token_id = tokenizer.convert_tokens_to_ids(token)
            with torch.no_grad():
                weight[token_id] = weight[init_ids].mean(dim=0)
            weight.requires_grad_(True)
            rows.append(token_id)
            originals.append(weight.detach().clone())

        weights = [te.get_input_embeddings().weight for _, te, _ in added]
        optimizer = torch.optim.AdamW(weights, lr=params.learning_rate, betas=(0.9, 0.999),
                                      weight_decay=1e-2, eps=1e-8)
        # The learning rate steps down once, half way (the method gives only the two values).
        half = params.steps // 2
        scale = params.final_learning_rate / params.learning_rate
        lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 if step < half else scale)

        # 2. latent distributions of each image (and its mirror), encoded once
        encoded: dict[tuple[int, bool], Any] = {}

        def latent_dist(index: int, flip: bool) -> Any:
            if (index, flip) not in encoded:
                pixels = torch.from_numpy(_training_pixels(images[index], params.resolution, flip))[None]
                dtype = vae.dtype
                upcast = dtype == torch.float16 and getattr(vae.config, "force_upcast", False)  # SDXL's VAE overflows
                with torch.no_grad():
                    vae.to(torch.float32 if upcast else dtype)
                    encoded[index, flip] = vae.encode(pixels.to(device, vae.dtype)).latent_dist
                    vae.to(dtype)
            return encoded[index, flip]

        def rand_int(high: int) -> int:
            return int(torch.randint(0, high, (1,), generator=gen))

        # 3. the loop: batch 1, gradients accumulated over `gradient_accumulation` draws
        for _ in range(params.steps):
            for _ in range(params.gradient_accumulation):
                index, flip = rand_int(len(images)), bool(torch.rand(1, generator=gen) < 0.5)
                prompt = TEMPLATES[rand_int(len(TEMPLATES))].format(token)
                latents = (latent_dist(index, flip).sample(generator=gen) * vae.config.scaling_factor).to(unet.dtype)
                noise = torch.randn(latents.shape, generator=gen).to(device, latents.dtype)
                timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (1,), generator=gen).to(device)
                noisy = noise_scheduler.add_noise(latents, noise, timesteps)
                if is_xl:
                    cond, _, pooled, _ = pipe.encode_prompt(prompt, device=device, do_classifier_free_guidance=False)
                    h, w = images[index].shape[:2]  # micro-conditioning: true source size, no crop
                    time_ids = torch.tensor([[h, w, 0, 0, params.resolution, params.resolution]], device=device)
                    added_cond = {"text_embeds": pooled.to(unet.dtype), "time_ids": time_ids.to(unet.dtype)}
                else:
                    cond, _ = pipe.encode_prompt(prompt, device, 1, do_classifier_free_guidance=False)
                    added_cond = None
                pred = unet(noisy, timesteps, cond.to(unet.dtype), added_cond_kwargs=added_cond).sample
                if noise_scheduler.config.prediction_type == "v_prediction":
                    target = noise_scheduler.get_velocity(latents, noise, timesteps)
                else:
                    target = noise
                loss = F.mse_loss(pred.float(), target.float()) / params.gradient_accumulation
                loss.backward()
            torch.nn.utils.clip_grad_norm_(weights, 1.0)
            optimizer.step()
            lr_schedule.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for weight, original, row in zip(weights, originals, rows):
                    keep = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
                    keep[row] = False
                    weight[keep] = original[keep]

        return {name: te.get_input_embeddings().weight[row].detach().float().cpu().numpy().copy()
                for (name, _, te), row in zip(encoders, rows)}
    finally:
        # 4. leave the shared pipeline as it was: no token, original dtype, frozen
        for tokenizer, text_encoder, dtype in added:
            _unload(pipe, token, tokenizer, text_encoder)
            text_encoder.requires_grad_(False)
            text_encoder.to(dtype=dtype)


def style_token(movie_id: str) -> str:
    return f"<df-{movie_id}>"


def _int_seed(*parts: Any) -> int:
    return int(digest(*parts)[:8], 16)


def reference_prompts(movie: Movie, count: int) -> list[str]:
    """Style images as the authors made them: the movie's places, in its described style."""
    places = [loc.name for loc in movie.locations] or ["a scene"]
    return [f"{places[i % len(places)]}, {movie.style_description}, in {movie.style_keyword} style" for i in range(count)]


def _settings(params: DiffusionParams) -> dict:
    """Diffusion settings that change images (batch size, device and memory options do not)."""
    return {"model": params.model, "pipeline": pipeline_kind(params), "refiner": params.refiner,
            "refiner_start": params.refiner_start if params.refiner else None, "steps": params.steps,
            "guidance_scale": params.guidance_scale, "negative_prompt": params.negative_prompt,
            "dtype": params.dtype}


class TextualInversionLearner:
    """Stage 2: reference images from the movie's style description, then one style token learned from them."""

    name = "textual_inversion"

    def __init__(self, params: StyleBanksParams, imported: dict[str, Path] | None = None):
        self.params = params
        self.imported = dict(imported or {})  # movie_id -> the authors' .pt embedding to use as is

    def identity(self) -> str:
        """Goes into cache keys: the model and every setting that changes the learned vectors."""
        from .cache import bytes_digest

        imported = {mid: bytes_digest(path.read_bytes()) for mid, path in sorted(self.imported.items())}
        return "textual-inversion/1:" + json.dumps({**_settings(self.params.diffusion),
                                                    "textual_inversion": self.params.textual_inversion.model_dump(),
                                                    "imported": imported}, sort_keys=True)

    def learn(self, movie: Movie, references: int, size: int, seed: int) -> tuple[list[np.ndarray], TextualInversionStyle]:
        diffusion = self.params.diffusion
        seeds = [_int_seed("reference", seed, movie.movie_id, i) for i in range(references)]
        token = style_token(movie.movie_id)
        if movie.movie_id in self.imported:  # the authors' own token: draw the references with it
            style = load_authors_embedding(self.imported[movie.movie_id], token, movie.style_keyword)
            prompts = [frame_prompt(style, movie, p) for p in reference_prompts(movie, references)]
            with style_loaded(load_pipeline(diffusion), style):
                return draw(diffusion, prompts, seeds, size, size), style
        refs = draw(diffusion, reference_prompts(movie, references), seeds, size, size)
        vectors = learn_token(load_pipeline(diffusion), token, movie.style_keyword, refs,
                              self.params.textual_inversion, _int_seed("textual-inversion", seed, movie.movie_id))
        return refs, TextualInversionStyle(token=token, embeddings=vectors, keyword=movie.style_keyword)


# ---------------------------------------------------------------- keyframes
def frame_seeds(plot: MoviePlot, seed: int, character_seeds: bool = False) -> list[int]:
    """One seed per frame of the plot, each computable without drawing any other frame.

    Default: from (seed, movie_id, frame_index), so a frame's noise never depends on
    which other frames exist. ``character_seeds``: from (seed, movie_id, the frame's
    first character) plus the frame's position among that character's frames, so each
    character's frames get a run of their own seeds, unaffected by frames led by
    others. This does not make a character look the same: neighbouring seeds give
    unrelated noise. Identity comes from the appearance text every prompt repeats
    and the style token; the seeds only make each frame reproducible and stable
    when frames of other characters are added or removed.
    """
    mid = plot.movie.movie_id
    if not character_seeds:
        return [_int_seed("frame", seed, mid, f.frame_index) for f in plot.frames]
    seen: dict[str, int] = {}
    seeds = []
    for f in plot.frames:
        lead = f.characters[0] if f.characters else ""
        seeds.append(_int_seed("character", seed, mid, lead) + seen.get(lead, 0))
        seen[lead] = seen.get(lead, 0) + 1
    return seeds


def frame_prompt(style: Any, movie: Movie, frame_prompt_text: str) -> str:
    if isinstance(style, TextualInversionStyle):
        return f"an image in {style.token} {style.keyword} style: {frame_prompt_text}"
    return f"an image in {movie.style_keyword} style: {frame_prompt_text}"


class DiffusionRenderer:
    """Stage 3: every frame drawn by the diffusion model with the movie's style token."""

    name = "diffusion"

    def __init__(self, params: KeyframesParams):
        self.params = params

    def identity(self) -> str:
        """Goes into cache keys: settings that change images (not batch size: batching changes nothing)."""
        return "diffusion-render/1:" + json.dumps({**_settings(self.params.diffusion),
                                                   "character_seeds": self.params.diffusion.character_seeds},
                                                  sort_keys=True)

    def render(self, plot: MoviePlot, style: Any, width: int, height: int, seed: int,
               indices: Sequence[int] | None = None) -> list[np.ndarray]:
        """One image per plot.frames (or per ``indices`` into it: redraw frames alone;
        the result equals the same frames drawn with the whole movie)."""
        diffusion = self.params.diffusion
        seeds = frame_seeds(plot, seed, diffusion.character_seeds)
        chosen = range(len(plot.frames)) if indices is None else indices
        prompts = [frame_prompt(style, plot.movie, plot.frames[i].prompt) for i in chosen]
        chosen_seeds = [seeds[i] for i in chosen]
        if not isinstance(style, TextualInversionStyle):
            return draw(diffusion, prompts, chosen_seeds, width, height)
        with style_loaded(load_pipeline(diffusion), style):
            return draw(diffusion, prompts, chosen_seeds, width, height)
