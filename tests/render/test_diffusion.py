"""Diffusion keyframes: deterministic, batched == one by one, any frame alone, per-character
seeds, the SDXL base + refiner ensemble with a style token."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from dreamframe_assets.core.params import KeyframesParams
from dreamframe_assets.models import diffusion as dd
from dreamframe_assets.render import diffusion as rd
from dreamframe_assets.style.offline import OfflineStyleLearner

from ..conftest import make_plot  # noqa: E402
from ..tiny_diffusion import SIZE, assert_same_image, dparams  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# ---------------------------------------------------------------- keyframes
@pytest.mark.parametrize("which", ["tiny_sd", "tiny_sdxl"])
def test_keyframes_deterministic_batched_and_alone(which, request):
    model = request.getfixturevalue(which)
    plot = make_plot()  # 6 frames
    style = OfflineStyleLearner().learn(plot.movie, 1, 32, 0)[1]
    batched = rd.DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=dparams(model, batch_size=4)))
    single = rd.DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=dparams(model, batch_size=1)))
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
    seeds = rd.frame_seeds(plot, 0, character_seeds=True)
    leads = [f.characters[0] for f in plot.frames]  # c0 c0 c0 c0 c1 c1
    assert seeds[1] == seeds[0] + 1 and seeds[3] == seeds[0] + 3
    assert seeds[5] == seeds[4] + 1 and leads[4] == "c1"
    # dropping a frame led by c1 leaves every c0 frame's seed unchanged
    fewer = dataclasses.replace(plot, frames=plot.frames[:4] + plot.frames[5:])
    assert rd.frame_seeds(fewer, 0, True)[:4] == seeds[:4]
    assert len(set(rd.frame_seeds(plot, 0))) == len(plot.frames)


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
    renderer = rd.DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=params))
    with_token = renderer.render(make_plot(), style, SIZE, SIZE, seed=0, indices=[0])[0]
    without = renderer.render(make_plot(), None, SIZE, SIZE, seed=0, indices=[0])[0]
    assert not np.array_equal(with_token, without)
    assert (len(base.tokenizer), len(base.tokenizer_2), len(refiner.tokenizer_2)) == lengths + lengths[1:]


# ---------------------------------------------------------------- prompts that keep their facts
def test_a_prompt_loses_its_prose_before_any_fact_and_says_what_it_lost():
    words = lambda limit: (lambda text: len(text.split()) <= limit)  # noqa: E731 - a stand-in tokenizer
    facts = [("people", "one person: a tall woman in red"), ("action", "holding a lantern"),
             ("place", "at the old lighthouse"), ("expression", "worried expression")]
    head = "an image in Gothic style: "
    whole = rd.fit_prompt(head, facts, "she looks out to sea", words(100))
    assert whole.text == head + "; ".join(p for _, p in facts) + ". she looks out to sea" and whole.lost == ()
    cut = rd.fit_prompt(head, facts, "she looks out to sea", words(24))
    assert cut.text.endswith("worried expression. she looks out") and cut.lost == ("prose",)
    tight = rd.fit_prompt(head, facts, "she looks out to sea", words(19))
    assert tight.text == head + "one person: a tall woman in red; holding a lantern; at the old lighthouse"
    assert tight.lost == ("expression", "prose")


def test_frame_prompts_name_the_frames_facts_within_the_text_encoders_reach(tiny_sd):
    plot = make_plot()
    long = "In a storm, " + " ".join(["the waves crash against the rocks and the wind howls"] * 12)
    plot = dataclasses.replace(plot, frames=tuple(dataclasses.replace(f, prompt=long) for f in plot.frames))
    style = OfflineStyleLearner().learn(plot.movie, 1, 32, 0)[1]
    renderer = rd.DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=dparams(tiny_sd)))
    tokenizer = dd.load_pipeline(renderer.params.diffusion).tokenizer
    fits = dd.prompt_fits(dd.load_pipeline(renderer.params.diffusion))
    cast = {c.char_id: c for c in plot.movie.characters}
    reach = tokenizer.model_max_length
    try:  # the tiny tokenizer spends a token per letter or two: give it room for the facts
        tokenizer.model_max_length = 240
        prompts = renderer.prompts(plot, style, range(len(plot.frames)))
        assert all(fits(p.text) and not fits(p.text + " " + long) for p in prompts)
        for frame, prompt in zip(plot.frames, prompts):
            assert all(cast[c].appearance in prompt.text for c in frame.characters)
            assert frame.expression in prompt.text and frame.location in prompt.text
            assert prompt.text.index(cast[frame.characters[0]].appearance) < prompt.text.index("waves")
            assert prompt.lost == ("prose",)
        tokenizer.model_max_length = 100  # then facts go too, the least asked about first
        lost = renderer.prompts(plot, style, [0])[0].lost
        assert lost[-1] == "prose" and "people" not in lost and lost[0] in ("action", "place", "expression")
    finally:
        tokenizer.model_max_length = reach
    prose = rd.DiffusionRenderer(KeyframesParams(renderer="diffusion", prompt="prose", diffusion=dparams(tiny_sd)))
    assert prose.prompts(plot, style, [0])[0].text.endswith(long) and prose.identity() != renderer.identity()


# ---------------------------------------------------------------- character references (IP-Adapter)
def _with_references(model, adapter, **kw) -> rd.DiffusionRenderer:
    from dreamframe_assets.core.params import IPAdapterParams

    return rd.DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=dparams(model, **kw),
                                                ip_adapter=IPAdapterParams(model=str(adapter), subfolder="", weight_name="ip_adapter.safetensors")))


@pytest.mark.parametrize("which", ["sd", "sdxl"])
def test_character_references_condition_each_frame_and_leave_the_pipeline_as_it_was(which, request):
    model, adapter = request.getfixturevalue(f"tiny_{which}"), request.getfixturevalue(f"tiny_{which}_ip_adapter")
    plot = make_plot()  # frames show c0, c1 or both
    plot = dataclasses.replace(plot, frames=plot.frames + (dataclasses.replace(plot.frames[0], frame_index=6, characters=()),))
    style = OfflineStyleLearner().learn(plot.movie, 1, 32, 0)[1]
    plain = rd.DiffusionRenderer(KeyframesParams(renderer="diffusion", diffusion=dparams(model, attention_slicing=True)))
    before = plain.render(plot, style, SIZE, SIZE, seed=5)
    pipe = dd.load_pipeline(plain.params.diffusion)
    processors = {name: type(p) for name, p in pipe.unet.attn_processors.items()}

    batched = _with_references(model, adapter, attention_slicing=True)
    drawn = batched.render_movie(plot, style, SIZE, SIZE, seed=5)
    assert sorted(drawn.references) == ["c0", "c1"]
    assert all(img.shape == (SIZE, SIZE, 3) for img in drawn.references.values())
    assert not np.array_equal(drawn.references["c0"], drawn.references["c1"])
    assert len(drawn.images) == len(plot.frames)
    changed = [not np.array_equal(a, b) for a, b in zip(drawn.images, before)]
    assert all(changed[:6]), "every frame with people is drawn with its characters' references"
    assert batched.identity() != plain.identity()

    # the same movie again, one frame at a time, or one frame alone: the same images
    again = batched.render_movie(plot, style, SIZE, SIZE, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(again.images, drawn.images))
    single = _with_references(model, adapter, attention_slicing=True, batch_size=1).render(plot, style, SIZE, SIZE, seed=5)
    for a, b in zip(single, drawn.images):  # the references, drawn one by one, round alike too: a little more slack
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 2 and (diff > 0).mean() < 0.02, (int(diff.max()), float((diff > 0).mean()))
    assert_same_image(batched.render(plot, style, SIZE, SIZE, seed=5, indices=[3])[0], drawn.images[3])

    # the adapter is out again: the shared pipeline draws as before, with its own (sliced) attention
    assert pipe.unet.encoder_hid_proj is None and pipe.image_encoder is None
    assert {name: type(p) for name, p in pipe.unet.attn_processors.items()} == processors
    after = plain.render(plot, style, SIZE, SIZE, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(after, before))


def test_each_frame_is_drawn_from_the_references_of_the_characters_it_shows(tiny_sd, tiny_sd_ip_adapter, monkeypatch):
    """Swap the two characters' reference pictures, prompts unchanged: every one-person frame
    changes (it now gets the other's picture); every frame showing both gets the same two
    pictures and stays the same (attention does not depend on the order of its image tokens)."""
    plot = make_plot()  # frames: c0, c0, c0+c1, c0+c1, c1, c1+c0
    style = OfflineStyleLearner().learn(plot.movie, 1, 32, 0)[1]
    renderer = _with_references(tiny_sd, tiny_sd_ip_adapter)
    drawn = renderer.render_movie(plot, style, SIZE, SIZE, seed=5)
    swapped = {"c0": drawn.references["c1"], "c1": drawn.references["c0"]}
    monkeypatch.setattr(renderer, "references", lambda *args: swapped)
    other = renderer.render_movie(plot, style, SIZE, SIZE, seed=5)
    for k, frame in enumerate(plot.frames):
        diff = np.abs(drawn.images[k].astype(int) - other.images[k].astype(int)).max()
        if len(frame.characters) == 1:
            assert diff > 1, f"frame {k} ({frame.characters}) ignored whose picture it was given"
        else:
            assert diff <= 1, f"frame {k} ({frame.characters}) changed with the same two pictures"
