"""VLMAnswerer on a tiny LLaVA built from a config, saved and loaded like a user's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from dreamframe_assets.core.params import EvalScoresParams, VLMParams
from dreamframe_assets.core.plot import QA
from dreamframe_assets.evaluate.vlm import VLMAnswerer, build_prompt, choose_frames

SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
WORDS = "A B C D . : user assistant keyframe how many people are in what colour one two three four red blue".split()
# Renders image entries as <image>, text entries as their text; the processor expands each <image>.
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endif %}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)


def _tiny_llava(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    vocab = {w: i for i, w in enumerate(SPECIAL + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", extra_special_tokens={"image_token": "<image>"})
    images = CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    # "default" drops the CLS feature; the processor adds it (+1) and takes it away again: 4 tokens an image
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=8, chat_template=TEMPLATE,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, image_size=16, patch_size=8),
        text_config=dict(model_type="llama", vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=512, pad_token_id=0, bos_token_id=2, eos_token_id=3),
        image_token_index=vocab["<image>"], vision_feature_select_strategy="default", vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory) -> Path:
    return _tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


def _answerer(folder: Path, frames: int = 3) -> VLMAnswerer:
    return VLMAnswerer(EvalScoresParams(vlm=VLMParams(model=str(folder), frames=frames, max_new_tokens=4)))


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(n)]


def _qa(qtype: str, evidence: tuple[int, ...], options=("one", "two", "three", "four")) -> QA:
    return QA("test-movie", f"test-movie-{qtype}", "grounded", qtype, "How many people are in keyframe 4?", "two",
              tuple(options), 1, evidence, None, "frame:3:count")


def test_answers_with_one_pick_per_question_deterministically(llava_dir, plot):
    images = _images(len(plot.frames))
    qas = [_qa("count", (3,)), _qa("order", (0, 2, 4, 5)), _qa("why", ()), _qa("colour", (5,), ("red", "blue", "green", "pink"))]
    answerer = _answerer(llava_dir)
    picks = answerer.answer(plot, qas, images)
    assert len(picks) == len(qas) and all(p in (-1, 0, 1, 2, 3) for p in picks)
    assert picks == answerer.answer(plot, qas, images)
    assert picks == _answerer(llava_dir).answer(plot, qas, images)  # a fresh load agrees


def test_the_model_is_shown_the_evidence_frames_first(llava_dir, plot):
    images = _images(len(plot.frames))
    answerer = _answerer(llava_dir, frames=3)
    processor, _ = answerer._load()
    shown: list[list[np.ndarray]] = []
    template = processor.apply_chat_template

    def spy(messages, **kw):
        shown.append([np.asarray(c["image"]) for c in messages[0]["content"] if c["type"] == "image"])
        return template(messages, **kw)

    processor.apply_chat_template = spy
    try:
        answerer.answer(plot, [_qa("count", (4,))], images)
    finally:
        processor.apply_chat_template = template
    expected = choose_frames((4,), len(images), 3)
    assert expected[0] == 4 and len(expected) == 3
    assert len(shown) == 1 and len(shown[0]) == 3
    assert all(np.array_equal(got, images[k]) for got, k in zip(shown[0], expected))


def test_frame_choice_puts_evidence_first_then_spreads_the_rest():
    assert choose_frames((5, 2), 30, 6) == [2, 5, 4, 12, 19, 26]
    assert choose_frames((5, 2), 30, 1) == [2]  # the evidence is what is never cut
    assert choose_frames((), 10, 5) == [1, 3, 5, 7, 9]
    assert choose_frames((40, -1, 1), 3, 8) == [1, 0, 2]  # stray indices dropped; no more frames than exist
    assert choose_frames((1,), 0, 4) == []
    for evidence in ((0,), (7, 3), (9, 8, 2, 0)):
        got = choose_frames(evidence, 10, 6)
        assert got[: len(evidence)] == sorted(evidence) and len(set(got)) == 6


def test_prompt_labels_each_frame_and_letters_the_options():
    messages = build_prompt(_qa("count", (3,)), [3, 0])
    content = messages[0]["content"]
    assert [c["type"] for c in content] == ["text", "image", "text", "image", "text"]
    assert content[0]["text"] == "Keyframe 4:" and content[2]["text"] == "Keyframe 1:"
    assert "How many people are in keyframe 4?" in content[-1]["text"]
    assert "A. one\nB. two\nC. three\nD. four" in content[-1]["text"]


def test_needs_a_model():
    with pytest.raises(ValueError, match="vlm.model"):
        VLMAnswerer(EvalScoresParams())
