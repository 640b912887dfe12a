"""Diffusion models: loading SD / SDXL pipelines, drawing images, and style tokens.

Everything here loads models with ``from_pretrained``, exactly as a user's model
loads (hub id or local folder), so the tests exercise the real loading code on tiny
models saved to a temporary folder. torch and diffusers are imported lazily: the
offline pipeline never pays for them. The style learner (``style/textual_inversion.py``)
and the keyframe renderer (``render/diffusion.py``) share one loaded pipeline.

Weights load from safetensors only (a ``.bin`` is a pickle, which can run code), and
the authors' ``.pt`` embeddings through torch's weights-only unpickler, which refuses
anything but tensors.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from ..core.cache import bytes_digest
from ..core.params import DiffusionParams, IPAdapterParams
from ..core.plot import Movie
from .device import auto_device, load_once

if TYPE_CHECKING:
    import torch

EMBEDDING_FILE = "embedding.safetensors"
DIFFUSION_STAGES = frozenset({"style_banks", "keyframes"})  # they share one loaded pipeline


# ---------------------------------------------------------------- loading
# Loading weights is the slow part, so pipelines are loaded once per process per loading
# settings (``device.load_once``). Generation settings (steps, guidance, batch size) are
# not part of the key: the style learner and the renderer share one loaded model.


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

    def load() -> Any:
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        cls = StableDiffusionXLPipeline if pipeline_kind(params) == "sdxl" else StableDiffusionPipeline
        return _place(cls.from_pretrained(params.model, dtype=resolve_dtype(params), local_files_only=_offline(),
                                          use_safetensors=True), params)

    return load_once(key, load, stages=DIFFUSION_STAGES)


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

    def load() -> Any:
        from diffusers import StableDiffusionXLImg2ImgPipeline

        refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(
            params.refiner, text_encoder_2=base.text_encoder_2, tokenizer_2=base.tokenizer_2, vae=base.vae,
            dtype=resolve_dtype(params), local_files_only=_offline(), use_safetensors=True)
        return _place(refiner, params)

    return load_once(key, load, stages=DIFFUSION_STAGES)


# ---------------------------------------------------------------- drawing
def _generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image: its noise is the same on every device and in any batch."""
    import torch

    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)


def draw(params: DiffusionParams, prompts: Sequence[str], seeds: Sequence[int], width: int, height: int,
         references: Sequence[torch.Tensor] | None = None) -> list[np.ndarray]:
    """One HxWx3 uint8 image per prompt, ``params.batch_size`` at a time.

    Image i depends only on (prompts[i], seeds[i]) and the settings, not on the
    batch it falls in: its noise comes from its own generator. Pixel values can
    still differ by one level here and there between batch sizes, because matrix
    kernels round differently for different batch shapes (on CPU and GPU alike). With a refiner: the base denoises to ``refiner_start`` and
    hands its latents to the refiner, which finishes (the paper: 40 steps, 0.75).

    ``references`` (with an IP-Adapter loaded, ``ip_adapter_loaded``): per prompt, the image
    embeddings [n, d] of the characters it shows (``reference_embeds``). The pipeline gives
    every prompt of a call the same reference set, so a batch holds prompts with equal
    references only: prompts are drawn grouped by their references and handed back in order.
    The refiner finishes without them: it has no adapter.
    """
    if len(prompts) != len(seeds) or (references is not None and len(references) != len(prompts)):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds"
                         + (f" and {len(references)} reference sets" if references is not None else ""))
    pipe, refiner = load_pipeline(params), load_refiner(params)
    groups: dict[bytes, list[int]] = {}
    for i in range(len(prompts)):
        groups.setdefault(b"" if references is None else _tensor_key(references[i]), []).append(i)
    images: dict[int, np.ndarray] = {}
    for members in groups.values():
        for start in range(0, len(members), params.batch_size):
            batch = members[start:start + params.batch_size]
            common = dict(prompt=[prompts[i] for i in batch],
                          negative_prompt=[params.negative_prompt] * len(batch) if params.negative_prompt else None,
                          num_inference_steps=params.steps, guidance_scale=params.guidance_scale,
                          generator=_generators([seeds[i] for i in batch]))
            extra = {} if references is None else {
                "ip_adapter_image_embeds": [_with_unconditional(references[batch[0]], params.guidance_scale > 1)]}
            if refiner is None:
                out = pipe(**common, **extra, width=width, height=height, output_type="np").images
            else:
                latents = pipe(**common, **extra, width=width, height=height, denoising_end=params.refiner_start,
                               output_type="latent").images
                out = refiner(**common, image=latents, denoising_start=params.refiner_start, output_type="np").images
            images.update((i, _to_uint8(img)) for i, img in zip(batch, out))
    return [images[i] for i in range(len(prompts))]


def _tensor_key(t: torch.Tensor) -> bytes:
    return str(tuple(t.shape)).encode() + t.detach().cpu().float().numpy().tobytes()


def _with_unconditional(embeds: torch.Tensor, guidance: bool) -> torch.Tensor:
    """One reference set [n, d] as the pipeline's ``ip_adapter_image_embeds`` entry: [1, n, d],
    after its zeros (the unconditional half) when guided; the pipeline repeats it per prompt."""
    import torch

    embeds = embeds[None]
    return torch.cat([torch.zeros_like(embeds), embeds]) if guidance else embeds


# ---------------------------------------------------------------- character references (IP-Adapter)
# One image per character, encoded by the adapter's CLIP image encoder; a frame is conditioned
# on the embeddings of the characters it shows. The adapter is loaded into the shared pipeline
# for one movie's frames and taken out after (a loaded adapter asks every call for image
# embeddings, and textual inversion trains the bare UNet): its weights are read for each movie
# (0.7 GB for SDXL's, from the page cache after the first), the image encoder once per process.


def _image_encoder_path(ip: IPAdapterParams) -> tuple[str, str]:
    """(repo or folder, subfolder) of the image encoder, by diffusers' ``load_ip_adapter`` rule."""
    if "/" in ip.image_encoder_folder:
        return ip.model, ip.image_encoder_folder
    return ip.model, Path(ip.subfolder, ip.image_encoder_folder).as_posix()


def load_image_encoder(params: DiffusionParams, ip: IPAdapterParams) -> tuple[Any, Any]:
    """(CLIPVisionModelWithProjection, CLIPImageProcessor) of the adapter, loaded once per process
    (kept on the CPU under ``cpu_offload``, and moved to the GPU only to encode)."""
    model, subfolder = _image_encoder_path(ip)
    key = ("ip-image-encoder", model, subfolder, resolve_device(params), str(resolve_dtype(params)))

    def load() -> tuple[Any, Any]:
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        encoder = CLIPVisionModelWithProjection.from_pretrained(
            model, subfolder=subfolder, dtype=resolve_dtype(params), local_files_only=_offline(), use_safetensors=True)
        size = encoder.config.image_size
        home = "cpu" if params.cpu_offload else resolve_device(params)
        return encoder.to(home).eval(), CLIPImageProcessor(size=size, crop_size=size)

    return load_once(key, load, stages=DIFFUSION_STAGES)


def reference_embeds(params: DiffusionParams, ip: IPAdapterParams, images: Sequence[np.ndarray]) -> torch.Tensor:
    """The adapter's image embedding of each reference image: [len(images), d], float32 on the CPU."""
    import torch

    encoder, processor = load_image_encoder(params, ip)
    pixels = processor(list(images), return_tensors="pt").pixel_values
    home = encoder.device
    try:
        encoder.to(resolve_device(params))
        with torch.no_grad():
            out = encoder(pixels.to(encoder.device, encoder.dtype)).image_embeds
    finally:
        encoder.to(home)
    return out.float().cpu()


@contextlib.contextmanager
def ip_adapter_loaded(params: DiffusionParams, ip: IPAdapterParams) -> Iterator[None]:
    """The IP-Adapter in the shared pipeline for the block, taken out after (its attention
    processors as they were, attention slicing included: the adapter's processors replace
    them while it is in). Only its weights go in: the references are encoded beforehand
    (``reference_embeds``), so the pipeline gets no image encoder of its own."""
    from diffusers.models.embeddings import ImageProjection
    from diffusers.utils import logging as diffusers_logging

    pipe = load_pipeline(params)
    saved = dict(pipe.unet.attn_processors)
    pipe.unet.set_default_attn_processor()  # the adapter rebuilds each processor bare: sliced ones cannot be
    quiet = diffusers_logging.get_verbosity()
    try:
        diffusers_logging.set_verbosity_error()  # "image_encoder is not loaded": as meant
        try:
            pipe.load_ip_adapter(ip.model, subfolder=ip.subfolder, weight_name=ip.weight_name,
                                 image_encoder_folder=None, local_files_only=_offline())
        finally:
            diffusers_logging.set_verbosity(quiet)
        projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
        if not isinstance(projection, ImageProjection):
            raise ValueError(f"keyframes.ip_adapter.weight_name: {ip.weight_name!r} is a {type(projection).__name__} "
                             "adapter (plus / FaceID); only plain IP-Adapter weights, which read the image "
                             "encoder's pooled embedding, are supported")
        pipe.set_ip_adapter_scale(ip.scale)
        yield
    finally:
        if getattr(pipe.unet, "encoder_hid_proj", None) is not None:
            pipe.unload_ip_adapter()
        pipe.unet.set_attn_processor(saved)


# ---------------------------------------------------------------- a learned style token
def text_encoders(pipe: Any) -> list[tuple[str, Any, Any]]:
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
        """The vectors as ``EMBEDDING_FILE``: the same vectors, the same bytes (so a movie learned
        again rewrites nothing, and the keyframes that read the file keep their cache keys)."""
        from safetensors.torch import save

        # One metadata entry: safetensors writes several in hash order, which changes from call to call.
        return {EMBEDDING_FILE: save(self.state_dict(), metadata={"token": self.token})}

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


def unload_token(pipe: Any, token: str, tokenizer: Any, text_encoder: Any) -> None:
    pipe.unload_textual_inversion(token, tokenizer=tokenizer, text_encoder=text_encoder)
    # diffusers shrinks the matrix but not the config; keep them in step
    text_encoder.config.vocab_size = text_encoder.get_input_embeddings().num_embeddings


@contextlib.contextmanager
def style_loaded(pipe: Any, style: TextualInversionStyle) -> Iterator[None]:
    """The style token in every text encoder of ``pipe`` for the block, removed after,
    so one loaded pipeline serves movie after movie."""
    encoders = text_encoders(pipe)
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
            unload_token(pipe, style.token, tokenizer, text_encoder)


def load_authors_embedding(path: str | Path, token: str, keyword: str) -> TextualInversionStyle:
    """The DreamFrame authors' per-movie file ``{"emb": [768] or [1, 768], "emb2": [1280]}``
    (their SDXL CLIP-L and OpenCLIP-G vectors) as a style.

    A ``.pt`` is a pickle, and a pickle can name any function to call while loading: the file
    is read by torch's weights-only unpickler, which refuses every object but tensors and
    plain containers, so a file that would run code is refused (one line) and runs nothing.
    """
    import torch

    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if type(exc).__name__ == "UnpicklingError":  # the weights-only unpickler said no
            found = re.search(r"GLOBAL \S+|Unsupported [^\n.]+", str(exc))
            what = f" ({found.group(0).rstrip()})" if found else ""
            raise ValueError(f"{path}: refused: not a torch file of tensors alone{what}; "
                             "anything else could run code when loaded, so it is never unpickled") from None
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ValueError(f"{path}: cannot be read as a torch file of tensors ({reason[:200]})") from None
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


def image_settings(params: DiffusionParams) -> dict:
    """Diffusion settings that change images (batch size, device and memory options do not)."""
    return {"model": params.model, "pipeline": pipeline_kind(params), "refiner": params.refiner,
            "refiner_start": params.refiner_start if params.refiner else None, "steps": params.steps,
            "guidance_scale": params.guidance_scale, "negative_prompt": params.negative_prompt,
            "dtype": params.dtype}


def prompt_fits(pipe: Any) -> Callable[[str], bool]:
    """Whether a prompt fits every text encoder whole (CLIP reads 77 tokens, the rest is cut).
    Counted with the pipeline's own tokenizers, so a loaded style token counts as one."""
    tokenizers = [tokenizer for _, tokenizer, _ in text_encoders(pipe)]

    def fits(text: str) -> bool:
        return all(len(t(text, truncation=False)["input_ids"]) <= t.model_max_length for t in tokenizers)

    return fits


def frame_prompt(style: Any, movie: Movie, frame_prompt_text: str) -> str:
    """A frame's prompt with the movie's style: its learned token when it has one."""
    if isinstance(style, TextualInversionStyle):
        return f"an image in {style.token} {style.keyword} style: {frame_prompt_text}"
    return f"an image in {movie.style_keyword} style: {frame_prompt_text}"
