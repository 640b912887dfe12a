"""CLIP embeddings of keyframes and texts, for evidence retrieval and style consistency.

Images and texts land in one space, so a question can be matched against the
frames (which frames show its answer?) and frames against each other (does a
movie keep one look?). Both are L2-normalised, so a dot product is a cosine.
"""

from __future__ import annotations

import numpy as np

from .device import READERS, auto_device, load_once


class ClipEmbedder:
    """A CLIPModel + CLIPProcessor (hub id or local folder), loaded on first use."""

    def __init__(self, model: str, device: str = "auto", batch_size: int = 32):
        if not model:
            raise ValueError("a CLIP model is needed (eval_scores.clip_model: a hub id or local folder)")
        self.model_name = model
        self.device_name = device
        self.batch_size = batch_size

    def identity(self) -> str:
        return f"clip|{self.model_name}"

    def _load(self):
        self.device = device = auto_device(self.device_name)

        def load():
            from transformers import CLIPModel, CLIPProcessor

            # float32 everywhere: embeddings are compared across runs, and CLIP is small; weights
            # from safetensors only (a .bin is a pickle, which can run code)
            model = CLIPModel.from_pretrained(self.model_name, use_safetensors=True)
            return CLIPProcessor.from_pretrained(self.model_name), model.to(device).eval()

        return load_once(("clip", self.model_name, device), load, stages=READERS)

    def images(self, images: list[np.ndarray]) -> np.ndarray:
        """One unit-length row per HxWx3 uint8 image."""
        import torch
        from PIL import Image

        processor, model = self._load()
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = [Image.fromarray(np.asarray(im, np.uint8)[..., :3]) for im in images[start : start + self.batch_size]]
            inputs = processor(images=batch, return_tensors="pt").to(self.device)
            with torch.no_grad():
                out.append(_features(model.get_image_features(pixel_values=inputs["pixel_values"])))
        return _unit(out, model.config.projection_dim)

    def texts(self, texts: list[str]) -> np.ndarray:
        """One unit-length row per text (cut to the model's context length)."""
        import torch

        processor, model = self._load()
        limit = model.config.text_config.max_position_embeddings
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            inputs = processor.tokenizer(batch, padding=True, truncation=True, max_length=limit, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
            with torch.no_grad():
                out.append(_features(model.get_text_features(**inputs)))
        return _unit(out, model.config.projection_dim)


def _features(out) -> np.ndarray:
    """transformers 5 returns a model output whose pooler_output is the projection; 4.x a tensor."""
    import torch

    tensor = out if isinstance(out, torch.Tensor) else out.pooler_output
    return tensor.float().cpu().numpy()


def _unit(chunks: list[np.ndarray], dim: int) -> np.ndarray:
    if not chunks:
        return np.zeros((0, dim), np.float32)
    x = np.concatenate(chunks).astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
