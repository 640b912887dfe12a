"""Style Immobilization by textual inversion: only the token's row changes, the pipeline is
left clean, the file loads in diffusers, v-prediction models train."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from dreamframe_assets.core.params import KeyframesParams
from dreamframe_assets.models import diffusion as dd
from dreamframe_assets.render import diffusion as rd
from dreamframe_assets.style import textual_inversion as ti

from ..conftest import make_plot  # noqa: E402
from ..tiny_diffusion import SIZE, build_tiny_sd, dparams, ti_learner  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# ---------------------------------------------------------------- textual inversion
def _state(pipe):
    return [(name, len(tok), te.get_input_embeddings().weight.detach().clone()) for name, tok, te in dd.text_encoders(pipe)]


@pytest.mark.parametrize("which", ["tiny_sd", "tiny_sdxl"])
def test_textual_inversion_learns_only_the_token(which, request, tmp_path, monkeypatch):
    model = request.getfixturevalue(which)
    learner = ti_learner(model)
    pipe = dd.load_pipeline(learner.params.diffusion)
    before = _state(pipe)
    plot = make_plot()

    # spy on the embedding matrices at the end of training, before the token is removed
    seen = {}
    original_unload = ti.unload_token

    def spy(p, token, tokenizer, text_encoder):
        seen[id(text_encoder)] = (text_encoder.get_input_embeddings().weight.detach().clone(),
                                  tokenizer.convert_tokens_to_ids(token))
        original_unload(p, token, tokenizer, text_encoder)

    monkeypatch.setattr(ti, "unload_token", spy)
    refs, style = learner.learn(plot.movie, references=2, size=SIZE, seed=3)
    monkeypatch.setattr(ti, "unload_token", original_unload)

    assert len(refs) == 2 and refs[0].shape == (SIZE, SIZE, 3) and refs[0].dtype == np.uint8
    assert style.token == f"<df-{plot.movie.movie_id}>" and style.keyword == plot.movie.style_keyword
    expected = {"clip_l"} if which == "tiny_sd" else {"clip_l", "clip_g"}
    assert set(style.embeddings) == expected
    for (name, length, weight), (_, _, te) in zip(before, dd.text_encoders(pipe)):
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
    for _, _, te in dd.text_encoders(pipe):
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
        for name, tok, te in dd.text_encoders(pipe):
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
    renderer = rd.DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=dparams(model)))
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


def test_the_embedding_file_is_the_same_bytes_every_time():
    """Same vectors, same file: a movie learned again must not look changed to DVC or to the
    keyframes' cache keys (safetensors would lay out several metadata entries in hash order)."""
    style = dd.TextualInversionStyle(token="<df-m>", embeddings={"clip_l": np.arange(4.0), "clip_g": np.ones(6)},
                                     keyword="Noir")
    files = {style.files()[dd.EMBEDDING_FILE] for _ in range(20)}
    assert len(files) == 1
    assert dd.TextualInversionStyle.from_dict(style.to_dict(), style.files()) == style


def test_only_the_tokens_rows_are_optimized_in_mixed_precision_with_checkpointing(tiny_sd, monkeypatch):
    """The optimizer holds one float32 row per encoder (its state is a row, not the vocabulary);
    bfloat16 autocast and gradient checkpointing train it, and leave the pipeline as it was."""
    learner = ti_learner(tiny_sd, steps=2, mixed_precision="bf16", gradient_checkpointing=True)
    pipe = dd.load_pipeline(learner.params.diffusion)
    before = _state(pipe)
    optimized = []
    adamw = torch.optim.AdamW

    def spy(params, **kw):
        params = list(params)
        optimized.extend((tuple(p.shape), p.dtype) for p in params)
        return adamw(params, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    _, style = learner.learn(make_plot().movie, references=1, size=SIZE, seed=0)
    width = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    assert optimized == [((width,), torch.float32)]
    vector = style.embeddings["clip_l"]
    init_ids = pipe.tokenizer(make_plot().movie.style_keyword, add_special_tokens=False).input_ids
    init = pipe.text_encoder.get_input_embeddings().weight[init_ids].mean(0).detach().numpy()
    assert np.isfinite(vector).all() and not np.allclose(vector, init)
    assert not pipe.unet.is_gradient_checkpointing
    after = _state(pipe)
    assert all(n == n2 and torch.equal(w, w2) for (_, n, w), (_, n2, w2) in zip(before, after))
