"""Tiny diffusion models built from configs, saved and loaded back as a user's model.

The builders are used by session fixtures in ``tests/conftest.py`` (``tiny_sd``,
``tiny_sdxl``, ``tiny_sdxl_refiner``: each a folder holding a saved pipeline), so the
model, render and style tests share one build of each per worker.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from dreamframe_assets.core.params import (
    DiffusionParams,
    StyleBanksParams,
    TextualInversionParams,
)
from dreamframe_assets.style.textual_inversion import TextualInversionLearner

SIZE = 64
BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


# ---------------------------------------------------------------- tiny models
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte-level alphabet: every byte as a printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def tiny_tokenizer(folder: Path):
    """A CLIPTokenizer over the byte alphabet, specials last (as in CLIP), written as
    vocab.json + merges.txt and loaded from the folder (transformers 5 ignores ``vocab_file=``)."""
    from transformers import CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    merges = ["t h", "th e</w>", "i n", "a n", "e r", "o n", "in g</w>", "s t", "l e"]
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer.from_pretrained(folder, model_max_length=77)
    assert len(tok) == len(vocab), "tokenizer vocabulary did not load"
    return tok


def _text_config(tok, hidden: int, projection: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                          num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                          projection_dim=projection, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=32)


def _unet(cross: int, **extra):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=cross,
                                attention_head_dim=(2, 4), norm_num_groups=32, **extra)


def build_tiny_sd(folder: Path, prediction_type: str = "epsilon") -> Path:
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    tok = tiny_tokenizer(folder / "_tok")
    pipe = StableDiffusionPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(_text_config(tok, 32)), tokenizer=tok, unet=_unet(32),
        scheduler=DDIMScheduler(**BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type=prediction_type),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def _xl_text_encoders(folder: Path):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tok = tiny_tokenizer(folder / "_tok")
    return tok, CLIPTextModel(_text_config(tok, 32)), CLIPTextModelWithProjection(_text_config(tok, 64, 32))


def build_tiny_sdxl(folder: Path) -> Path:
    """Two text encoders (32 + 64 wide, pooled projection 32); UNet conditioned on 6 time ids."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    torch.manual_seed(0)
    tok, te1, te2 = _xl_text_encoders(folder)
    unet = _unet(32 + 64, addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=6 * 8 + 32, use_linear_projection=True)
    pipe = StableDiffusionXLPipeline(vae=_vae(), text_encoder=te1, text_encoder_2=te2, tokenizer=tok,
                                     tokenizer_2=tok, unet=unet, scheduler=EulerDiscreteScheduler(**BETAS))
    pipe.save_pretrained(folder)
    return folder


def build_tiny_sdxl_refiner(folder: Path) -> Path:
    """Like the SDXL refiner: text_encoder_2 only, aesthetic-score time ids (5)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline

    torch.manual_seed(1)
    tok, _, te2 = _xl_text_encoders(folder)
    unet = _unet(64, addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=5 * 8 + 32, use_linear_projection=True)
    pipe = StableDiffusionXLImg2ImgPipeline(vae=_vae(), text_encoder=None, text_encoder_2=te2, tokenizer=None,
                                            tokenizer_2=tok, unet=unet, scheduler=EulerDiscreteScheduler(**BETAS),
                                            requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)
    pipe.save_pretrained(folder)
    return folder


def build_tiny_ip_adapter(folder: Path, pipeline: Path, image_dim: int = 16) -> Path:
    """An IP-Adapter for the pipeline saved in ``pipeline``, laid out as h94/IP-Adapter's
    folders are: ``ip_adapter.safetensors`` (the image projection, then to_k_ip / to_v_ip of
    every cross-attention layer, numbered 1, 3, 5, ... in the UNet's processor order) and
    ``image_encoder/`` (a CLIPVisionModelWithProjection whose projection feeds the adapter)."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(2)
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
        patch_size=8, projection_dim=image_dim)).save_pretrained(folder / "image_encoder")
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(pipeline / "unet"))
    cross, widths = unet.config.cross_attention_dim, list(unet.config.block_out_channels)
    weights = {"image_proj.proj.weight": torch.randn(4 * cross, image_dim) * 0.3,
               "image_proj.proj.bias": torch.zeros(4 * cross),
               "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    number = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):  # self-attention: no image tokens
            continue
        block = name.split(".")
        hidden = (widths[-1] if block[0] == "mid_block" else widths[int(block[1])] if block[0] == "down_blocks"
                  else widths[::-1][int(block[1])])
        for part in ("to_k_ip", "to_v_ip"):
            weights[f"ip_adapter.{number}.{part}.weight"] = torch.randn(hidden, cross) * 0.3
        number += 2
    save_file(weights, folder / "ip_adapter.safetensors")
    return folder


def assert_same_image(a: np.ndarray, b: np.ndarray) -> None:
    """Same noise and prompt: the same image up to float rounding of batched kernels
    (a few values off by one level), never a different picture."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.005, (int(diff.max()), float((diff > 0).mean()))


def dparams(model: Path, **kw) -> DiffusionParams:
    return DiffusionParams(model=str(model), steps=kw.pop("steps", 2), batch_size=kw.pop("batch_size", 4), **kw)


def ti_learner(model: Path, steps: int = 3, **training) -> TextualInversionLearner:
    return TextualInversionLearner(StyleBanksParams(
        learner="textual_inversion", diffusion=dparams(model),
        textual_inversion=TextualInversionParams(steps=steps, gradient_accumulation=2, resolution=SIZE, **training)))
