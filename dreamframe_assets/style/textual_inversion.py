"""Style Immobilization with a diffusion model: one style token learned per movie.

Reference images are drawn from the movie's style description, then one new token
embedding per text encoder is learned on them by textual inversion on the frozen
model (or the authors' own ``.pt`` embedding is used as is). Keyframes carry the
token in every prompt (``render/diffusion.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageOps

from ..core.ids import item_seed
from ..core.params import StyleBanksParams, TextualInversionParams
from ..core.plot import Movie
from ..models.diffusion import (
    TextualInversionStyle,
    draw,
    frame_prompt,
    image_settings,
    load_authors_embedding,
    load_pipeline,
    style_loaded,
    text_encoders,
    unload_token,
)

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


def _training_pixels(image: np.ndarray, resolution: int, flip: bool) -> np.ndarray:
    """The method's preprocessing: resize to the training resolution, autocontrast, flip."""
    pil = ImageOps.autocontrast(Image.fromarray(image).convert("RGB").resize((resolution, resolution), Image.BICUBIC))
    if flip:
        pil = ImageOps.mirror(pil)
    return np.asarray(pil, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0


def _autocast_dtype(mode: str, pipe_dtype: Any) -> Any:
    """The autocast precision: ``auto`` follows the pipeline's weights (float16 or bfloat16
    on a GPU, none for float32); None means full precision."""
    import torch

    if mode == "auto":
        return pipe_dtype if pipe_dtype in (torch.float16, torch.bfloat16) else None
    return {"no": None, "fp16": torch.float16, "bf16": torch.bfloat16}[mode]


def learn_token(pipe: Any, token: str, init_text: str, images: Sequence[np.ndarray],
                params: TextualInversionParams, seed: int) -> dict[str, np.ndarray]:
    """Textual inversion: one new embedding row per text encoder, everything else frozen.

    Standard noise-prediction loss on a DDPM schedule built from the model's own
    scheduler config (uniform timestep; v-prediction targets where the model uses
    them), AdamW, gradient clipping at 1.0, batch 1 with gradient accumulation. The
    token starts at the mean embedding of ``init_text``'s tokens (the style keyword).

    Only the new rows train: each is a float32 parameter of its own (the master copy),
    put in place of the token's embedding by a hook on the encoder's input embeddings, so
    the optimizer, its state and the gradient clipping see nothing else, and the frozen
    model stays in its own precision. With float16 or bfloat16 weights the forward runs
    under autocast, and float16 gradients go through a gradient scaler (they underflow
    otherwise). ``gradient_checkpointing`` trades UNet compute for activation memory.
    One seeded generator draws every random choice: a run is deterministic on a CPU.
    The token is removed from ``pipe`` before returning, whether training succeeded or not,
    and the training's memory is let go.
    """
    import gc

    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    if not images:
        raise ValueError(f"{token}: textual inversion needs at least one image")
    encoders = text_encoders(pipe)
    is_xl = any(name == "clip_g" for name, _, _ in encoders)
    device = pipe._execution_device
    unet, vae = pipe.unet, pipe.vae
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    gen = torch.Generator("cpu").manual_seed(int(seed))
    amp = _autocast_dtype(params.mixed_precision, unet.dtype)
    # float16 gradients underflow without a scaler: under float16 autocast, or float16 weights
    scaler = torch.amp.GradScaler(device.type, enabled=(amp or unet.dtype) == torch.float16)

    # 1. the new token in every tokenizer; its trained row a float32 parameter, from the keyword
    added, rows, hooks, token_ids = [], [], [], []
    checkpointing = params.gradient_checkpointing and not unet.is_gradient_checkpointing
    optimizer = lr_schedule = None
    encoded: dict[tuple[int, bool], Any] = {}  # latent distributions of each image (and its mirror)
    try:
        for name, tokenizer, text_encoder in encoders:
            if tokenizer.add_tokens(token) != 1:
                raise ValueError(f"{token!r} is already in the {name} tokenizer")
            added.append((tokenizer, text_encoder))
            text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            text_encoder.requires_grad_(False)
            embeddings = text_encoder.get_input_embeddings()
            init_ids = tokenizer(init_text, add_special_tokens=False).input_ids
            if not init_ids:
                raise ValueError(f"{token}: initializer text {init_text!r} has no tokens")
            token_id = tokenizer.convert_tokens_to_ids(token)
            row = torch.nn.Parameter(embeddings.weight[init_ids].detach().float().mean(dim=0))
            with torch.no_grad():
                embeddings.weight[token_id] = row.to(embeddings.weight.dtype)

            def put_row(module: Any, inputs: tuple, out: Any, row: Any = row, token_id: int = token_id) -> Any:
                return torch.where((inputs[0] == token_id)[..., None], row.to(out.dtype), out)

            hooks.append(embeddings.register_forward_hook(put_row))
            rows.append(row)
            token_ids.append(token_id)
        if checkpointing:
            unet.enable_gradient_checkpointing()

        optimizer = torch.optim.AdamW(rows, lr=params.learning_rate, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
        # The learning rate steps down once, half way (the method gives only the two values).
        half = params.steps // 2
        scale = params.final_learning_rate / params.learning_rate
        lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 if step < half else scale)

        # 2. latent distributions of each image (and its mirror), encoded once
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
                with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
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
                scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(rows, 1.0)
            scaler.step(optimizer)
            scaler.update()
            lr_schedule.step()
            optimizer.zero_grad(set_to_none=True)

        learned = {}
        for (name, _, text_encoder), row, token_id in zip(encoders, rows, token_ids):
            weight = text_encoder.get_input_embeddings().weight
            with torch.no_grad():  # the matrix holds what was learned, as a loaded embedding would
                weight[token_id] = row.detach().to(weight.dtype)
            learned[name] = row.detach().float().cpu().numpy().copy()
        return learned
    finally:
        # 4. leave the shared pipeline as it was: no token, no hooks, frozen; and free the training
        for hook in hooks:
            hook.remove()
        for tokenizer, text_encoder in added:
            unload_token(pipe, token, tokenizer, text_encoder)
            text_encoder.requires_grad_(False)
        if checkpointing:
            unet.disable_gradient_checkpointing()
        encoded.clear()
        del optimizer, lr_schedule, rows
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def style_token(movie_id: str) -> str:
    return f"<df-{movie_id}>"


def reference_prompts(movie: Movie, count: int) -> list[str]:
    """Style images as the authors made them: the movie's places, in its described style."""
    places = [loc.name for loc in movie.locations] or ["a scene"]
    return [f"{places[i % len(places)]}, {movie.style_description}, in {movie.style_keyword} style" for i in range(count)]


class TextualInversionLearner:
    """Stage 2: reference images from the movie's style description, then one style token learned from them."""

    name = "textual_inversion"

    def __init__(self, params: StyleBanksParams, imported: dict[str, Path] | None = None):
        self.params = params
        self.imported = dict(imported or {})  # movie_id -> the authors' .pt embedding to use as is

    def identity(self) -> str:
        """Goes into cache keys: the model and every setting that changes the learned vectors."""
        from ..core.cache import bytes_digest

        imported = {mid: bytes_digest(path.read_bytes()) for mid, path in sorted(self.imported.items())}
        return "textual-inversion/1:" + json.dumps({**image_settings(self.params.diffusion),
                                                    "textual_inversion": self.params.textual_inversion.model_dump(),
                                                    "imported": imported}, sort_keys=True)

    def learn(self, movie: Movie, references: int, size: int, seed: int) -> tuple[list[np.ndarray], TextualInversionStyle]:
        diffusion = self.params.diffusion
        seeds = [item_seed("reference", seed, movie.movie_id, i) for i in range(references)]
        token = style_token(movie.movie_id)
        if movie.movie_id in self.imported:  # the authors' own token: draw the references with it
            style = load_authors_embedding(self.imported[movie.movie_id], token, movie.style_keyword)
            prompts = [frame_prompt(style, movie, p) for p in reference_prompts(movie, references)]
            with style_loaded(load_pipeline(diffusion), style):
                return draw(diffusion, prompts, seeds, size, size), style
        refs = draw(diffusion, reference_prompts(movie, references), seeds, size, size)
        vectors = learn_token(load_pipeline(diffusion), token, movie.style_keyword, refs,
                              self.params.textual_inversion, item_seed("textual-inversion", seed, movie.movie_id))
        return refs, TextualInversionStyle(token=token, embeddings=vectors, keyword=movie.style_keyword)
