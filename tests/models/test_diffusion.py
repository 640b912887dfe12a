"""Diffusion models: loading SD / SDXL pipelines (once per process), drawing, and style tokens
(the authors' embeddings), on tiny models built from configs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from dreamframe_assets.core.params import DiffusionParams
from dreamframe_assets.models import diffusion as dd

from ..tiny_diffusion import dparams  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# ---------------------------------------------------------------- loading
def test_load_pipeline_reads_kind_and_caches(tiny_sd, tiny_sdxl):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    sd, xl = dd.load_pipeline(dparams(tiny_sd)), dd.load_pipeline(dparams(tiny_sdxl))
    assert type(sd) is StableDiffusionPipeline and type(xl) is StableDiffusionXLPipeline
    assert sd.unet.dtype == torch.float32 and sd.device.type == "cpu"
    # generation settings do not reload the model
    assert dd.load_pipeline(dparams(tiny_sd, steps=7, guidance_scale=1.0, batch_size=1)) is sd
    assert dd.pipeline_kind(DiffusionParams(model="stabilityai/stable-diffusion-xl-base-1.0")) == "sdxl"
    assert dd.pipeline_kind(DiffusionParams(model="some/sd-1.5")) == "sd"


# ---------------------------------------------------------------- the authors' embeddings
def test_load_authors_embedding(tmp_path):
    path = tmp_path / "movie.pt"
    emb, emb2 = torch.randn(1, 768), torch.randn(1280)
    torch.save({"emb": emb, "emb2": emb2}, path)
    style = dd.load_authors_embedding(path, "<movie-7>", "Gothic")
    assert style.embeddings["clip_l"].shape == (768,) and style.embeddings["clip_g"].shape == (1280,)
    assert np.array_equal(style.embeddings["clip_g"], emb2.numpy())
    assert dd.TextualInversionStyle.from_dict(style.to_dict(), style.files()) == style

    tampered = dict(style.to_dict(), sha="0" * 32)
    with pytest.raises(ValueError, match="hash"):
        dd.TextualInversionStyle.from_dict(tampered, style.files())

    bad = tmp_path / "bad.pt"
    torch.save({"embedding": emb}, bad)
    with pytest.raises(ValueError, match="bad.pt"):
        dd.load_authors_embedding(bad, "<x>", "Gothic")
    torch.save({"emb": torch.randn(2, 768), "emb2": emb2}, bad)
    with pytest.raises(ValueError, match="'emb' must be one vector"):
        dd.load_authors_embedding(bad, "<x>", "Gothic")
