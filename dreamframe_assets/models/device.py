"""Where a model runs: one rule for every backend (LLM, VLM, CLIP, diffusion)."""

from __future__ import annotations

import gc
import threading
from typing import Any, Callable, Collection

# Models loaded in this process, by what changes their weights (name, device, dtype):
# loading takes seconds to minutes, so each is loaded once per process and shared. Each
# remembers the pipeline stages that use it. Before a model is loaded for a stage, the
# models no stage of its own uses are let go (a GPU worker runs stage after stage, and the
# diffusion pipeline has no business beside the VLM of evaluation); a stage that loads
# nothing (its movies all cached) lets go of nothing.
_LOADED: dict[tuple, Any] = {}
_USED_BY: dict[tuple, frozenset[str]] = {}
_STAGE: list[str] = []  # the stage this process works for now, once one has started
_LOCK = threading.RLock()
READERS = frozenset({"qa_pairs", "eval_scores"})  # the stages that read QA text and frames: the embedder, CLIP, VLMs


def load_once(key: tuple, load: Callable[[], Any], stages: Collection[str] = ()) -> Any:
    """``load()``'s result, computed the first time ``key`` is asked for in this process.
    ``stages``: the pipeline stages that use the model (default: the stage at work now)."""
    with _LOCK:
        if key not in _LOADED:
            release_unused()
            _LOADED[key] = load()
            _USED_BY[key] = frozenset(stages) or frozenset(_STAGE)
        return _LOADED[key]


def release(key: tuple) -> None:
    """Forget a model loaded by ``load_once`` (its memory goes back once nothing else holds it)."""
    with _LOCK:
        _LOADED.pop(key, None)
        _USED_BY.pop(key, None)


def enter_stage(stage: str) -> None:
    """This process now works for ``stage`` (see ``release_unused``)."""
    with _LOCK:
        _STAGE[:] = [stage]


def release_unused() -> int:
    """Let go of the models that only other stages than the current one use, and return their
    number. Models loaded outside any stage (a notebook, a test) are kept."""
    with _LOCK:
        gone = [key for key, used in _USED_BY.items() if _STAGE and used and _STAGE[0] not in used]
        for key in gone:
            release(key)
        if gone:
            gc.collect()
            _empty_gpu_cache()
    return len(gone)


def _empty_gpu_cache() -> None:
    import sys

    torch = sys.modules.get("torch")  # never imported for this: no torch, no GPU memory to give back
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


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
