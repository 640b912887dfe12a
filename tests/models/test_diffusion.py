"""Diffusion backends on tiny models built from configs, saved and loaded back as a user's model.

The builders are session fixtures (``tiny_sd``, ``tiny_sdxl``, ``tiny_sdxl_refiner``:
each a folder with a saved pipeline) so other test files can import and reuse them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from dreamframe_assets.core.params import (
    DiffusionParams,
    KeyframesParams,
    StyleBanksParams,
    TextualInversionParams,
)
from dreamframe_assets.models import diffusion as dd
from dreamframe_assets.style.offline import OfflineStyleLearner
from tests.conftest import make_plot  # noqa: E402

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


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> Path:
    return build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def tiny_sdxl_refiner(tmp_path_factory) -> Path:
    return build_tiny_sdxl_refiner(tmp_path_factory.mktemp("tiny-sdxl-refiner"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def assert_same_image(a: np.ndarray, b: np.ndarray) -> None:
    """Same noise and prompt: the same image up to float rounding of batched kernels
    (a few values off by one level), never a different picture."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.005, (int(diff.max()), float((diff > 0).mean()))


def dparams(model: Path, **kw) -> DiffusionParams:
    return DiffusionParams(model=str(model), steps=kw.pop("steps", 2), batch_size=kw.pop("batch_size", 4), **kw)


def ti_learner(model: Path, steps: int = 3) -> dd.TextualInversionLearner:
    return dd.TextualInversionLearner(StyleBanksParams(
        learner="textual_inversion", diffusion=dparams(model),
        textual_inversion=TextualInversionParams(steps=steps, gradient_accumulation=2, resolution=SIZE)))


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


# ---------------------------------------------------------------- keyframes
@pytest.mark.parametrize("which", ["tiny_sd", "tiny_sdxl"])
def test_keyframes_deterministic_batched_and_alone(which, request):
    model = request.getfixturevalue(which)
    plot = make_plot()  # 6 frames
    style = OfflineStyleLearner().learn(plot.movie, 1, 32, 0)[1]
    batched = dd.DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=dparams(model, batch_size=4)))
    single = dd.DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=dparams(model, batch_size=1)))
    a = batched.render(plot, style, SIZE, SIZE, seed=5)
    assert len(a) == len(plot.frames)
    assert all(img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8 for img in a)
    assert not np.array_equal(a[0], a[1]), "frames should get different seeds"
    again = batched.render(plot, style, SIZE, SIZE, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, again))
    other = batched.render(plot, style, SIZE, SIZE, seed=6)
    assert not np.array_equal(a[0], other[0])
    b = single.render(plot, style, SIZE, SIZE, seed=5)
    for x, y in zip(a, b):
        assert_same_image(x, y)  # batched == one by one
    k = 3
    alone = batched.render(plot, style, SIZE, SIZE, seed=5, indices=[k])
    assert len(alone) == 1
    assert_same_image(alone[0], a[k])
    assert_same_image(alone[0], b[k])
    assert batched.identity() == single.identity()  # batch size changes no image


def test_character_seeds_follow_lead_character():
    plot = make_plot()
    seeds = dd.frame_seeds(plot, 0, character_seeds=True)
    leads = [f.characters[0] for f in plot.frames]  # c0 c0 c0 c0 c1 c1
    assert seeds[1] == seeds[0] + 1 and seeds[3] == seeds[0] + 3
    assert seeds[5] == seeds[4] + 1 and leads[4] == "c1"
    # dropping a frame led by c1 leaves every c0 frame's seed unchanged
    fewer = dataclasses.replace(plot, frames=plot.frames[:4] + plot.frames[5:])
    assert dd.frame_seeds(fewer, 0, True)[:4] == seeds[:4]
    assert len(set(dd.frame_seeds(plot, 0))) == len(plot.frames)


def test_sdxl_base_and_refiner_ensemble(tiny_sdxl, tiny_sdxl_refiner):
    params = dparams(tiny_sdxl, refiner=str(tiny_sdxl_refiner), refiner_start=0.75, steps=4)
    base = dd.load_pipeline(params)
    refiner = dd.load_refiner(params)
    assert refiner.text_encoder_2 is base.text_encoder_2 and refiner.vae is base.vae
    images = dd.draw(params, ["a quiet harbor", "a forest path"], [1, 2], SIZE, SIZE)
    assert [i.shape for i in images] == [(SIZE, SIZE, 3)] * 2
    again = dd.draw(params, ["a quiet harbor", "a forest path"], [1, 2], SIZE, SIZE)
    assert all(np.array_equal(x, y) for x, y in zip(again, images))
    assert_same_image(dd.draw(params, ["a forest path"], [2], SIZE, SIZE)[0], images[1])
    plain = dd.draw(dparams(tiny_sdxl, steps=4), ["a quiet harbor"], [1], SIZE, SIZE)
    assert not np.array_equal(plain[0], images[0]), "the refiner should change the image"

    # a style token reaches the refiner through the shared text_encoder_2 / tokenizer_2
    rng = np.random.default_rng(0)
    style = dd.TextualInversionStyle("<df-x>", {"clip_l": rng.normal(size=32), "clip_g": rng.normal(size=64)}, "Gothic")
    lengths = (len(base.tokenizer), len(base.tokenizer_2))
    renderer = dd.DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=params))
    with_token = renderer.render(make_plot(), style, SIZE, SIZE, seed=0, indices=[0])[0]
    without = renderer.render(make_plot(), None, SIZE, SIZE, seed=0, indices=[0])[0]
    assert not np.array_equal(with_token, without)
    assert (len(base.tokenizer), len(base.tokenizer_2), len(refiner.tokenizer_2)) == lengths + lengths[1:]


# ---------------------------------------------------------------- textual inversion
def _state(pipe):
    return [(name, len(tok), te.get_input_embeddings().weight.detach().clone()) for name, tok, te in dd._encoders(pipe)]


@pytest.mark.parametrize("which", ["tiny_sd", "tiny_sdxl"])
def test_textual_inversion_learns_only_the_token(which, request, tmp_path, monkeypatch):
    model = request.getfixturevalue(which)
    learner = ti_learner(model)
    pipe = dd.load_pipeline(learner.params.diffusion)
    before = _state(pipe)
    plot = make_plot()

    # spy on the embedding matrices at the end of training, before the token is removed
    seen = {}
    original_unload = dd._unload

    def spy(p, token, tokenizer, text_encoder):
        seen[id(text_encoder)] = (text_encoder.get_input_embeddings().weight.detach().clone(),
                                  tokenizer.convert_tokens_to_ids(token))
        original_unload(p, token, tokenizer, text_encoder)

    monkeypatch.setattr(dd, "_unload", spy)
    refs, style = learner.learn(plot.movie, references=2, size=SIZE, seed=3)
    monkeypatch.setattr(dd, "_unload", original_unload)

    assert len(refs) == 2 and refs[0].shape == (SIZE, SIZE, 3) and refs[0].dtype == np.uint8
    assert style.token == f"<df-{plot.movie.movie_id}>" and style.keyword == plot.movie.style_keyword
    expected = {"clip_l"} if which == "tiny_sd" else {"clip_l", "clip_g"}
    assert set(style.embeddings) == expected
    for (name, length, weight), (_, _, te) in zip(before, dd._encoders(pipe)):
        trained, row = seen[id(te)]
        assert row == length  # the new row was appended
        assert torch.equal(trained[:length], weight), f"{name}: a row other than the token's changed"
        init_ids = pipe.tokenizer(plot.movie.style_keyword, add_special_tokens=False).input_ids
        init = weight[init_ids].mean(0)
        assert not torch.allclose(trained[row], init), f"{name}: the token's row did not move"
        assert np.array_equal(style.embeddings[name], trained[row].numpy())
    # the shared pipeline is clean again
    after = _state(pipe)
    for (name, length, weight), (_, length2, weight2) in zip(before, after):
        assert length2 == length and torch.equal(weight2, weight), name
    for _, _, te in dd._encoders(pipe):
        assert not te.get_input_embeddings().weight.requires_grad

    # deterministic
    _, again = learner.learn(plot.movie, references=2, size=SIZE, seed=3)
    assert again == style

    # the saved file loads with diffusers (per encoder for SDXL) and gives the learned vector
    path = tmp_path / dd.EMBEDDING_FILE
    path.write_bytes(style.files()[dd.EMBEDDING_FILE])
    if which == "tiny_sd":
        pipe.load_textual_inversion(str(path))
        loaded = {"clip_l": pipe.text_encoder.get_input_embeddings().weight[pipe.tokenizer.convert_tokens_to_ids(style.token)]}
        pipe.unload_textual_inversion(style.token)
    else:
        from safetensors.torch import load_file

        state = load_file(path)
        loaded = {}
        for name, tok, te in dd._encoders(pipe):
            pipe.load_textual_inversion(state[name], token=style.token, tokenizer=tok, text_encoder=te)
            loaded[name] = te.get_input_embeddings().weight[tok.convert_tokens_to_ids(style.token)].detach().clone()
            pipe.unload_textual_inversion(style.token, tokenizer=tok, text_encoder=te)
    for name, vector in loaded.items():
        assert np.array_equal(vector.detach().numpy(), style.embeddings[name])
    assert [n for _, n, _ in _state(pipe)] == [n for _, n, _ in before]

    # round trip through to_dict + files, and render with the token
    d = json.loads(json.dumps(style.to_dict()))
    assert "embeddings" not in d and d["kind"] == "textual_inversion"
    assert dd.TextualInversionStyle.from_dict(d, style.files()) == style
    renderer = dd.DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=dparams(model)))
    frames = renderer.render(plot, style, SIZE, SIZE, seed=0, indices=[0, 1])
    assert len(frames) == 2 and [n for _, n, _ in _state(pipe)] == [n for _, n, _ in before]
    prompt = dd.frame_prompt(style, plot.movie, plot.frames[0].prompt)
    assert prompt.startswith(f"an image in {style.token} {style.keyword} style: ")


def test_v_prediction_model_trains(tmp_path):
    """SD 2.x style: the target is the velocity, not the noise."""
    model = build_tiny_sd(tmp_path / "sd-v", prediction_type="v_prediction")
    learner = ti_learner(model, steps=2)
    _, style = learner.learn(make_plot().movie, references=1, size=SIZE, seed=0)
    assert np.isfinite(style.embeddings["clip_l"]).all()


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
