"""Where a model runs: one rule for every backend (LLM, VLM, CLIP, diffusion)."""

from __future__ import annotations

import threading
from typing import Any, Callable

# Models loaded in this process, by what changes their weights (name, device, dtype):
# loading takes seconds to minutes, so each is loaded once per process and shared.
_LOADED: dict[tuple, Any] = {}
_LOCK = threading.RLock()


def load_once(key: tuple, load: Callable[[], Any]) -> Any:
    """``load()``'s result, computed the first time ``key`` is asked for in this process."""
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = load()
        return _LOADED[key]


def release(key: tuple) -> None:
    """Forget a model loaded by ``load_once`` (its memory goes back once nothing else holds it)."""
    with _LOCK:
        _LOADED.pop(key, None)


def auto_device(device: str) -> str:
    """``auto`` means the GPU when there is one, else the CPU."""
    import torch

    return device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")


def device_and_dtype(device: str, dtype: str):
    """``auto`` dtype: bfloat16 on the GPU (float16 where unsupported), float32 on the CPU."""
    import torch

    device = auto_device(device)
    if dtype != "auto":
        return device, getattr(torch, dtype)
    if device.startswith("cuda"):
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return device, torch.float32
