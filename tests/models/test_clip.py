"""ClipEmbedder on a tiny CLIP built from a config, saved and loaded like a user's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from dreamframe_assets.models.clip import ClipEmbedder

WORDS = "a photo of person in red blue green the old hall forest keyframe".split()


def _tiny_clip(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        CLIPConfig,
        CLIPModel,
        CLIPProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    special = ["<pad>", "<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(special + WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                        bos_token="<s>", eos_token="</s>", model_max_length=16)
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = CLIPConfig(
        text_config=dict(vocab_size=len(special) + len(WORDS), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=8,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return _tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((64, 64), (48, 96), (128, 40))]


def test_image_embeddings_are_unit_rows_and_deterministic(clip_dir):
    clip = ClipEmbedder(str(clip_dir))
    emb = clip.images(_images())
    assert emb.shape == (3, 8) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(emb, clip.images(_images()))
    assert np.allclose(emb, ClipEmbedder(str(clip_dir)).images(_images()), atol=1e-6)  # a fresh load agrees
    assert not np.allclose(emb[0], emb[1])
    alone = clip.images(_images()[1:2])
    assert np.allclose(alone[0], emb[1], atol=1e-5)  # a row does not depend on its batch


def test_text_embeddings_are_unit_rows_and_deterministic(clip_dir):
    clip = ClipEmbedder(str(clip_dir), batch_size=2)
    texts = ["a person in red", "the old hall", "a photo of the forest " * 10]  # the last is cut to the context
    emb = clip.texts(texts)
    assert emb.shape == (3, 8)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(emb, clip.texts(texts))
    assert not np.allclose(emb[0], emb[1])


def test_empty_inputs_and_missing_model(clip_dir):
    clip = ClipEmbedder(str(clip_dir))
    assert clip.images([]).shape == (0, 8)
    assert clip.texts([]).shape == (0, 8)
    with pytest.raises(ValueError, match="clip_model"):
        ClipEmbedder("")
