"""Vision-language models: a transformers image-text-to-text model and its processor."""

from __future__ import annotations

from typing import Any

from .device import READERS, device_and_dtype, load_once


def load_vlm(model: str, device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    """(processor, model) for a hub id or local folder, loaded once per process."""
    device, torch_dtype = device_and_dtype(device, dtype)

    def load() -> tuple[Any, Any]:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(model)
        return processor, AutoModelForImageTextToText.from_pretrained(
            model, dtype=torch_dtype, use_safetensors=True).to(device).eval()

    return load_once(("vlm", model, device, str(torch_dtype)), load, stages=READERS)
